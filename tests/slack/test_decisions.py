"""Decisions in the store: the conditional update under real concurrency, who may decide, the feedback row."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.app.settings import BUNDLED_POLICY
from bot.review.decisions import AlreadyDecided, NotAllowed, may_decide, record_decision
from bot.review.edit_distance import edit_distance
from bot.review.ingest import DraftIn, ingest_draft
from bot.review.people import PeopleDirectory
from bot.review.policy import People, Policy, load_policy
from storage.db import make_engine, session_scope
from storage.models import Decision, DecisionKind, OutboxItem, Review
from tests.conftest import BOT_TOKEN, sample_draft

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
POLICY = load_policy(BUNDLED_POLICY)


def store_review(url: str, **overrides: Any) -> str:
    engine = make_engine(url)
    with session_scope(engine) as session:
        draft = DraftIn.model_validate(sample_draft(model="gpt-4o-mini", prompt_version="v7", **overrides))
        review_id = ingest_draft(session=session, draft=draft, policy=POLICY, now=NOW).review.id
    engine.dispose()
    return review_id


def with_people(policy: Policy, *, approvers: People, supervisors: People) -> Policy:
    tiers = {
        name: tier.model_copy(update={"approvers": approvers, "supervisors": supervisors})
        for name, tier in policy.tiers.items()
    }
    return policy.model_copy(update={"tiers": tiers})


def test_twenty_threads_racing_record_decision_make_exactly_one(db_url: str) -> None:
    review_id = store_review(db_url)
    engine = make_engine(db_url)
    gate = threading.Barrier(20)

    def decide(i: int) -> str:
        gate.wait()
        try:
            with session_scope(engine) as session:
                record_decision(
                    session=session,
                    review_id=review_id,
                    decision=DecisionKind.APPROVE,
                    actor_id=f"U{i:02d}",
                    actor_name=f"user{i}",
                    now=NOW,
                    policy=POLICY,
                )
            return "won"
        except AlreadyDecided as lost:
            return f"lost to {lost.actor_id}"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(decide, range(20)))
    with session_scope(engine, readonly=True) as session:
        review = session.get(Review, review_id)
        decisions = session.execute(select(Decision).where(Decision.review_id == review_id)).scalars().all()
        kinds = [r.kind for r in session.execute(select(OutboxItem)).scalars()]
    engine.dispose()
    assert outcomes.count("won") == 1
    assert outcomes.count(f"lost to {review.decided_by}") == 19
    assert (
        len(decisions) == 1
        and kinds.count("helpdesk_write") == 1
        and kinds.count("slack_refresh_review") == 1
    )


def test_the_feedback_row_records_the_edit_timing_and_sla(sqlite_url: str) -> None:
    review_id = store_review(sqlite_url, draft="Your order ships Thursday.")
    engine = make_engine(sqlite_url)
    late = NOW + timedelta(minutes=45)
    with session_scope(engine) as session:
        row = record_decision(
            session=session,
            review_id=review_id,
            decision="edit",
            actor_id="U1",
            actor_name="alex",
            now=late,
            policy=POLICY,
            final_text="Your order ships Friday.",
        )
    engine.dispose()
    assert (row.final_text, row.seconds_to_decision, row.sla_breached) == (
        "Your order ships Friday.",
        2700.0,
        True,
    )
    assert 0 < (row.edit_distance or 0) < 0.3
    assert (row.model, row.prompt_version, row.ai_draft) == (
        "gpt-4o-mini",
        "v7",
        "Your order ships Thursday.",
    )


def test_a_supervisor_only_decision_is_refused_without_a_supervisor(sqlite_url: str) -> None:
    review_id = store_review(sqlite_url, interaction_type="refund", refund_amount=500.0, confidence=0.8)
    engine = make_engine(sqlite_url)
    with pytest.raises(NotAllowed), session_scope(engine) as session:
        record_decision(
            session=session,
            review_id=review_id,
            decision="approve",
            actor_id="U1",
            actor_name="a",
            now=NOW,
            policy=POLICY,
        )
    with session_scope(engine) as session:
        row = record_decision(
            session=session,
            review_id=review_id,
            decision="reject",
            actor_id="U1",
            actor_name="a",
            now=NOW,
            policy=POLICY,
            reason="policy_misapplication",
            comment="over the limit",
        )
    engine.dispose()
    assert (row.defect_category, row.defect_comment) == ("policy_misapplication", "over the limit")


def test_may_decide_reads_user_groups_once_and_fails_closed(slack_standin: Any, sqlite_url: str) -> None:
    slack_standin.add_usergroup("S0AGENTS", ["U0ALEX"])
    policy = with_people(
        POLICY, approvers=People(usergroups=["S0AGENTS"]), supervisors=People(users=["U0LEAD"])
    )
    directory = PeopleDirectory(WebClient(base_url=slack_standin.base_url, token=BOT_TOKEN), ttl=60)
    refund_id, plain_id = (
        store_review(sqlite_url, interaction_type="refund", refund_amount=500.0),
        store_review(sqlite_url),
    )
    engine = make_engine(sqlite_url)
    with session_scope(engine, readonly=True) as session:
        review, plain = session.get(Review, refund_id), session.get(Review, plain_id)
    engine.dispose()
    assert review is not None and plain is not None

    def check(r: Review, decision: str, user: str, d: PeopleDirectory = directory) -> bool | str:
        try:
            return may_decide(review=r, decision=decision, user_id=user, policy=policy, directory=d)
        except NotAllowed as exc:
            return exc.why

    assert check(plain, "approve", "U0ALEX") is False
    assert check(plain, "approve", "U0LEAD") is True
    assert "Only approvers" in str(check(plain, "approve", "U0NOBODY"))
    assert "Only a supervisor" in str(check(review, "approve", "U0ALEX"))
    assert check(review, "take_over", "U0ALEX") is False
    assert len(slack_standin.calls("usergroups.users.list")) == 1, "cached"

    broken = with_people(POLICY, approvers=People(usergroups=["S0MISSING"]), supervisors=People())
    fresh = PeopleDirectory(WebClient(base_url=slack_standin.base_url, token=BOT_TOKEN))
    with pytest.raises(NotAllowed, match="could not be checked"):
        may_decide(review=plain, decision="approve", user_id="U0ALEX", policy=broken, directory=fresh)


def test_empty_approvers_mean_anyone_but_supervisor_only_fails_closed_without_supervisors() -> None:
    review = Review(
        id="r",
        idempotency_key="k",
        ticket_id="t",
        interaction_type="refund",
        confidence=0.7,
        customer_message="m",
        draft="d",
        route="review",
        tier="billing",
        supervisor_decisions=["approve"],
        created_at=NOW,
    )
    directory = PeopleDirectory(WebClient(base_url="http://127.0.0.1:9/"))  # never called
    assert (
        may_decide(review=review, decision="reject", user_id="U0ANY", policy=POLICY, directory=directory)
        is False
    )
    with pytest.raises(NotAllowed, match="names none"):
        may_decide(review=review, decision="approve", user_id="U0ANY", policy=POLICY, directory=directory)


@pytest.mark.parametrize(
    ("draft", "final", "expected"),
    [
        ("same", "same", 0.0),
        ("", "", 0.0),
        ("abc", "xyz", 1.0),
        ("kitten", "sitting", round(3 / 7, 6)),
    ],
)
def test_edit_distance_is_normalised_levenshtein(draft: str, final: str, expected: float) -> None:
    assert edit_distance(draft, final) == expected


def test_edit_distance_stays_fast_on_long_texts() -> None:
    value = edit_distance("a" * 60_000 + "middle" + "b" * 60_000, "a" * 60_000 + "centre!" + "b" * 60_000)
    assert 0 < value < 0.001
    assert 0.4 < edit_distance("x" * 5000, "y" * 2500 + "x" * 2500) <= 0.6
