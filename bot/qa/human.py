"""QA of human decisions: a stable share of approved and edited replies is rated like auto-sent ones.

The draw happens when the helpdesk write of the reply settles (`bot.helpdesk.delivery`), in the same
transaction: QA rates what the customer actually got, and a reply that never reached the ticket (a 409,
a closed ticket) is never drawn. The draw is the same hash as the auto-sent sample
(`bot.review.ingest.qa_sampled`) at `policy.qa.human_sample_rate`; a drawn review carries the same
`qa_sampled` marker, so the unrated-QA-backlog warning and its partial index cover it unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlmodel import Session, select

from bot.outbox.kinds import QaCard, enqueue_qa_card
from bot.review.ingest import qa_sampled
from bot.review.policy import Policy
from storage import repo
from storage.models import DecisionKind, OutboxItem, Review, ReviewStatus, Route

HUMAN_REPLIES = frozenset({DecisionKind.APPROVE, DecisionKind.EDIT})
SENT_BY_HUMANS = frozenset({ReviewStatus.APPROVED, ReviewStatus.EDITED})


def is_human_reply(review: Review) -> bool:
    """An approved or edited reply (not auto-sent): the kind of reply this module samples."""
    return review.route != Route.AUTO_SEND and review.status in SENT_BY_HUMANS


class Delivered(Protocol):
    """What the helpdesk delivery knows about the write that settled (its DecisionFacts)."""

    @property
    def review_id(self) -> str: ...

    @property
    def decision(self) -> str: ...


def sample_delivered_reply(
    session: Session, policy: Policy, delivered: Delivered, *, key: str, settled: str, now: datetime
) -> bool:
    """After a helpdesk write settled: draw a human-approved reply for QA and queue its card; True if drawn.

    Only the main write of a review decision (`<review_id>:review`) that ended `done` counts; an author
    note, a conflict or a second settlement of the same write draws nothing."""
    review_id, decision = delivered.review_id, delivered.decision
    if settled != "done" or decision not in HUMAN_REPLIES or key != f"{review_id}:review":
        return False
    review = session.get(Review, review_id)
    if review is None or not is_human_reply(review) or "qa_sampled" in review.extra:
        return False
    drawn = policy.qa.channel is not None and qa_sampled(review.id, policy.qa.human_sample_rate)
    review.extra = {**review.extra, "qa_sampled": drawn}
    session.add(review)
    if not drawn:
        return False
    key = f"qa:{review.id}"
    if session.execute(select(OutboxItem.id).where(OutboxItem.dedupe_key == key)).first() is None:
        enqueue_qa_card(session, now=now, card=QaCard(review_id=review.id), dedupe_key=key)
    repo.audit(
        session=session,
        at=now,
        actor="hitl",
        action="qa_sampled",
        review_id=review.id,
        decision=decision,
        approver=review.decided_by,
        rate=policy.qa.human_sample_rate,
    )
    return True
