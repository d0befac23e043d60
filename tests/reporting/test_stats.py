"""`/hitl stats` numbers, computed in the database, exact on a known week (SQLite and PostgreSQL).

The week (tests/stats/factory.py `known_week`), decisions within [NOW-7d, NOW):
  order_status  approve 60s, approve 120s, edit 300s (light), edit 600s (heavy, breached, tone_mismatch),
                reject 900s (breached, hallucination), take over 1200s (of a draft routed to review),
                2 auto-sent: one QA good, one QA defect (hallucination)
  refund        approve 30s, take over 1500s (breached, routed take_over), 2 pending (one past its SLA)
  outside       one reject 10 days ago
Human decision times sorted: 30 60 120 300 600 900 1200 1500 → median 450, p90 1200+0.3·300 = 1290.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from bot.reporting.stats.model import BadPeriod, Counts, parse_period
from bot.reporting.stats.query import compute_stats, percentiles
from bot.reporting.stats.text import render_stats_text
from bot.slack.blocks.reports import render_stats_blocks
from storage.db import make_engine, session_scope
from tests.reporting.factory import NOW, SINCE, Store, known_week


@pytest.fixture
def db(db_url: str) -> Engine:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def week(db: Engine) -> Engine:
    with session_scope(db) as session:
        known_week(Store(session))
    return db


def stats_of(engine: Engine, **kw: object):  # type: ignore[no-untyped-def]
    with session_scope(engine, readonly=True) as session:
        return compute_stats(session=session, since=SINCE, until=NOW, **kw)  # type: ignore[arg-type]


def assert_decision_rates(t: Counts) -> None:
    """The known week's human decisions: 3 approve, 2 edit, 2 take over, 1 reject; 1 heavy edit."""
    assert (t.approve, t.edit, t.take_over, t.reject, t.auto_send) == (3, 2, 2, 1, 2)
    assert t.human == 8 and t.judged == 6
    assert t.approve_rate == pytest.approx(3 / 8) and t.edit_rate == pytest.approx(2 / 8)
    assert t.take_over_rate == pytest.approx(2 / 8) and t.reject_rate == pytest.approx(1 / 8)
    assert t.heavy_edits == 1 and t.error_rate == pytest.approx(2 / 6)


def test_rates_and_counts_of_a_known_week(week: Engine) -> None:
    s = stats_of(week)
    t = s.total
    assert_decision_rates(t)
    assert (t.sla_met, t.sla_breached) == (5, 3) and t.sla_breach_rate == pytest.approx(3 / 8)
    assert (t.qa_good, t.qa_defect, t.qa_pass_rate) == (1, 1, 0.5)
    assert t.severe_defects == 2 and t.qa_severe == 1
    assert s.top_defects() == [("hallucination", 2), ("tone_mismatch", 1)]
    assert (s.pending, s.pending_overdue) == (2, 1)


def test_median_and_p90_time_to_decision_follow_percentile_cont(week: Engine) -> None:
    s = stats_of(week)
    assert s.median_seconds == pytest.approx(450.0)
    assert s.p90_seconds == pytest.approx(1290.0)


def test_volume_by_route_and_tier_counts_drafts_created_in_the_period(week: Engine) -> None:
    s = stats_of(week)
    assert s.volume == {
        ("review", "standard"): 6,
        ("auto_send", "standard"): 2,
        ("review", "billing"): 3,
        ("take_over", "billing"): 1,
    }
    assert s.total.volume == 12


def test_error_rate_by_interaction_type_is_rejects_plus_heavy_edits(week: Engine) -> None:
    s = stats_of(week)
    assert list(s.by_type) == ["order_status", "refund"]
    os_, refund = s.by_type["order_status"], s.by_type["refund"]
    assert os_.error_rate == pytest.approx(2 / 5) and refund.error_rate == 0.0
    assert os_.take_over_on_review == 1 and refund.take_over_on_review == 0
    assert refund.routed == {"review": 3, "take_over": 1}


