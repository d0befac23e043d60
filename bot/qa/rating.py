"""QA of sent replies: the card in the QA channel, the defect modal, and recording one rating per reply.

Human-on-the-loop: an auto-sent reply has already reached the customer. The policy's sampled share is
posted to `policy.qa.channel` with Good / Defect; the rating joins the feedback store as a `Decision`
with stage "qa" (one per review: the second rater is told who rated first). Approved and edited replies
drawn by `bot.qa.human` once delivered are rated the same way, by anyone but the person who approved them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.app.runtime import Runtime
from bot.outbox.kinds import OutboxKind, QaCard, SlackUpdate, enqueue_slack_update, review_order
from bot.outbox.registry import KindPolicy, Permanent
from bot.qa.human import is_human_reply
from bot.review.decisions import Click, DecisionError
from bot.slack.blocks.qa import DEFECT_LABELS, label, qa_card, qa_text
from bot.slack.dedupe import first_delivery
from bot.slack.delivery import call as slack_call
from storage import repo
from storage.db import session_scope
from storage.models import Decision, DecisionKind, OutboxItem, Review, Route

# A long Slack queue must not lose a QA card: only a run of real failures this long gives up on one.
QA_POST_POLICY = KindPolicy(
    max_attempts=20, max_age=None, give_up_after=timedelta(hours=6), initial_delay=1.0, max_delay=300.0
)


class QaError(DecisionError):
    """A rating that cannot be recorded; the rater is told why, ephemerally (and it is audited)."""


class AlreadyRated(QaError):
    """Someone rated this reply first (plain values: the session that found them may roll back)."""

    def __init__(self, first: Decision) -> None:
        super().__init__(
            first.review_id,
            f"review {first.review_id} was already rated {first.decision} by "
            f"{first.actor_name or first.actor_id}",
        )
        self.decision, self.actor_id, self.category = first.decision, first.actor_id, first.defect_category

    def user_message(self, user_id: str) -> str:
        who = "you" if self.actor_id == user_id else f"<@{self.actor_id}>" if self.actor_id else "someone"
        verdict = "*Good*" if self.decision == DecisionKind.QA_GOOD else f"*Defect: {label(self.category)}*"
        return f"This reply was already rated {verdict} by {who}; the first rating counts."


# ------------------------------------------------------------------ recording a rating


@dataclass(frozen=True)
class Rated:
    review: Review
    rating: Decision


def rate_auto_send(
    *,
    session: Session,
    review_id: str,
    good: bool,
    actor_id: str,
    actor_name: str | None,
    now: datetime,
    category: str | None = None,
    comment: str | None = None,
    card: dict[str, str] | None = None,
) -> Rated:
    """Record the one QA rating of a sent reply (auto-sent, or human-approved and drawn), update its card,
    audit it. Raises AlreadyRated."""
    review = _rateable(session, review_id, good=good, category=category, actor_id=actor_id)
    row = _qa_decision(
        review, good=good, actor_id=actor_id, actor_name=actor_name, now=now, category=category
    )
    if not good:
        row.defect_comment = (comment or "").strip() or None
    _insert_first_rating(session, row)
    _refresh_qa_card(session, review, row, card or review.extra.get("qa_card") or {}, now)
    repo.audit(
        session=session,
        at=now,
        actor=actor_id,
        action="qa_rated",
        review_id=review.id,
        rating=row.decision,
        defect_category=row.defect_category,
    )
    return Rated(review, row)


def _drawn_human_reply(review: Review) -> bool:
    """A human-approved or edited reply that `bot.qa.human` drew for QA once it was delivered."""
    return is_human_reply(review) and review.extra.get("qa_sampled") is True


def _rateable(session: Session, review_id: str, *, good: bool, category: str | None, actor_id: str) -> Review:
    """The sent reply to rate, or the reason it cannot be rated (QaError / AlreadyRated)."""
    review = session.get(Review, review_id)
    if review is None or not (review.route == Route.AUTO_SEND or _drawn_human_reply(review)):
        raise QaError(review_id, "This reply was not drawn for QA; nothing to rate.")
    if review.route != Route.AUTO_SEND and review.decided_by == actor_id:
        raise QaError(
            review_id, "You approved this reply yourself: someone else rates it, so QA stays independent."
        )
    first = _qa_row(session, review_id)
    if first is not None:
        raise AlreadyRated(first)
    if not good and category not in DEFECT_LABELS:
        raise QaError(review_id, "Pick a defect category.")
    return review


def _qa_decision(
    review: Review, *, good: bool, actor_id: str, actor_name: str | None, now: datetime, category: str | None
) -> Decision:
    """The feedback-store row of one QA rating (stage "qa")."""
    waited = (now - review.decided_at).total_seconds() if review.decided_at else None
    return Decision(
        review_id=review.id,
        stage="qa",
        ticket_id=review.ticket_id,
        interaction_type=review.interaction_type,
        confidence=review.confidence,
        route=review.route,
        tier=review.tier,
        reasons=review.reasons,
        customer_message=review.customer_message,
        ai_draft=review.draft,
        final_text=review.final_text,
        decision=DecisionKind.QA_GOOD if good else DecisionKind.QA_DEFECT,
        actor_id=actor_id,
        actor_name=actor_name,
        decided_at=now,
        seconds_to_decision=waited,
        edit_distance=0.0,
        defect_category=None if good else category,
        model=review.extra.get("model"),
        prompt_version=review.extra.get("prompt_version"),
    )


def _insert_first_rating(session: Session, row: Decision) -> None:
    """Two raters at once: the unique (review_id, stage) lets the first in; the second hears who it was."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        first = _qa_row(session, row.review_id)
        if first is None:
            raise
        raise AlreadyRated(first) from None


