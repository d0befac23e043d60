"""The oversight review's customer numbers against a hand-computed week: outcomes posted through the real
API, decisions from the factory (clicks are not the point here). All numbers are worked out below.

The week (order_status, 7 days to NOW):
- 10 auto-sent replies to customers c0..c9, 5 days ago; QA rated 5 of them: 4 good, 1 tone defect.
- 4 approved (a0..a3; 120 s each; a0 and a1 at confidence 0.87, the rest 0.80), 2 edited (e0 600 s light,
  e1 2400 s heavy at confidence 0.86), 1 taken over (3600 s), 1 rejected (60 s). 8 human decisions.
- Came back within 72 h: c0 (24 h later) and a0 (2 h later); c1 again after 80 h does not count.
  Replies with a customer (all 5 days old, so their 72 h have passed): 10 + 4 + 2 = 16, so 2 of 16 = 12.5%,
  Wilson: centre (0.125 + 0.1201) / 1.2401 = 0.1976, half-width 1.96 * 0.1029 / 1.2401 = 0.1626: 3.5%–36.0%.
- CSAT (satisfied = 4-5 or good): auto-sent 5, good, 2, 4 → 3 of 4 (Wilson 30.1%–95.4%);
  approved 5, bad → 1 of 2; edited 4 → 1 of 1; taken over 1 → 0 of 1. One edited ticket reopened.
- Customer-facing errors: 10 auto-sent / 7 days = 1.43 a day × QA defect rate 1/5 = 0.29 a day;
  Wilson(1, 5) = 3.6%–62.4%, so 0.05–0.89 a day.
- At the proposed 0.85 (one step down; too few decisions to expand, so keep): the what-if replays the 8
  human decisions; a0, a1 and e1 are at or above 0.85 (3 of 8), e1 was heavily edited (1 of 3).
  Errors a day = (10 × 1/5 + 8 × 3/8 × 1/3) / 7 = (2 + 1) / 7 = 0.43.
- First reply: auto-sent p50/p90 ≤ 10 s; reviewed (approve + edit) 120, 120, 120, 120, 600, 2400 s:
  p50 needs 3 of 6 → ≤ 2m; p90 needs 5.4 of 6 → ≤ 1h (2400 s is in the 30m–1h bucket).
- Reviewer time: 4 × 120 + 600 + min(2400, 1800) + min(3600, 1800) + 60 = 4740 s = 1.3 h in one week.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.app.settings import BUNDLED_POLICY
from bot.reporting.oversight.review import OversightReview, build_review
from bot.reporting.oversight.text import render_review_text
from bot.review.policy import load_policy
from bot.slack.blocks.reports import render_review_blocks
from storage.db import make_engine, session_scope
from tests.conftest import FakeClock, Service
from tests.reporting.factory import NOW, Store

POLICY = load_policy(BUNDLED_POLICY)
WEEK = timedelta(days=7)


@pytest.fixture
def svc(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str, clock: FakeClock
) -> Service:
    return start_service(make_settings(HITL_DATABASE_URL=db_url, HITL_SCHEDULER=False), clock=clock)


def the_week(store: Store) -> dict[str, str]:
    """Build the week above; the ticket ids the outcomes go to, by customer."""
    tickets: dict[str, str] = {}
    five_days = NOW - timedelta(days=5)
    for i in range(10):
        r = store.decided(
            "order_status",
            "auto_send",
            seconds=None,
            confidence=0.95,
            customer=f"c{i}",
            created=five_days + timedelta(minutes=i),
        )
        tickets[f"c{i}"] = r.ticket_id
        if i < 5:
            store.decide(
                r,
                "qa_defect" if i == 4 else "qa_good",
                stage="qa",
                defect="tone_mismatch" if i == 4 else None,
                at=r.created_at + timedelta(hours=1),
            )
    for i in range(4):
        r = store.decided(
            "order_status",
            "approve",
            seconds=120,
            confidence=0.87 if i < 2 else 0.80,
            customer=f"a{i}",
            created=five_days + timedelta(hours=1, minutes=i),
        )
        tickets[f"a{i}"] = r.ticket_id
    e0 = store.decided(
        "order_status",
        "edit",
        seconds=600,
        edit_distance=0.1,
        customer="e0",
        created=five_days + timedelta(hours=2),
    )
    e1 = store.decided(
        "order_status",
        "edit",
        seconds=2400,
        edit_distance=0.5,
        confidence=0.86,
        customer="e1",
        created=five_days + timedelta(hours=2, minutes=1),
    )
    t = store.decided(
        "order_status", "take_over", seconds=3600, customer="t0", created=five_days + timedelta(hours=3)
    )
    store.decided(
        "order_status", "reject", seconds=60, customer="r0", created=five_days + timedelta(hours=3, minutes=1)
    )
    tickets |= {"e0": e0.ticket_id, "e1": e1.ticket_id, "t0": t.ticket_id}
    # Later contacts: c0 after 24 h, a0 after 2 h (both came back); c1 after 80 h (outside the window).
    store.review("order_status", customer="c0", created=five_days + timedelta(hours=24))
    store.review("order_status", customer="a0", created=five_days + timedelta(hours=3))
    store.review("order_status", customer="c1", created=five_days + timedelta(hours=80))
    return tickets


def post_outcomes(svc: Service, tickets: dict[str, str]) -> None:
    at = (NOW - timedelta(hours=1)).isoformat()
    ratings = {"c0": 5, "c1": "good", "c2": 2, "c3": 4, "a0": 5, "a1": "bad", "e0": 4, "t0": 1}
    for who, value in ratings.items():
        resp = svc.api.post(
            "/v1/outcomes", json={"ticket_id": tickets[who], "kind": "csat", "value": value, "at": at}
        )
        assert resp.status_code == 201, resp.text
    resp = svc.api.post("/v1/outcomes", json={"ticket_id": tickets["e1"], "kind": "reopened", "at": at})
    assert resp.status_code == 201, resp.text


def test_the_review_shows_each_customer_number_of_a_hand_computed_week(svc: Service, db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        tickets = the_week(Store(session))
    post_outcomes(svc, tickets)
    with session_scope(engine, readonly=True) as session:
        review = build_review(session=session, policy=POLICY, now=NOW, period=WEEK)
    engine.dispose()
    rec = {r.interaction_type: r for r in review.recommendations}["order_status"]
    assert rec.verdict == "keep" and rec.proposed == 0.85
    csat, came_back, errors, first_reply, reviewer = rec.customer
    assert csat == (
        "CSAT satisfied (4–5 or good): auto-sent 75% (3 of 4; 95% Wilson 30%–95%); "
        "approved 50% (1 of 2; 95% Wilson 9%–91%); edited 100% (1 of 1; 95% Wilson 21%–100%); "
        "taken over 0% (0 of 1; 95% Wilson 0%–79%)"
    )
    assert came_back == (
        "came back within 72h 12% (2 of 16; 95% Wilson 3%–36%) (replies whose 72h had passed); 1 reopened"
    )
    assert errors == (
        "customer-facing errors ≈ 0.3/day (1.4 auto-sent a day × QA defect rate; 95% Wilson 0.1–0.9), "
        "≈ 0.4/day at 0.85"
    )
    assert first_reply == "first reply auto-sent p50 ≤ 10s / p90 ≤ 10s, reviewed p50 ≤ 2m / p90 ≤ 1h"
    assert reviewer == (
        "reviewer time 1.3 h/week over 8 human decisions (draft arrival to decision, at most 30 min per review)"
    )
    # The same numbers for all types (only one here), and in both renderings.
    assert review.overall[:2] == (csat, came_back)
    assert_rendered(review)


def assert_rendered(review: OversightReview) -> None:
    assert "customers: CSAT satisfied" in render_review_text(review)
    _, blocks = render_review_blocks(review)
    texts = [b.to_dict().get("text", {}).get("text", "") for b in blocks]
    assert any("Customers and cost, all types" in t and "Wilson" in t for t in texts)


def good_period(store: Store, end: timedelta) -> None:
    """A week that meets every expand criterion on its Wilson lower bounds (190 of 200 approved: lower
    bound 91.0%; 80 of 80 QA good: 95.4%), ending `end` before NOW."""
    start = NOW - end - WEEK + timedelta(hours=1)
    for i in range(200):
        kind = "approve" if i < 190 else "edit"
        store.decided(
            "order_status",
            kind,
            seconds=60,
            edit_distance=0.05 if kind == "edit" else None,
            confidence=0.7,
            created=start + timedelta(minutes=i),
        )
    for i in range(100):
        r = store.decided(
            "order_status",
            "auto_send",
            seconds=None,
            confidence=0.95,
            created=start + timedelta(hours=5, minutes=i),
        )
        if i < 80:
            store.decide(r, "qa_good", stage="qa", at=r.created_at + timedelta(hours=1))


def test_expand_needs_two_good_weeks_in_a_row_from_the_database(db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        good_period(Store(session), end=timedelta(0))
    with session_scope(engine, readonly=True) as session:
        one = build_review(session=session, policy=POLICY, now=NOW, period=WEEK)
    with session_scope(engine) as session:
        good_period(Store(session), end=WEEK)
    with session_scope(engine, readonly=True) as session:
        two = build_review(session=session, policy=POLICY, now=NOW, period=WEEK)
    engine.dispose()
    first = one.recommendations[0]
    assert first.verdict == "keep"
    assert first.reasons[0].startswith("not sustained: in the 7d before, only 0 decisions")
    second = two.recommendations[0]
    assert second.verdict == "expand", second.reasons
    assert "approved without edit 95% (190 of 200; 95% Wilson 91%–97%)" in second.evidence


def test_qa_samples_unrated_for_over_a_day_are_a_warning_sign(db_url: str) -> None:
    # Three auto-sent replies drawn for QA: 3 days old and unrated (backlog), 3 days old and rated (fine),
    # 2 hours old and unrated (not yet late). One not drawn for QA (never counts). Backlog: 1.
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        store = Store(session)
        for age, rated, sampled in (
            (timedelta(days=3), False, True),
            (timedelta(days=3), True, True),
            (timedelta(hours=2), False, True),
            (timedelta(days=3), False, False),
        ):
            r = store.decided("order_status", "auto_send", seconds=None, confidence=0.95, created=NOW - age)
            r.extra = {"qa_sampled": sampled}
            session.add(r)
            if rated:
                store.decide(r, "qa_good", stage="qa", at=NOW - timedelta(days=2))
    with session_scope(engine, readonly=True) as session:
        review = build_review(session=session, policy=POLICY, now=NOW, period=WEEK)
    engine.dispose()
    backlog = [w for w in review.warnings if w.code == "qa_backlog"]
    assert [(w.interaction_type, w.message) for w in backlog] == [
        (
            "order_status",
            "1 reply drawn for QA over a day ago still unrated: the QA pass rate lags behind",
        )
    ]
