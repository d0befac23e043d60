"""QA of human decisions (issue 12 item 4): approved replies drawn for QA once delivered, rated in Slack,
counted apart from auto-sent ones; and the fast-approver warning.

The end-to-end test goes through the real service: a draft posted to the API, its card approved with a
signed click, the reply written to the Zendesk stand-in, the QA card posted to the Slack stand-in and
rated with signed clicks. The share and the warning use decisions written by the factory (the numbers
are the point there), and the real queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot.app.settings import BUNDLED_POLICY
from bot.qa.human import sample_delivered_reply
from bot.reporting.oversight.interval import Rate
from bot.reporting.oversight.recommend import evidence_of
from bot.reporting.oversight.review import build_review
from bot.reporting.oversight.reviewers import reviewer_pace
from bot.reporting.oversight.signals import fast_approver_signs
from bot.reporting.stats.query import compute_stats
from bot.review.policy import Policy, load_policy, parse_policy
from bot.slack.blocks.reports import render_review_blocks
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_sim import SlackSim, block_action_payload, view_submission_payload
from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import ZendeskStandin
from storage.db import make_engine, session_scope
from storage.models import AuditEvent, Decision, OutboxItem, Review
from tests.conftest import SIGNING_SECRET, Service, sample_draft, wait_for
from tests.reporting.factory import NOW, Store

QA_CHANNEL = "#support-qa"
APPROVER = "U0ALEX0001"
RATER = "U0QARATER1"
POLICY = load_policy(BUNDLED_POLICY)


def policy_file(tmp_path: Path, **qa: Any) -> Path:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    data["qa"] = {"sample_rate": 0.0, "channel": QA_CHANNEL, **qa}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def policy_with(**qa: Any) -> Policy:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    data["qa"] = {**data["qa"], **qa}
    return parse_policy(yaml.safe_dump(data))


class World:
    """The service with the Slack and Zendesk stand-ins, and a reviewer's and a rater's clicks."""

    def __init__(self, svc: Service, slack: SlackStandin, zendesk: ZendeskStandin) -> None:
        self.svc, self.slack, self.zendesk = svc, slack, zendesk
        self.sim = SlackSim(svc.url, SIGNING_SECRET)
        self.ticket = 700

    def review(self, review_id: str) -> Review:
        with session_scope(self.svc.runtime.engine, readonly=True) as session:
            review = session.get(Review, review_id)
            assert review is not None
            return review

    def post_for_review(self) -> str:
        self.ticket += 1
        self.zendesk.add_ticket(self.ticket, subject="Order", description="Where is it?", requester_id=7)
        body = sample_draft(ticket_id=str(self.ticket), confidence=0.75, draft="It ships today.")
        resp = self.svc.api.post("/v1/drafts", json=body)
        assert resp.status_code == 201 and resp.json()["route"] == "review", resp.text
        return str(resp.json()["id"])

    def message(self, channel_ts: tuple[str | None, str | None]) -> dict[str, Any]:
        channel, ts = channel_ts
        assert channel and ts
        return self.slack.message(channel, ts)

    def click(self, message: dict[str, Any], action_id: str, user_id: str, *, modal: bool = False) -> None:
        payload = block_action_payload(
            message=message,
            channel=message["channel"],
            action_id=action_id,
            user_id=user_id,
            user_name=user_id.lower(),
            trigger_id=self.slack.issue_trigger_id() if modal else None,
        )
        assert self.sim.post_action(payload).status_code == 200

    def settled(self) -> None:
        assert self.svc.runtime.services.outbox.drain(15)

    def qa_rows(self, review_id: str) -> list[Decision]:
        with session_scope(self.svc.runtime.engine, readonly=True) as session:
            q = select(Decision).where(Decision.review_id == review_id, Decision.stage == "qa")
            return list(session.execute(q).scalars())


@pytest.fixture
def world(
    tmp_path: Path, make_settings: Callable[..., Any], start_service: Callable[..., Service], db_url: str
) -> Iterator[World]:
    path = policy_file(tmp_path, human_sample_rate=1.0)
    with SlackStandin(token="xoxb-test") as slack, ZendeskStandin() as zendesk:
        zendesk.add_user(7, "maya@example.com", "Maya Patel", role="end-user")
        settings = make_settings(
            HITL_DATABASE_URL=db_url,
            SLACK_API_URL=slack.base_url,
            HITL_POLICY_FILE=str(path),
            HITL_HELPDESK="zendesk",
            ZENDESK_URL=zendesk.base_url,
            ZENDESK_EMAIL="bot@example.com",
            ZENDESK_API_TOKEN="zd-test-token",
        )
        w = World(start_service(settings), slack, zendesk)
        yield w
        w.sim.close()


def test_an_approved_reply_is_drawn_for_qa_once_delivered_and_rated_by_someone_else(world: World) -> None:
    review_id = world.post_for_review()
    card = wait_for(lambda: (r := world.review(review_id)).slack_ts and r, what="the review card")
    world.click(world.message((card.slack_channel, card.slack_ts)), ActionId.APPROVE, APPROVER)
    review = wait_for(lambda: (r := world.review(review_id)).extra.get("qa_card") and r, what="the QA card")
    # Drawn only once the customer has the reply: the helpdesk write had settled.
    assert review.helpdesk_state == "sent" and review.extra["qa_sampled"] is True
    assert [r["body"] for r in world.zendesk.public_replies(world.ticket)] == ["It ships today."]
    qa = world.message((review.extra["qa_card"]["channel"], review.extra["qa_card"]["ts"]))
    assert qa["channel"] == QA_CHANNEL
    assert "QA · approved reply" in str(qa["blocks"]) and qa["text"].startswith("QA: approved reply")
    for block in qa["blocks"]:
        assert Block.parse(block) is not None  # the stand-in holds what slack_sdk's models accept

    # The approver may not grade their own reply: told why, nothing recorded.
    world.click(qa, ActionId.QA_GOOD, APPROVER)
    told = wait_for(lambda: world.slack.ephemerals(APPROVER), what="the refusal")
    assert "You approved this reply yourself" in told[-1]["text"]
    assert world.qa_rows(review_id) == []

    world.click(qa, ActionId.QA_DEFECT, RATER, modal=True)
    view = wait_for(lambda: world.slack.views(), what="the defect modal")[-1]
    values = {
        BlockId.QA_DEFECT_CATEGORY: {
            ActionId.QA_DEFECT_CATEGORY: {
                "type": "static_select",
                "selected_option": {"value": "tone_mismatch"},
            }
        }
    }
    resp = world.sim.post_view_submission(view_submission_payload(view=view, user_id=RATER, values=values))
    assert resp.status_code == 200
    row = wait_for(lambda: world.qa_rows(review_id), what="the QA rating")[0]
    assert (row.decision, row.route, row.actor_id, row.defect_category) == (
        "qa_defect",
        "review",
        RATER,
        "tone_mismatch",
    )
    world.settled()
    with session_scope(world.svc.runtime.engine, readonly=True) as session:
        c = compute_stats(session=session, since=NOW - timedelta(days=3650), until=NOW + timedelta(days=3650))
        audited = session.execute(select(AuditEvent).where(AuditEvent.action == "qa_sampled")).scalars().all()
    # Counted as a human-approved reply's defect; the auto-sent QA figures and severe counts are untouched.
    assert (c.total.qa_human_good, c.total.qa_human_defect, c.total.qa_good, c.total.qa_defect) == (
        0,
        1,
        0,
        0,
    )
    assert c.total.qa_severe == 0
    assert [a.detail["approver"] for a in audited] == [APPROVER]


def test_a_rejected_draft_and_a_second_settlement_draw_nothing(world: World) -> None:
    review_id = world.post_for_review()
    card = wait_for(lambda: (r := world.review(review_id)).slack_ts and r, what="the review card")
    world.click(world.message((card.slack_channel, card.slack_ts)), ActionId.TAKE_OVER, APPROVER)
    wait_for(lambda: world.review(review_id).helpdesk_state, what="the assignment")
    world.settled()
    assert "qa_sampled" not in world.review(review_id).extra
    with session_scope(world.svc.runtime.engine, readonly=True) as session:
        posts = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack_post_qa")).scalars().all()
    assert posts == []


# ---------------------------------------------------------------- the share drawn


class Delivered:
    def __init__(self, review_id: str, decision: str) -> None:
        self.review_id, self.decision = review_id, decision


def test_the_share_drawn_is_stable_and_near_the_policy_rate(db_url: str) -> None:
    """1,000 approved replies at 5%: 50 expected, binomial sd = sqrt(1000 * 0.05 * 0.95) = 6.9, so a
    fair draw lands in 50 ± 21 (3 sd); the same reviews give the same draw every time."""
    policy = policy_with(human_sample_rate=0.05)
    assert policy.qa.human_sample_rate == 0.05
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            store = Store(session)
            ids = [store.decided("order_status", "approve").id for _ in range(1000)]
            for review_id in ids:
                key = f"{review_id}:review"
                sample_delivered_reply(
                    session, policy, Delivered(review_id, "approve"), key=key, settled="done", now=NOW
                )
            drawn = {r for r in ids if session.get(Review, r).extra["qa_sampled"]}  # type: ignore[union-attr]
            # Settling again (a retried write) draws nothing new and queues no second card.
            again = [
                sample_delivered_reply(
                    session, policy, Delivered(r, "approve"), key=f"{r}:review", settled="done", now=NOW
                )
                for r in ids[:50]
            ]
            cards = (
                session.execute(select(OutboxItem).where(OutboxItem.kind == "slack_post_qa")).scalars().all()
            )
        assert 29 <= len(drawn) <= 71 and not any(again)
        assert {c.payload["review_id"] for c in cards} == drawn

        # The same reviews, drawn again from scratch: the very same set.
        with session_scope(engine) as session:
            for r in ids:
                review = session.get(Review, r)
                assert review is not None
                review.extra = {}
                session.add(review)
            session.flush()
            redrawn = {
                r
                for r in ids
                if sample_delivered_reply(
                    session, policy, Delivered(r, "approve"), key=f"{r}:review", settled="done", now=NOW
                )
            }
        assert redrawn == drawn
    finally:
        engine.dispose()


def test_only_a_delivered_main_write_of_an_approval_or_edit_is_drawn(engine: Any) -> None:
    policy = policy_with(human_sample_rate=1.0)
    with session_scope(engine) as session:
        store = Store(session)
        approved = store.decided("order_status", "approve").id
        edited = store.decided("order_status", "edit", edit_distance=0.1).id
        rejected = store.decided("order_status", "reject").id
        auto = store.decided("order_status", "auto_send").id

        def draw(review_id: str, decision: str, key: str | None = None, settled: str = "done") -> bool:
            key = key or f"{review_id}:review"
            return sample_delivered_reply(
                session, policy, Delivered(review_id, decision), key=key, settled=settled, now=NOW
            )

        assert not draw(approved, "approve", settled="conflict")  # a 409: the customer never got it
        assert not draw(approved, "approve", key=f"{approved}:review:author-note")
        assert not draw(rejected, "reject") and not draw(auto, "auto_send")
        assert draw(approved, "approve") and draw(edited, "edit")
        assert not draw(approved, "approve")  # drawn once


# ---------------------------------------------------------------- defect rates and the warning


def _approvals(store: Store, actor: str, n: int, seconds: float, qa: list[bool]) -> None:
    """`n` approvals by `actor` taking `seconds` each; the first len(qa) QA-rated (True = defect)."""
    for i in range(n):
        review = store.decided("order_status", "approve", seconds=seconds)
        row = session_row(store, review.id)
        row.actor_id = actor
        store.session.add(row)
        review.decided_by = actor
        if i < len(qa):
            rating = store.decide(
                review,
                "qa_defect" if qa[i] else "qa_good",
                stage="qa",
                at=review.decided_at + timedelta(hours=2),
            )  # type: ignore[operator]
            rating.actor_id = RATER
            if qa[i]:
                rating.defect_category = "tone_mismatch"
    store.session.flush()


def session_row(store: Store, review_id: str) -> Decision:
    q = select(Decision).where(Decision.review_id == review_id, Decision.stage == "review")
    return store.session.execute(q).scalars().one()


def team(store: Store, *, fast_defects: int) -> None:
    """Three steady reviewers (300 s each) and one fast one (60 s), 30 approvals each, 10 of each rated.

    Steady: 1 defect in 10 each → team without the fast one 3 of 30.
    Fast: `fast_defects` of 10."""
    for actor in ("U0STEADY01", "U0STEADY02", "U0STEADY03"):
        _approvals(store, actor, 30, 300.0, [True] + [False] * 9)
    _approvals(store, "U0FAST0001", 30, 60.0, [True] * fast_defects + [False] * (10 - fast_defects))


def test_a_fast_approver_with_more_later_defects_is_named(db_url: str) -> None:
    """Fast reviewer: 6 defects of 10 rated. Wilson(6, 10): centre (0.6 + 0.1921) / 1.3841 = 0.5723,
    half-width 1.96 * sqrt(0.024 + 0.0096) / 1.3841 = 0.2596, so 31.3%–83.2%. The team: 9 of 40 = 22.5%.
    Median 60 s < 0.5 × the team's 300 s (the median of the reviewers' medians 60, 300, 300, 300), and
    31.3% > 22.5%: warned."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            team(Store(session), fast_defects=6)
        with session_scope(engine, readonly=True) as session:
            pace = reviewer_pace(session=session, since=NOW - timedelta(days=7), until=NOW, min_approvals=20)
            review = build_review(session=session, policy=POLICY, now=NOW, period=timedelta(days=7))
        assert pace.median_seconds == 300.0 and pace.approvals == 120
        assert (pace.qa.k, pace.qa.n) == (9, 40)
        fast = next(r for r in pace.reviewers if r.actor_id == "U0FAST0001")
        assert (fast.approvals, fast.median_seconds, fast.qa.k, fast.qa.n) == (30, 60.0, 6, 10)
        assert fast.qa.low == pytest.approx(0.3127, abs=1e-3)
        signs = [w for w in review.warnings if w.code == "fast_approver"]
        assert len(signs) == 1
        assert "<@U0FAST0001> approves fast: median 1m over 30 approvals, the team's 5m" in signs[0].message
        assert "60% (6 of 10; 95% Wilson 31%–83%), the team's 22% (9 of 40)" in signs[0].message
        # In Slack the reviewer is a live mention (customer-proof escaping otherwise).
        _, blocks = render_review_blocks(review)
        shown = str([b.to_dict() for b in blocks])
        assert "<@U0FAST0001> approves fast" in shown
        # The type's evidence: human-approved replies' QA defects with their interval.
        rec = next(r for r in review.recommendations if r.interaction_type == "order_status")
        assert "QA defects of human-approved replies 22% (9 of 40; 95% Wilson 12%–38%)" in rec.evidence
    finally:
        engine.dispose()


