"""The SLA engine against a real database with a hand-moved clock: each step claimed once,
a decision stops everything, restarts and replicas neither miss nor double a ping."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app.runtime import Runtime, build_runtime
from bot.review.ingest import DraftIn, ingest_draft
from bot.sla.engine import SlaEngine
from storage.db import session_scope
from storage.models import AuditEvent, OutboxItem, Review, ReviewStatus, SlaPing
from tests.conftest import FakeClock, sample_draft

POLICY_FILE = Path(__file__).with_name("policy_fast.yml")

Rig = Callable[[], tuple[Runtime, SlaEngine]]


@pytest.fixture
def rig(db_url: str, make_settings: Callable[..., Any], clock: FakeClock) -> Iterator[Rig]:
    """`rig()` → a new instance (runtime + SLA engine) on the same database and clock."""
    made: list[Runtime] = []

    def make() -> tuple[Runtime, SlaEngine]:
        settings = make_settings(
            HITL_DATABASE_URL=db_url,
            HITL_POLICY_FILE=str(POLICY_FILE),
            HITL_INSTANCE_ID=f"replica-{len(made) + 1}",
        )
        runtime = build_runtime(settings, clock=clock)
        made.append(runtime)
        return runtime, SlaEngine(runtime)

    yield make
    for runtime in made:
        runtime.engine.dispose()


def ingest(rt: Runtime, *, posted: bool = True, **draft: Any) -> str:
    """Store a draft as the API would; `posted` also records its card as posted in Slack."""
    with session_scope(rt.engine) as s:
        review = ingest_draft(
            session=s,
            draft=DraftIn.model_validate(sample_draft(**draft)),
            policy=rt.policy,
            now=rt.clock.now(),
        ).review
        if posted:
            review.slack_channel, review.slack_ts = rt.policy.tiers[review.tier].channel, "1700000000.000100"
            s.add(review)
        return review.id


def pings(rt: Runtime, review_id: str | None = None, status: str = "fired") -> list[str]:
    with session_scope(rt.engine, readonly=True) as s:
        q = select(SlaPing.kind).where(SlaPing.status == status).order_by(SlaPing.due_at, SlaPing.id)
        if review_id:
            q = q.where(SlaPing.review_id == review_id)
        return list(s.execute(q).scalars())


def outbox(rt: Runtime, kind: str | None = None) -> list[dict[str, Any]]:
    with session_scope(rt.engine, readonly=True) as s:
        q = select(OutboxItem).order_by(OutboxItem.id)
        if kind:
            q = q.where(OutboxItem.kind == kind)
        return [{"kind": o.kind, **o.payload, "dedupe": o.dedupe_key} for o in s.execute(q).scalars()]


def audits(rt: Runtime) -> Counter[str]:
    with session_scope(rt.engine, readonly=True) as s:
        return Counter(
            s.execute(select(AuditEvent.action).where(AuditEvent.action.startswith("sla_"))).scalars()
        )


def load(rt: Runtime, review_id: str) -> Review:
    with session_scope(rt.engine, readonly=True) as s:
        review = s.get(Review, review_id)
        assert review is not None
        return review


def test_each_step_fires_once_at_its_time_with_its_messages(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    rid = ingest(rt)
    assert sla.rebuild() == 1
    t0 = clock.now()
    fired_at: dict[str, float] = {}
    for at in (1.0, 1.6, 1.7, 3.1, 4.6, 6.1, 60.0, 3600.0):
        clock.t = t0 + timedelta(seconds=at)
        sla.run_due()
        for kind in pings(rt, rid):
            fired_at.setdefault(kind, at)
    assert fired_at == {"warn": 1.6, "breach:L1:0": 3.1, "breach:L1:1": 4.6, "breach:L2:0": 6.1}
    assert sla.next_due(rid) is None  # plan used up: nothing left to schedule, now or after a restart
    assert sla.reconcile() == 0 and SlaEngine(rt).rebuild() == 0

    pinged = outbox(rt, "slack_sla_ping")
    thread = [o for o in pinged if o["place"] == "thread"]
    assert [o["step"] for o in thread] == ["warn", "breach:L1:0", "breach:L1:1", "breach:L2:0"]
    # Warnings mention nobody (issue 13); breach pings mention whom their level names.
    assert thread[0]["level"] == 0 and thread[0]["mention"] == ""
    assert thread[1]["level"] == 1 and thread[1]["mention"] == "<!subteam^S0SUPERS>"
    assert thread[3]["level"] == 2 and thread[3]["mention"] == "<@U0MANAGER>"
    channels = Counter(o["channel"] for o in pinged if o["place"] == "channel")
    assert channels == {"#supervisors": 2, "#managers": 1}
    assert [o["user"] for o in pinged if o["place"] == "dm"] == ["U0MANAGER"]
    assert (
        len(outbox(rt, "slack_refresh_review")) == 3
    )  # warning, breach, escalation: the card's countdown state
    assert audits(rt) == {"sla_warning": 1, "sla_breach_ping": 2, "sla_escalation": 1}


def test_a_decision_stops_every_later_step(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    rid = ingest(rt)
    sla.rebuild()
    t0 = clock.now()
    clock.t = t0 + timedelta(seconds=1.6)
    assert sla.run_due() == 1
    with session_scope(rt.engine) as s:  # what record_decision does: a conditional update
        s.execute(
            update(Review)
            .where(Review.id == rid, Review.status == ReviewStatus.PENDING)
            .values(status=ReviewStatus.APPROVED, decided_at=clock.now())
        )
    for at in (3.1, 4.6, 6.1, 100):
        clock.t = t0 + timedelta(seconds=at)
        assert sla.run_due() == 0
    assert pings(rt, rid) == ["warn"]
    assert sla.next_due(rid) is None  # its timer was dropped when it came up


def test_a_new_instance_rebuilds_from_the_database_and_carries_on(rig: Rig, clock: FakeClock) -> None:
    rt1, first = rig()
    rid = ingest(rt1)
    first.rebuild()
    t0 = clock.now()
    clock.t = t0 + timedelta(seconds=1.6)
    assert first.run_due() == 1
    # The first instance stops; a second starts on the same database.
    rt2, second = rig()
    assert second.rebuild() == 1
    assert second.next_due(rid) == t0 + timedelta(seconds=3)
    clock.t = t0 + timedelta(seconds=3.2)
    assert second.run_due() == 1
    assert pings(rt2, rid) == ["warn", "breach:L1:0"]


def test_after_long_downtime_stale_steps_are_recorded_as_skipped_not_sent(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    rid = ingest(rt)
    t0 = clock.now()
    clock.t = t0 + timedelta(seconds=5)  # warn (1.5), L1:0 (3), L1:1 (4.5) all passed while down
    sla.rebuild()
    assert sla.run_due() == 2
    assert pings(rt, rid) == ["breach:L1:0", "breach:L1:1"]
    assert pings(rt, rid, status="cancelled") == ["warn"]
    assert sla.next_due(rid) == t0 + timedelta(seconds=6)


def _together(gate: threading.Barrier, engine: SlaEngine) -> None:
    gate.wait()
    engine.run_due()


def test_two_replicas_racing_claim_each_step_exactly_once(rig: Rig, clock: FakeClock) -> None:
    rt1, a = rig()
    rt2, b = rig()
    ids = [ingest(rt1 if i % 2 else rt2) for i in range(12)]
    a.rebuild()
    b.rebuild()
    t0 = clock.now()
    for at in (1.6, 3.1, 4.6, 6.1):
        clock.t = t0 + timedelta(seconds=at)
        gate = threading.Barrier(2)
        threads = [threading.Thread(target=_together, args=(gate, e)) for e in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert a.fired + b.fired == 12 * 4
    for rid in ids:
        assert pings(rt1, rid) == ["warn", "breach:L1:0", "breach:L1:1", "breach:L2:0"]
    thread_posts = [o for o in outbox(rt1, "slack_sla_ping") if o["place"] == "thread"]
    assert len(thread_posts) == 12 * 4
    assert audits(rt1) == {"sla_warning": 12, "sla_breach_ping": 24, "sla_escalation": 12}


def test_timeout_moves_the_review_to_another_tier_and_restarts_its_sla(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    rid = ingest(rt, interaction_type="billing")
    sla.rebuild()
    t0 = clock.now()
    for at in (1.1, 2.1, 3.1):
        clock.t = t0 + timedelta(seconds=at)
        sla.run_due()
    assert pings(rt, rid) == ["warn", "breach:L1:0", "timeout"]
    review = load(rt, rid)
    assert review.tier == "target" and review.extra["sla_round"] == 1
    assert review.sla_due_at == clock.now() + timedelta(hours=1)
    assert review.slack_ts == "1700000000.000100"  # names the old card until the repost replaces it
    [repost] = [o for o in outbox(rt, "slack_post_review") if o.get("moved_from")]
    assert repost["moved_from"] == {"channel": "#mover-review", "ts": "1700000000.000100"}
    moved_note = [o for o in outbox(rt, "slack_post") if "moved to" in o["text"]]
    assert moved_note and moved_note[0]["thread_ts"] == "1700000000.000100"
    assert audits(rt)["sla_timeout_action"] == 1
    # The new tier's own warning comes 45 minutes later, once.
    assert sla.next_due(rid) == clock.now() + timedelta(minutes=45)
    clock.t += timedelta(minutes=45, seconds=1)
    assert sla.run_due() == 1 and sla.run_due() == 0
    assert pings(rt, rid)[-1] == "r1:warn"


def test_timeout_reassigns_and_tells_the_new_owner(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    rid = ingest(rt, interaction_type="shipping")
    sla.rebuild()
    clock.advance(seconds=3.5)  # warn superseded, breach and timeout due
    assert sla.run_due() == 2
    assert load(rt, rid).assignee == "U0LEAD"
    assert [d["user"] for d in outbox(rt, "slack_sla_ping") if d["place"] == "dm"] == ["U0SUPER"]  # level 1
    assert [d["user"] for d in outbox(rt, "slack_dm")] == ["U0LEAD"]  # then the new owner is told
    assert any("reassigned to <@U0LEAD>" in o["text"] for o in outbox(rt, "slack_post"))


def test_sweep_picks_up_new_reviews_and_reconcile_finds_any_missing(rig: Rig, clock: FakeClock) -> None:
    rt, sla = rig()
    assert sla.rebuild() == 0
    rid = ingest(rt, posted=False)
    assert sla.sweep() == 1
    assert sla.next_due(rid) == load(rt, rid).sla_warn_at
    # A review created long ago that this instance somehow never saw: only the full pass finds it.
    clock.advance(seconds=-3600)
    old = ingest(rt, posted=False)
    clock.advance(seconds=3600)
    assert sla.sweep() == 0 and sla.next_due(old) is None
    assert sla.reconcile() == 1
    # The card is not posted yet: the warning is bound to the card's thread when it is delivered.
    clock.advance(seconds=1.6)
    sla.run_due()
    warn = [o for o in outbox(rt, "slack_sla_ping") if o["review_id"] == rid]
    assert warn and warn[0]["place"] == "thread" and "ts" not in warn[0]
