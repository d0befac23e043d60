"""The stats rollup answers exactly what the live queries answer (SQLite and PostgreSQL).

Random decisions, QA ratings, drafts and outcomes spread over ten days; every check compares
`cached_stats` / `build_review(cached=True)` with the exact queries over the whole period
(`compute_stats`, `build_review(cached=False)`), number for number, on windows that start and end
inside days and hours, after new decisions arrive, after a late outcome for a cached day, after a tier
move, after a policy change, with two fillers at once, and on a database that refuses the cache write.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sqlmodel import Session, col

from bot.app.runtime import build_runtime
from bot.app.settings import BUNDLED_POLICY
from bot.reporting.outcomes import OutcomeIn, record_outcome
from bot.reporting.oversight.review import build_review
from bot.reporting.oversight.text import render_review_text
from bot.reporting.stats.came_back import came_back
from bot.reporting.stats.came_back import key as came_back_key
from bot.reporting.stats.prefill import prefill
from bot.reporting.stats.query import compute_stats
from bot.reporting.stats.rollup import GRACE, Unit, cached_stats, invalidate, split, sum_of_cached, window
from bot.review.decisions import record_decision
from bot.review.policy import Oversight, Policy, load_policy
from storage.db import make_engine, session_scope
from storage.models import Outcome, Review, UTCDateTime
from tests.conftest import FakeClock
from tests.reporting.factory import Store

NOW = datetime(2026, 11, 20, 14, 37, 12, tzinfo=UTC)
TYPES = ("order_status", "refund", "shipping")
KINDS = ("approve", "approve", "approve", "edit", "take_over", "reject", "auto_send", "auto_send")
DEFECTS = ("hallucination", "tone_mismatch", "policy_misapplication", None)


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def policy() -> Policy:
    return load_policy(BUNDLED_POLICY)


def _decide(store: Store, rnd: random.Random, created: datetime, limit: datetime) -> Review | None:
    """A random draft and, unless it stays pending, its decision (and sometimes a QA rating)."""
    kind = rnd.choice(KINDS)
    review = store.review(
        rnd.choice(TYPES),
        route="auto_send" if kind == "auto_send" else rnd.choice(("review", "review", "take_over")),
        confidence=round(rnd.uniform(0.4, 0.99), 3),
        created=created,
        reasons=["repeat_contact"] if rnd.random() < 0.2 else None,
        customer=f"c{rnd.randrange(40)}",
    )
    seconds = 0.0 if kind == "auto_send" else rnd.lognormvariate(5.5, 1.0)
    if rnd.random() < 0.05 or created + timedelta(seconds=seconds + 7200) >= limit:
        return None
    breached = seconds > 1800
    defect = rnd.choice(DEFECTS) if kind in ("edit", "reject") else None
    distance = round(rnd.uniform(0.0, 0.7), 3) if kind == "edit" else None
    store.decide(review, kind, seconds=seconds, edit_distance=distance, breached=breached, defect=defect)
    if rnd.random() < 0.3:
        good = rnd.random() < 0.8
        at = created + timedelta(seconds=seconds + rnd.uniform(60, 7000))
        store.decide(
            review,
            "qa_good" if good else "qa_defect",
            stage="qa",
            at=at,
            defect=None if good else "hallucination",
        )
    return review


def _outcome(session: Session, rnd: random.Random, review: Review, limit: datetime) -> None:
    kind = rnd.choice(("csat", "csat", "reopened", "resolved"))
    score = rnd.randint(1, 5) if kind == "csat" else None
    at = min(review.created_at + timedelta(hours=rnd.uniform(1, 40)), limit - timedelta(minutes=1))
    session.add(
        Outcome(
            ticket_id=review.ticket_id,
            kind=kind,
            value=str(score) if score else "true",
            score=score,
            satisfied=(score >= 4) if score else rnd.random() < 0.7,
            at=at,
            received_at=at,
            review_id=review.id,
            interaction_type=review.interaction_type,
            decision=review.decision,
        )
    )


def populate(engine: Engine, *, start: datetime, end: datetime, n: int, seed: int) -> None:
    """`n` random drafts created in [start, end), decided and rated before `end`."""
    rnd = random.Random(seed)
    with session_scope(engine) as session:
        store = Store(session, now=end)
        store.n = seed * 10_000  # ticket ids apart from earlier calls
        for _ in range(n):
            created = start + timedelta(seconds=rnd.uniform(0, (end - start).total_seconds()))
            review = _decide(store, rnd, created, end)
            if review is not None and rnd.random() < 0.3:
                _outcome(session, rnd, review, end)


@pytest.fixture
def store10(db: Engine) -> Engine:
    populate(db, start=NOW - timedelta(days=10), end=NOW, n=500, seed=11)
    return db


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def live_and_cached(
    engine: Engine, since: datetime, until: datetime, now: datetime, **kw: Any
) -> tuple[str, str]:
    with session_scope(engine, readonly=True) as session:
        live = compute_stats(session=session, since=since, until=until, now=now, **kw)
    with session_scope(engine, readonly=True) as session:
        cached = cached_stats(session=session, since=since, until=until, now=now, **kw)
    return _json(live.as_dict()), _json(cached.as_dict())


def reviews(engine: Engine, policy: Policy, now: datetime, period: timedelta) -> tuple[str, str]:
    out = []
    for cached in (False, True):
        with session_scope(engine, readonly=True) as session:
            r = build_review(session=session, policy=policy, now=now, period=period, cached=cached)
            out.append(render_review_text(r) + _json(r.stats.as_dict()) + _json(r.previous.as_dict()))
    return out[0], out[1]


def cached_units(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(session.execute(text("SELECT count(*) FROM stats_rollup")).scalar_one())


WINDOWS = [
    (timedelta(days=7), None, False),
    (timedelta(days=3, hours=5, minutes=11), None, True),
    (timedelta(days=7), "refund", True),
    (timedelta(hours=30), "order_status", False),
    (timedelta(minutes=50), None, True),
]


@pytest.mark.parametrize(("period", "itype", "calibration"), WINDOWS)
def test_rollup_answers_what_the_live_queries_answer(
    store10: Engine, period: timedelta, itype: str | None, calibration: bool
) -> None:
    until = NOW - timedelta(minutes=7)
    for _ in range(2):  # cold (fills the closed units), then warm (reads them)
        live, cached = live_and_cached(
            store10, until - period, until, NOW, interaction_type=itype, calibration=calibration
        )
        assert cached == live
    if period > timedelta(days=1):
        assert cached_units(store10) > 0


def test_percentiles_stay_exact_when_read_through_the_histograms(store10: Engine) -> None:
    since, until = NOW - timedelta(days=9, hours=3), NOW
    with session_scope(store10, readonly=True) as session:
        live = compute_stats(session=session, since=since, until=until, now=NOW)
        cached_stats(session=session, since=since, until=until, now=NOW)
    with session_scope(store10, readonly=True) as session:
        warm = cached_stats(session=session, since=since, until=until, now=NOW)
    assert live.median_seconds is not None and live.p90_seconds is not None
    assert (warm.median_seconds, warm.p90_seconds) == (live.median_seconds, live.p90_seconds)


def test_the_oversight_review_is_the_same_from_the_rollup(store10: Engine, policy: Policy) -> None:
    for _ in range(2):
        live, cached = reviews(store10, policy, NOW, timedelta(days=4))
        assert cached == live


def test_decisions_arriving_today_are_counted_as_they_arrive(store10: Engine) -> None:
    since = NOW - timedelta(days=5, minutes=3)
    assert live_and_cached(store10, since, NOW, NOW)[1] == live_and_cached(store10, since, NOW, NOW)[0]
    later = NOW + timedelta(hours=3, minutes=20)
    populate(store10, start=NOW, end=later, n=80, seed=12)  # written "now" as time goes on
    live, cached = live_and_cached(store10, since, later, later, calibration=True)
    assert cached == live


def test_a_late_outcome_for_a_cached_day_is_counted(store10: Engine, policy: Policy) -> None:
    period = timedelta(days=6)
    assert reviews(store10, policy, NOW, period)[1] == reviews(store10, policy, NOW, period)[0]
    with session_scope(store10) as session:
        old = session.execute(
            select(col(Review.ticket_id))
            .where(col(Review.status) == "approved", col(Review.created_at) < NOW - timedelta(days=3))
            .order_by(col(Review.id))
            .limit(3)
        ).scalars()
        for ticket in list(old):
            at = NOW - timedelta(days=2, hours=1)  # a CSAT survey answered days later, dated then
            record_outcome(
                session=session, outcome=OutcomeIn(ticket_id=ticket, kind="csat", value=1, at=at), now=NOW
            )
    live, cached = reviews(store10, policy, NOW, period)
    assert cached == live


def test_a_review_moved_to_another_tier_is_counted_in_its_new_tier(store10: Engine) -> None:
    since = NOW - timedelta(days=8)
    assert live_and_cached(store10, since, NOW, NOW)[1] == live_and_cached(store10, since, NOW, NOW)[0]
    with session_scope(store10) as session:
        moved = session.execute(
            select(Review)
            .where(col(Review.status) == "pending", col(Review.created_at) >= since + timedelta(days=1))
            .order_by(col(Review.created_at))
            .limit(1)
        ).scalar_one()
        session.execute(update(Review).where(col(Review.id) == moved.id).values(tier="escalations"))
        invalidate(session, moved.created_at, now=NOW)  # what the SLA engine's tier move does
    live, cached = live_and_cached(store10, since, NOW, NOW)
    assert cached == live
    assert "escalations" in live


def test_a_policy_change_reads_fresh_rows(store10: Engine) -> None:
    since = NOW - timedelta(days=7)
    before = Oversight()
    after = before.model_copy(
        update={
            "heavy_edit_distance": 0.1,
            "severe_defects": ["tone_mismatch"],
            "review_time_cap": timedelta(minutes=5),
        }
    )
    for o in (before, after, before):
        live, cached = live_and_cached(store10, since, NOW, NOW, oversight=o, calibration=True)
        assert cached == live
    with session_scope(store10, readonly=True) as session:
        keys = session.execute(text("SELECT count(DISTINCT params_key) FROM stats_rollup")).scalar_one()
    assert keys == 2


def test_two_fillers_at_once_store_each_unit_once(store10: Engine) -> None:
    since = NOW - timedelta(days=6, hours=2)
    results: list[str] = []
    errors: list[BaseException] = []

    def fill() -> None:
        try:
            with session_scope(store10, readonly=True) as session:
                results.append(
                    _json(cached_stats(session=session, since=since, until=NOW, now=NOW).as_dict())
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    units, _ = split(since, NOW, NOW - GRACE)
    with session_scope(store10, readonly=True) as session:
        rows = session.execute(text("SELECT count(*), count(DISTINCT start) FROM stats_rollup")).one()
    assert tuple(rows) == (len(units), len(units))
    assert live_and_cached(store10, since, NOW, NOW)[0] == results[0]


def test_a_database_that_refuses_the_cache_write_still_answers(pg_url: str) -> None:
    engine = make_engine(pg_url)
    populate(engine, start=NOW - timedelta(days=4), end=NOW, n=150, seed=13)
    readonly = make_engine(
        pg_url, connect_args={"connect_timeout": 10, "options": "-c default_transaction_read_only=on"}
    )
    try:
        since = NOW - timedelta(days=3, hours=2)
        with session_scope(readonly, readonly=True) as session:
            w = window(session, since=since, until=NOW, now=NOW, oversight=Oversight())
            assert w.computed > 0
        with session_scope(readonly, readonly=True) as session:
            cached = cached_stats(session=session, since=since, until=NOW, now=NOW)
        with session_scope(engine, readonly=True) as session:
            live = compute_stats(session=session, since=since, until=NOW, now=NOW)
        assert _json(cached.as_dict()) == _json(live.as_dict())
        assert cached_units(engine) == 0
    finally:
        readonly.dispose()
        engine.dispose()


def test_a_period_is_whole_days_whole_hours_and_short_live_edges() -> None:
    since = datetime(2026, 11, 1, 22, 40, tzinfo=UTC)
    now = datetime(2026, 11, 4, 9, 10, tzinfo=UTC)
    units, live = split(since, now, now - GRACE)
    assert live == (
        (since, datetime(2026, 11, 1, 23, tzinfo=UTC)),
        (datetime(2026, 11, 4, 8, tzinfo=UTC), now),
    )
    assert units[0] == Unit("hour", datetime(2026, 11, 1, 23, tzinfo=UTC))
    assert [u for u in units if u.kind == "day"] == [
        Unit("day", datetime(2026, 11, 2, tzinfo=UTC)),
        Unit("day", datetime(2026, 11, 3, tzinfo=UTC)),
    ]
    assert len([u for u in units if u.kind == "hour"]) == 1 + 8  # 23:00 on the 1st; 00:00-08:00 on the 4th


def test_the_hourly_prefill_stores_closed_units_once_across_replicas(
    store10: Engine, db_url: str, make_settings: Callable[..., Any]
) -> None:
    settings = make_settings(HITL_DATABASE_URL=db_url)
    a, b = (build_runtime(settings, clock=FakeClock(NOW), engine=make_engine(db_url)) for _ in range(2))
    try:
        first = prefill(a)
        assert first > 0 and prefill(b) == 0  # the second replica finds them stored
        since = NOW - timedelta(days=30)
        with session_scope(store10, readonly=True) as session:
            w = window(session, since=since, until=NOW, now=NOW, oversight=a.policy.oversight)
        assert w.computed == 0 and w.cached > 0  # a manager's /hitl stats 30d reads them
        assert live_and_cached(store10, since, NOW, NOW)[1] == live_and_cached(store10, since, NOW, NOW)[0]
    finally:
        a.engine.dispose()
        b.engine.dispose()


def _came_back_both(engine: Engine, since: datetime, until: datetime, now: datetime) -> tuple[Any, Any]:
    window = Oversight().came_back_window
    with session_scope(engine, readonly=True) as session:
        exact = came_back(session, since=since, until=until, window=window, cached=False)
    with session_scope(engine, readonly=True) as session:
        cached = came_back(session, since=since, until=until, window=window, now=now)
    return exact, cached


def _came_back_rows(engine: Engine) -> list[datetime]:
    with session_scope(engine, readonly=True) as session:
        q = text("SELECT start FROM stats_rollup WHERE params_key = :k ORDER BY start").columns(
            start=UTCDateTime()
        )
        return list(session.execute(q, {"k": came_back_key(Oversight().came_back_window)}).scalars())


def test_came_back_counts_every_reply_and_a_unit_is_cached_only_once_its_window_has_passed(
    store10: Engine,
) -> None:
    since = NOW - timedelta(days=9, hours=5)
    exact, cached = _came_back_both(store10, since, NOW, NOW)
    assert cached == exact and sum(n for n, _ in exact.values()) > 100 and sum(b for _, b in exact.values())
    assert _came_back_rows(store10) and max(_came_back_rows(store10)) < NOW - timedelta(hours=72) - GRACE
    assert _came_back_both(store10, since, NOW, NOW)[1] == exact  # warm: read from the stored units

    # Two days later the customers of the last days' replies have written again: the days whose window
    # was still open at the first report were not cached then, so they count the new contacts.
    later = NOW + timedelta(days=2)
    populate(store10, start=NOW, end=later, n=200, seed=14)
    exact2, cached2 = _came_back_both(store10, since, later, later)
    assert cached2 == exact2 and exact2 != exact


def test_a_review_decided_after_its_came_back_was_cached_is_counted(store10: Engine, policy: Policy) -> None:
    period = timedelta(days=9)
    assert reviews(store10, policy, NOW, period)[1] == reviews(store10, policy, NOW, period)[0]
    with session_scope(store10) as session:
        old = session.execute(  # still pending days after it arrived, its customer wrote again since
            select(Review)
            .where(
                col(Review.status) == "pending",
                col(Review.created_at) < NOW - timedelta(days=4),
                col(Review.created_at) >= NOW - period,
                col(Review.customer_key).is_not(None),
            )
            .order_by(col(Review.created_at))
            .limit(1)
        ).scalar_one()
        record_decision(
            session=session,
            review_id=old.id,
            decision="approve",
            actor_id="U_SUP",
            actor_name="Sam",
            now=NOW,
            policy=policy,
            is_supervisor=True,
        )
    live, cached = reviews(store10, policy, NOW, period)
    assert cached == live


def test_the_remembered_sum_of_cached_units_follows_their_payloads() -> None:
    """Sums are remembered by the payloads themselves: a unit stored again with other numbers (a late
    fact, a new generation) is another key, and a caller that adopts the containers (merge does) cannot
    change what the next caller gets. Day 1 {"a": 1, "h": [1, 2]} + day 2 {"a": 2, "h": [3, 4]} =
    {"a": 3, "h": [4, 6]}; day 2 stored again as {"a": 5, "h": [3, 4]}: {"a": 6, "h": [4, 6]}."""
    day1, day2 = Unit("day", NOW - timedelta(days=3)), Unit("day", NOW - timedelta(days=2))
    payloads = {day1: json.dumps({"a": 1, "h": [1, 2]}), day2: json.dumps({"a": 2, "h": [3, 4]})}
    first = sum_of_cached(payloads)
    assert first == {"a": 3, "h": [4, 6]}
    first["a"], first["h"][0] = 100, 100  # what a caller's merge may do to what it was given
    assert sum_of_cached(dict(reversed(payloads.items()))) == {"a": 3, "h": [4, 6]}
    assert sum_of_cached({**payloads, day2: json.dumps({"a": 5, "h": [3, 4]})}) == {"a": 6, "h": [4, 6]}
    assert sum_of_cached({}) == {}