def test_a_fast_approver_whose_replies_hold_up_is_not_warned(db_url: str) -> None:
    """Fast reviewer: 3 defects of 10. Wilson(3, 10) lower bound 10.8%, below the team's 6 of 40 = 15%:
    fast, but not shown worse, so no warning; and since nobody is shown worse, nobody's approvals are
    counted (the costly range of every approval). Nor with fewer approvals than
    fast_approver_min_approvals."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            team(Store(session), fast_defects=3)
        with session_scope(engine, readonly=True) as session:
            pace = reviewer_pace(session=session, since=NOW - timedelta(days=7), until=NOW, min_approvals=20)
            few = reviewer_pace(session=session, since=NOW - timedelta(days=7), until=NOW, min_approvals=31)
        assert Rate(3, 10).low == pytest.approx(0.1078, abs=1e-3) and pace.qa.value == 6 / 40
        assert fast_approver_signs(pace, POLICY.oversight) == []
        assert pace.reviewers == () and pace.approvals is None and pace.median_seconds is None
        assert few.reviewers == () and fast_approver_signs(few, POLICY.oversight) == []
    finally:
        engine.dispose()


def test_evidence_shows_human_qa_defects_next_to_auto_sent_ones() -> None:
    """2 of 20 human-approved replies and 1 of 25 auto-sent ones defective. Wilson(2, 20) = 2.8%–30.1%;
    Wilson(1, 25) = 0.7%–19.5%."""
    from bot.reporting.stats.model import Counts

    c = Counts(approve=20, auto_send=25, qa_good=24, qa_defect=1, qa_human_good=18, qa_human_defect=2)
    line = [e for e in evidence_of(c) if e.startswith("QA defects")]
    assert line == [
        "QA defects of human-approved replies 10% (2 of 20; 95% Wilson 3%–30%); auto-sent 4% (1 of 25; 95% Wilson 1%–20%)"
    ]
    assert not [e for e in evidence_of(Counts(approve=3)) if e.startswith("QA defects")]


def test_an_unrated_human_sample_older_than_a_day_is_in_the_qa_backlog(db_url: str) -> None:
    """Two approved replies drawn for QA three days ago: one rated, one not; one drawn today (not late).
    The warning counts the one unrated for over a day."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            store = Store(session)
            for created, rated in (
                (NOW - timedelta(days=3), True),
                (NOW - timedelta(days=3), False),
                (NOW - timedelta(hours=2), False),
            ):
                review = store.decided("order_status", "approve", created=created)
                review.extra = {"qa_sampled": True}
                session.add(review)
                if rated:
                    store.decide(review, "qa_good", stage="qa", at=created + timedelta(hours=5))
        with session_scope(engine, readonly=True) as session:
            review = build_review(session=session, policy=POLICY, now=NOW, period=timedelta(days=7))
        backlog = [(w.interaction_type, w.message) for w in review.warnings if w.code == "qa_backlog"]
        assert backlog == [
            (
                "order_status",
                "1 reply drawn for QA over a day ago still unrated: the QA pass rate lags behind",
            )
        ]
    finally:
        engine.dispose()