def test_one_interaction_type_only(week: Engine) -> None:
    s = stats_of(week, interaction_type="refund")
    assert list(s.by_type) == ["refund"]
    assert s.total.human == 2 and s.total.auto_send == 0
    assert s.median_seconds == pytest.approx(765.0) and s.p90_seconds == pytest.approx(30 + 0.9 * 1470)
    assert (s.pending, s.pending_overdue) == (2, 1)


def test_calibration_counts_approvals_by_confidence_band(week: Engine) -> None:
    s = stats_of(week, calibration=True)
    bands = s.calibration["order_status"]
    assert (bands[2].human, bands[2].approve, bands[2].errors) == (2, 0, 2)  # 0.60-0.70: heavy edit + reject
    assert (bands[4].human, bands[4].approve) == (2, 2)  # 0.80-0.90: two approvals
    assert bands[6].auto_send == 2 and bands[6].human == 0


def test_an_empty_period_has_no_rates_and_says_so(db: Engine) -> None:
    s = stats_of(db)
    assert s.total.human == 0 and s.total.error_rate is None and s.median_seconds is None
    assert "No drafts or decisions in this period" in render_stats_text(s)


def test_renderings_carry_the_numbers(week: Engine) -> None:
    s = stats_of(week)
    out = render_stats_text(s)
    assert "median 7m 30s" in out and "p90 21m 30s" in out and "5 met · 3 breached" in out
    assert "order_status" in out and "40%" in out
    text_, blocks = render_stats_blocks(s)
    assert "12 drafts in 7d · 17% auto-sent · SLA breached 3" in text_
    payload = json.dumps(
        [b.to_dict() for b in blocks], ensure_ascii=False
    )  # slack_sdk validates limits while building
    assert "*AI error rate*\\n33%" in payload and "5 met · 3 breached (38%)" in payload
    assert "hallucination 2" in payload and len(blocks) <= 50
    assert json.loads(json.dumps(s.as_dict()))["total"]["approve"] == 3


@pytest.mark.parametrize("n", [1, 2, 3, 10, 57])
def test_percentiles_match_a_reference_with_ties_and_unknown_times(db: Engine, n: int) -> None:
    rnd = random.Random(n)
    values = [float(rnd.choice([5, 30, 30, 60, 90, 600, 3600]) + rnd.choice([0, 0, 0.5])) for _ in range(n)]
    with session_scope(db) as session:
        store = Store(session)
        for v in values:
            store.decided("order_status", rnd.choice(["approve", "edit", "reject", "take_over"]), seconds=v)
        untimed = store.decided("order_status", "approve", seconds=60)  # a decision whose time is unknown
        session.flush()
        session.execute(
            text("UPDATE decisions SET seconds_to_decision = NULL WHERE review_id = :r"), {"r": untimed.id}
        )
    ordered = sorted(values)

    def ref(p: float) -> float:
        pos = p * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    ps = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)
    with session_scope(db, readonly=True) as session:
        got = percentiles(session, since=SINCE, until=NOW, interaction_type=None, human=n + 1, ps=ps)
        if db.dialect.name == "postgresql":
            cont = session.execute(
                text(
                    "SELECT "
                    + ", ".join(
                        f"percentile_cont({p}) WITHIN GROUP (ORDER BY seconds_to_decision)" for p in ps
                    )
                    + " FROM decisions WHERE stage = 'review' AND seconds_to_decision IS NOT NULL"
                )
            ).one()
            assert list(got) == pytest.approx([float(c) for c in cont])
    assert list(got) == pytest.approx([ref(p) for p in ps])


@pytest.mark.parametrize(
    "text_, expected",
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        ("4w", timedelta(weeks=4)),
        ("30D", timedelta(days=30)),
    ],
)
def test_periods_are_written_like_7d(text_: str, expected: timedelta) -> None:
    assert parse_period(text_) == expected


@pytest.mark.parametrize("bad", ["7", "week", "0d", "30m", "-3d", "1000w", "7d2h"])
def test_a_bad_period_is_refused_with_an_example(bad: str) -> None:
    with pytest.raises(BadPeriod, match="24h|1h to"):
        parse_period(bad)