def _refresh_qa_card(
    session: Session, review: Review, row: Decision, card: dict[str, str], now: datetime
) -> None:
    if not (card.get("channel") and card.get("ts")):
        return
    update = SlackUpdate(
        channel=card["channel"],
        ts=card["ts"],
        text=qa_text(review),
        blocks=[b.to_dict() for b in qa_card(review, row)],
        review_id=review.id,
    )
    enqueue_slack_update(session, now=now, update=update, order_key=review_order(review.id))


def rate(
    runtime: Runtime, click: Click, *, good: bool, category: str | None = None, comment: str | None = None
) -> Rated | None:
    """The service the QA listeners call: one rating per click delivery; None when the delivery was seen before."""
    now = runtime.clock.now()
    if click.delivery_key and not first_delivery(engine=runtime.engine, key=click.delivery_key, now=now):
        return None
    with session_scope(runtime.engine) as session:
        rated = rate_auto_send(
            session=session,
            review_id=click.review_id,
            good=good,
            actor_id=click.user_id,
            actor_name=click.user_name,
            now=now,
            category=category,
            comment=comment,
            card={"channel": click.channel, "ts": click.message_ts},
        )
    runtime.services.wake_outbox()
    return rated


def ensure_unrated(runtime: Runtime, review_id: str) -> None:
    """Before opening the defect modal: AlreadyRated if someone was first."""
    with session_scope(runtime.engine, readonly=True) as session:
        first = _qa_row(session, review_id)
    if first is not None:
        raise AlreadyRated(first)


def _qa_row(session: Session, review_id: str) -> Decision | None:
    q = select(Decision).where(Decision.review_id == review_id, Decision.stage == "qa")
    return session.execute(q).scalars().first()


# ------------------------------------------------------------------ outbox kind `slack_post_qa`


def install(runtime: Runtime) -> None:
    """Register the QA card outbox kind."""
    runtime.services.kinds.register(OutboxKind.SLACK_POST_QA, post_qa_card, QA_POST_POLICY)


def post_qa_card(runtime: Runtime, item: OutboxItem, job: QaCard) -> dict[str, Any]:
    """Post the QA card for one sent reply (once: a posted card is remembered on the review)."""
    review_id = job.review_id
    with session_scope(runtime.engine, readonly=True) as session:
        review = session.get(Review, review_id)
        rating = _qa_row(session, review_id)
    if review is None:
        raise Permanent(f"review {review_id} does not exist")
    if review.extra.get("qa_card"):
        return dict(review.extra["qa_card"])
    channel = runtime.policy.qa.channel
    if not channel:
        return {"outcome": "skipped", "why": "the policy names no qa.channel"}
    resp = slack_call(
        runtime,
        "chat_postMessage",
        gate_channel=channel,
        channel=channel,
        text=qa_text(review),
        blocks=qa_card(review, rating),
        unfurl_links=False,
        unfurl_media=False,
    )
    card = {"channel": resp["channel"], "ts": resp["ts"]}
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        stored = session.get(Review, review_id)
        if stored is not None:
            stored.extra = {**stored.extra, "qa_card": card}
            session.add(stored)
        repo.audit(session=session, at=now, actor="hitl", action="qa_posted", review_id=review_id, **card)
    return card
