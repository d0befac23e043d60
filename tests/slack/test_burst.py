"""Slack delivery at Slack's own limits, against the stand-in: bursts, outages, lost answers, replicas.

Time is compressed without touching our code: the stand-in's allowed rate and HITL_SLACK_POST_PER_SECOND
are raised together (50 posts/s instead of 1), and outages of minutes run on a FakeClock (the business
clock schedules retries; Slack's budget runs on real time whatever that clock says).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot.app.runtime import Runtime, build_runtime
from bot.app.workers import install_workers
from bot.review.ingest import DraftIn, ingest_draft
from sandbox.slack_standin import SlackStandin
from storage.db import session_scope
from storage.models import AuditEvent, OutboxItem, OutboxStatus, Review
from tests.conftest import BOT_TOKEN, FakeClock, sample_draft, wait_for

RATE = 50.0  # posts per second per channel, stand-in and app alike (Slack: 1)
CHANNEL = "#support-review"


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    server = SlackStandin(token=BOT_TOKEN, post_rate_per_channel=RATE, burst=3, channel_ids=True).start()
    server.add_channel(CHANNEL)
    server.add_channel("#ops")
    yield server
    server.stop()


@pytest.fixture
def make_runtime(
    make_settings: Callable[..., Any], standin: SlackStandin, sqlite_url: str
) -> Iterator[Callable[..., Runtime]]:
    """Replicas of the service (outbox and Slack kinds, no HTTP): `make_runtime(clock=None, **env)`."""
    made: list[Runtime] = []

    def build(clock: Any = None, **env: Any) -> Runtime:
        env.setdefault("HITL_DATABASE_URL", sqlite_url)
        settings = make_settings(
            SLACK_API_URL=standin.base_url,
            HITL_SCHEDULER=False,
            HITL_OPS_CHANNEL="#ops",
            HITL_SLACK_POST_PER_SECOND=RATE,
            HITL_INSTANCE_ID=f"replica-{len(made) + 1}",
            **env,
        )
        rt = build_runtime(settings, clock=clock)
        install_workers(rt)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.stop()
        rt.engine.dispose()


def ingest_many(rt: Runtime, n: int) -> list[str]:
    """`n` drafts routed to review in one tier channel, as a bulk import would bring them."""
    ids = []
    with session_scope(rt.engine) as session:
        for _ in range(n):
            draft = DraftIn.model_validate(sample_draft())
            ids.append(
                ingest_draft(session=session, draft=draft, policy=rt.policy, now=rt.clock.now()).review.id
            )
    return ids


def cards_by_review(standin: SlackStandin, channel: str = CHANNEL) -> dict[str, list[str]]:
    """Review id -> ts of every top-level card the stand-in holds for it (from the cards' metadata)."""
    cards: dict[str, list[str]] = {}
    for m in standin.messages(channel):
        meta = m.get("metadata") or {}
        if meta.get("event_type") == "hitl_review" and not m.get("thread_ts"):
            cards.setdefault(meta["event_payload"]["review_id"], []).append(m["ts"])
    return cards


def posted(rt: Runtime) -> int:
    with session_scope(rt.engine, readonly=True) as session:
        q = select(func.count()).select_from(Review).where(col(Review.slack_ts).is_not(None))
        return int(session.execute(q).scalar_one())


def outbox_rows(rt: Runtime, kind: str = "slack_post_review") -> list[OutboxItem]:
    with session_scope(rt.engine, readonly=True) as session:
        return list(session.execute(select(OutboxItem).where(col(OutboxItem.kind) == kind)).scalars())


def dead_letters(rt: Runtime) -> int:
    with session_scope(rt.engine, readonly=True) as session:
        q = select(func.count()).select_from(OutboxItem).where(col(OutboxItem.status) == OutboxStatus.DEAD)
        return int(session.execute(q).scalar_one())


def rate_limited(standin: SlackStandin) -> int:
    return sum(1 for c in standin.calls("chat.postMessage") if c["status"] == 429)


def assert_every_card_once(rt: Runtime, standin: SlackStandin, ids: list[str]) -> None:
    cards = cards_by_review(standin)
    assert sorted(cards) == sorted(ids), "every review has a card"
    assert [r for r, ts in cards.items() if len(ts) > 1] == [], "no review has two cards"
    assert dead_letters(rt) == 0
    with session_scope(rt.engine, readonly=True) as session:
        stored = {r.id: r.slack_ts for r in session.execute(select(Review)).scalars()}
    assert all(stored[r] == ts[0] for r, ts in cards.items()), "the store points at the card Slack holds"


def test_a_500_review_burst_into_one_channel_drains_at_slacks_rate_without_a_dead_letter(
    make_runtime: Callable[..., Runtime], standin: SlackStandin
) -> None:
    rt = make_runtime()
    ids = ingest_many(rt, 500)
    rt.start()
    wait_for(lambda: posted(rt) == 500, 120, "500 cards")
    assert_every_card_once(rt, standin, ids)
    assert rate_limited(standin) <= 5, "paced before Slack has to say 429"
    assert {r.attempts for r in outbox_rows(rt)} == {1}, "waiting in line never counts as a failed attempt"
    with session_scope(rt.engine, readonly=True) as session:
        stored = set(session.execute(select(col(Review.slack_channel))).scalars())
    assert stored == {m["channel"] for m in standin.messages(CHANNEL)} and stored.pop().startswith("C")


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_two_replicas_share_one_budget_and_post_every_card_once(
    make_runtime: Callable[..., Runtime], standin: SlackStandin, db: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    first, second = make_runtime(HITL_DATABASE_URL=url), make_runtime(HITL_DATABASE_URL=url)
    ids = ingest_many(first, 200)
    first.start()
    second.start()
    wait_for(lambda: posted(first) == 200, 120, "200 cards")
    assert_every_card_once(first, standin, ids)
    assert rate_limited(standin) <= 5, "two replicas together stay inside one channel's allowance"
    senders = {a.detail.get("instance") for a in audits(first, "delivered")}
    assert senders == {"replica-1", "replica-2"}, "both replicas did share the work"


def audits(rt: Runtime, action: str) -> list[AuditEvent]:
    with session_scope(rt.engine, readonly=True) as session:
        return list(session.execute(select(AuditEvent).where(col(AuditEvent.action) == action)).scalars())


def run_for(rt: Runtime, clock: FakeClock, *, minutes: float, step: float = 30.0) -> None:
    """Let the outbox work for `minutes` of business time, `step` seconds at a time."""
    worker = rt.services.outbox
    assert worker is not None
    for _ in range(int(minutes * 60 / step)):
        worker.run_once()
        clock.advance(seconds=step)


def test_a_slack_outage_of_minutes_then_recovery_posts_every_card_once(
    make_runtime: Callable[..., Runtime], standin: SlackStandin, clock: FakeClock
) -> None:
    rt = make_runtime(clock)
    ids = ingest_many(rt, 20)
    standin.set_outage(True)
    run_for(rt, clock, minutes=20)
    rows = outbox_rows(rt)
    assert all(r.status == OutboxStatus.PENDING for r in rows), "an outage of minutes dead-letters nothing"
    assert min(r.attempts for r in rows) >= 3, "each 503 counted as a real failure, retried with backoff"
    standin.set_outage(False)
    run_for(rt, clock, minutes=5)
    assert rt.services.outbox is not None and rt.services.outbox.drain(30)
    assert_every_card_once(rt, standin, ids)


def test_an_outage_longer_than_the_give_up_budget_dead_letters_and_tells_ops_once(
    make_runtime: Callable[..., Runtime], standin: SlackStandin, clock: FakeClock
) -> None:
    rt = make_runtime(clock, HITL_SLACK_GIVE_UP_HOURS=0.25)
    [review_id] = ingest_many(rt, 1)
    standin.set_outage(True)
    run_for(rt, clock, minutes=30)
    [row] = outbox_rows(rt)
    assert (
        row.status == OutboxStatus.DEAD
        and "failing for more than 0.25 h" in (audits(rt, "outbox_dead")[0].detail["why"])
    )
    standin.set_outage(False)
    run_for(rt, clock, minutes=5)
    ops = [m["text"] for m in standin.messages("#ops")]
    assert len(ops) == 1 and f"#{row.id}" in ops[0] and "dead-lettered" in ops[0]
    assert cards_by_review(standin) == {}, f"review {review_id} was not posted: the ops channel says so"


def test_a_post_slack_accepted_but_whose_answer_was_lost_is_adopted_not_posted_again(
    make_runtime: Callable[..., Runtime], standin: SlackStandin, clock: FakeClock
) -> None:
    rt = make_runtime(clock, HITL_SLACK_TIMEOUT_SECONDS=1)
    ids = ingest_many(rt, 3)
    standin.drop_responses("chat.postMessage", times=1, hang=3)
    worker = rt.services.outbox
    assert worker is not None
    worker.run_once()  # the first post times out after Slack stored it
    clock.advance(minutes=1)
    assert worker.drain(30)
    assert_every_card_once(rt, standin, ids)
    assert [c for c in standin.calls("chat.postMessage") if c.get("answer_lost")], "an answer was lost"
    lookups = standin.calls("conversations.history")
    assert lookups and all(c["args"].get("include_all_metadata") in (True, "true", "1") for c in lookups)
    assert len(standin.calls("chat.postMessage")) == 3, "the lost one was found in the history, not re-sent"
