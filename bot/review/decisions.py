"""Decisions on reviews: who may decide, and the one place a review changes state (first click wins).

`record_decision` is a conditional `UPDATE reviews ... WHERE status = 'pending'`: on SQLite the engine's
BEGIN IMMEDIATE serialises writers, on PostgreSQL the row lock makes a racing update see the winner's
row and change nothing. The feedback row, the Slack refresh, the thread reply, the helpdesk write and
the audit row are written in the same transaction, and delivered by the outbox after commit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable
from sqlmodel import Session, col, select

from bot.callbacks.queue import CallbackEvent, queue_callback
from bot.outbox.kinds import (
    HelpdeskWrite,
    RefreshCard,
    SlackDm,
    SlackEphemeral,
    SlackPost,
    enqueue_helpdesk_write,
    enqueue_refresh_card,
    enqueue_slack_dm,
    enqueue_slack_ephemeral,
    enqueue_slack_post,
    review_order,
)
from bot.reporting.stats.came_back import REPLY_STATUSES, invalidate_decided
from bot.review.edit_distance import edit_distance
from bot.review.people import MembershipUnknown, PeopleDirectory
from bot.review.policy import Policy
from bot.slack.blocks.thread import already_decided_text, decision_thread_text, not_allowed_text
from bot.slack.clicks import workspace_team
from bot.slack.dedupe import first_delivery, record_delivery
from storage import repo
from storage.db import session_scope
from storage.fastpath import (
    add_now,
    done_reading,
    insert_new_in_batches,
    once_more_on_disconnect,
    reads_then_write,
)
from storage.models import (
    AuditEvent,
    Decision,
    DecisionKind,
    DefectCategory,
    OutboxItem,
    Review,
    ReviewMessage,
    ReviewStatus,
)

if TYPE_CHECKING:
    from bot.app.runtime import Runtime
    from bot.app.settings import Settings

_REVIEWS = Review.metadata.tables["reviews"]
STATUS_AFTER = {
    DecisionKind.APPROVE: ReviewStatus.APPROVED,
    DecisionKind.EDIT: ReviewStatus.EDITED,
    DecisionKind.TAKE_OVER: ReviewStatus.TAKEN_OVER,
    DecisionKind.REJECT: ReviewStatus.REJECTED,
}


class DecisionError(Exception):
    """A click that changes nothing; the clicker is told why (ephemerally) and it is audited."""

    audit_action = "click"

    def __init__(self, review_id: str | None, message: str) -> None:
        super().__init__(message)
        self.review_id = review_id

    def user_message(self, user_id: str) -> str:
        return str(self)


class ReviewNotFound(DecisionError):
    """The button names a review the store does not have."""


class ClickRefused(DecisionError):
    """A click that is not about what it names: another workspace, another message, a value not ours."""

    audit_action = "click_refused"

    def user_message(self, user_id: str) -> str:
        return not_allowed_text(str(self))


class AlreadyDecided(DecisionError):
    """Someone decided first; carries who decided what, and when."""

    def __init__(
        self,
        review_id: str,
        decision: str,
        actor_id: str | None,
        actor_name: str | None,
        decided_at: datetime | None,
    ) -> None:
        super().__init__(review_id, f"review {review_id} was already {decision} by {actor_name or actor_id}")
        self.decision, self.actor_id, self.actor_name, self.decided_at = (
            decision,
            actor_id,
            actor_name,
            decided_at,
        )

    @classmethod
    def of(cls, review: Review) -> AlreadyDecided:
        return cls(
            review.id,
            review.decision or review.status,
            review.decided_by,
            review.decided_by_name,
            review.decided_at,
        )

    def user_message(self, user_id: str) -> str:
        return already_decided_text(
            decision=self.decision, actor_id=self.actor_id, decided_at=self.decided_at, user_id=user_id
        )


class NotAllowed(DecisionError):
    """The policy does not let this person make this decision."""

    audit_action = "click_refused"

    def __init__(self, review_id: str | None, why: str) -> None:
        super().__init__(review_id, why)
        self.why = why

    def user_message(self, user_id: str) -> str:
        return not_allowed_text(self.why)


# ---------------------------------------------------------------- who may decide


def supervisor_only(review: Review, policy: Policy) -> set[str]:
    """Decisions on this review that need a supervisor (from routing, and the tier as the policy says now)."""
    tier = policy.tiers.get(review.tier)
    return set(review.supervisor_decisions) | set(tier.supervisor_decisions if tier else [])


def may_decide(
    *, review: Review, decision: str, user_id: str, policy: Policy, directory: PeopleDirectory
) -> bool:
    """Raise NotAllowed unless the user may make `decision`; returns whether they count as a supervisor."""
    tier = policy.tiers.get(review.tier)
    if tier is None:
        raise NotAllowed(
            review.id, f"The policy no longer has tier “{review.tier}”, so nobody may decide here."
        )
    try:
        supervisor = not tier.supervisors.anyone and directory.includes(tier.supervisors, user_id)
        approver = supervisor or directory.includes(tier.approvers, user_id)
    except MembershipUnknown as exc:
        raise NotAllowed(
            review.id, f"Your permission could not be checked ({exc}); try again in a minute."
        ) from exc
    if not approver:
        raise NotAllowed(
            review.id, f"Only approvers of tier {review.tier} may decide here ({tier.approvers.mention()})."
        )
    if decision not in supervisor_only(review, policy):
        return supervisor
    if supervisor:
        return True
    if tier.supervisors.anyone:
        # Fail closed: a supervisor-only decision with nobody named as supervisor is refused, not waved through.
        raise NotAllowed(
            review.id,
            f"This {decision.replace('_', ' ')} needs a supervisor, and tier {review.tier} "
            "names none: add `supervisors` to the tier in the policy file. "
            "You can still take the ticket over.",
        )
    raise NotAllowed(
        review.id,
        f"Only a supervisor of tier {review.tier} may {decision.replace('_', ' ')} this "
        f"review ({tier.supervisors.mention()}).",
    )


# ---------------------------------------------------------------- recording


def _checked_pending(
    session: Session, *, review_id: str, kind: DecisionKind, policy: Policy, is_supervisor: bool
) -> Review:
    """The review to decide, still pending, and the decision one this clicker may make."""
    review = session.get(Review, review_id)
    if review is None:
        raise ReviewNotFound(review_id, "This review is no longer in the store.")
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    if kind in supervisor_only(review, policy) and not is_supervisor:
        raise NotAllowed(review_id, f"Only a supervisor may {kind.replace('_', ' ')} this review.")
    return review


def _outcome(
    review: Review, kind: DecisionKind, final_text: str | None, reason: str | None, comment: str | None
) -> tuple[str | None, float | None, dict[str, Any]]:
    """(text sent, edit distance, the review's new extra) of a decision."""
    final = {DecisionKind.APPROVE: review.draft, DecisionKind.EDIT: final_text}.get(kind)
    distance = 0.0 if kind == DecisionKind.APPROVE else edit_distance(review.draft, final) if final else None
    extra: dict[str, Any] = dict(review.extra or {})
    if distance is not None:
        extra["edit_distance"] = distance
    if kind == DecisionKind.REJECT:
        extra.update(
            reject_category=DefectCategory(reason or DefectCategory.OTHER).value, reject_comment=comment
        )
    return final, distance, extra


def _feedback_row(
    review: Review, kind: DecisionKind, *, final: str | None, distance: float | None, now: datetime
) -> Decision:
    """The feedback store's row for a review decision (the review already holds the decider)."""
    extra = review.extra or {}
    return Decision(
        review_id=review.id,
        stage="review",
        ticket_id=review.ticket_id,
        interaction_type=review.interaction_type,
        confidence=review.confidence,
        route=review.route,
        tier=review.tier,
        reasons=review.reasons,
        customer_message=review.customer_message,
        ai_draft=review.draft,
        final_text=final,
        decision=kind,
        actor_id=review.decided_by,
        actor_name=review.decided_by_name,
        decided_at=now,
        seconds_to_decision=max(0.0, (now - review.created_at).total_seconds()),
        edit_distance=distance,
        defect_category=extra.get("reject_category"),
        defect_comment=extra.get("reject_comment") if kind == DecisionKind.REJECT else None,
        sla_breached=review.sla_due_at is not None and now > review.sla_due_at,
        model=extra.get("model"),
        prompt_version=extra.get("prompt_version"),
    )


def record_decision(
    *,
    session: Session,
    review_id: str,
    decision: str,
    actor_id: str,
    actor_name: str | None,
    now: datetime,
    policy: Policy,
    final_text: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
    is_supervisor: bool = False,
    settings: Settings | None = None,
) -> Decision:
    """Decide a pending review once (first call wins), with its feedback row and everything to deliver."""
    kind = DecisionKind(decision)
    if kind not in STATUS_AFTER:
        raise ValueError(f"{decision!r} is not a review decision")
    if kind == DecisionKind.EDIT and not (final_text or "").strip():
        raise ValueError("an edit needs the final text")
    review = _checked_pending(
        session, review_id=review_id, kind=kind, policy=policy, is_supervisor=is_supervisor
    )
    final, distance, extra = _outcome(review, kind, final_text, reason, comment)
    values: dict[str, Any] = {
        "status": STATUS_AFTER[kind],
        "decision": kind,
        "decided_by": actor_id,
        "decided_by_name": actor_name,
        "decided_at": now,
        "final_text": final,
        "extra": extra,
    }
    if kind == DecisionKind.TAKE_OVER:
        values["assignee"] = actor_id
    won = session.execute(
        _decide_statement(tuple(values)),
        {"review_id": review_id, **{f"new_{k}": v for k, v in values.items()}},
    ).first()
    if won is None:
        session.refresh(review)  # who decided first
        raise AlreadyDecided.of(review)
    for name, value in won._mapping.items():
        set_committed_value(review, name, value)  # the row as the update left it, with no second SELECT
    if review.status in REPLY_STATUSES:  # decided after its window passed: its cached came-back is stale
        invalidate_decided(session, review.created_at, window=policy.oversight.came_back_window, now=now)
    row = _feedback_row(review, kind, final=final, distance=distance, now=now)
    add_now(session, row)  # one INSERT … RETURNING id, no unit-of-work flush
    _queue_after_decision(session=session, review=review, now=now, settings=settings)
    repo.audit(
        session=session,
        at=now,
        actor=actor_id,
        action="decision",
        review_id=review.id,
        decision=kind,
        actor_name=actor_name,
        edit_distance=distance,
        reason=extra.get("reject_category"),
        supervisor=is_supervisor,
    )
    insert_new_in_batches(session, AuditEvent, OutboxItem)  # one statement each, not one per row
    session.flush()
    return row


@functools.cache
def _decide_statement(columns: tuple[str, ...]) -> Executable:
    """`UPDATE reviews SET … WHERE id = :review_id AND status = 'pending' RETURNING *`, built once per set of
    columns (building it per click cost more than running it), on the table: no ORM bulk-update pass."""
    return (
        update(_REVIEWS)
        .where(_REVIEWS.c.id == bindparam("review_id"), _REVIEWS.c.status == ReviewStatus.PENDING.value)
        .values({name: bindparam(f"new_{name}") for name in columns})
        .returning(*_REVIEWS.columns)
    )


def _queue_after_decision(
    *, session: Session, review: Review, now: datetime, settings: Settings | None
) -> None:
    """The card refresh, the thread reply and the helpdesk write, in the decision's transaction."""
    enqueue_refresh_card(
        session, now=now, refresh=RefreshCard(review_id=review.id), dedupe_key=f"refresh:{review.id}:decided"
    )
    thread = SlackPost(
        review_id=review.id, in_review_thread=True, text=decision_thread_text(review, settings)
    )
    enqueue_slack_post(
        session,
        now=now,
        post=thread,
        order_key=review_order(review.id),
        dedupe_key=f"thread:{review.id}:decided",
    )
    write = HelpdeskWrite(
        review_id=review.id, decision=DecisionKind(review.decision) if review.decision else None
    )
    enqueue_helpdesk_write(
        session, now=now, write=write, ticket_id=review.ticket_id, dedupe_key=f"helpdesk:{review.id}:review"
    )
    queue_callback(session, review=review, now=now, event=CallbackEvent.DECIDED)


# ---------------------------------------------------------------- the service the Slack handlers call


Surface = Literal["message", "view", "home"]  # "home": the clicker's own App Home tab


@dataclass(frozen=True)
class Click:
    """Who clicked on which review, where; `delivery_key` makes a redelivered click a no-op.

    `surface` is where the button was: a message (`channel`, `message_ts`, `thread_ts` say which) or a
    view (a modal), whose private_metadata named `view_review_id`. `team_id` is the clicker's workspace.
    """

    review_id: str
    user_id: str
    user_name: str | None
    channel: str  # "" when the click came from no message (a modal, App Home)
    message_ts: str
    delivery_key: str | None = None
    team_id: str | None = None
    thread_ts: str | None = None
    surface: Surface = "message"
    view_review_id: str | None = None


def people(runtime: Runtime) -> PeopleDirectory:
    """The runtime's user-group directory (built by bot.slack.delivery.install)."""
    directory = runtime.services.people
    if directory is None:
        raise NotAllowed(None, "Permissions cannot be checked: the Slack directory is not set up.")
    return directory


# ---------------------------------------------------------------- is the click about what it names?


def _on_card(runtime: Runtime, review: Review, click: Click) -> bool:
    """The click came from one of the review's own messages: its card (or its thread), its QA card, or a
    message posted about it (an SLA ping, a DM, a dead-letter alert: table review_messages)."""
    qa = (review.extra or {}).get("qa_card") or {}
    cards = [(review.slack_channel, review.slack_ts), (qa.get("channel"), qa.get("ts"))]
    if any(
        channel and ts and click.channel == channel and ts in (click.message_ts, click.thread_ts)
        for channel, ts in cards
    ):
        return True
    return _on_review_message(runtime, review, click)  # only read when the card itself did not match


def _on_review_message(runtime: Runtime, review: Review, click: Click) -> bool:
    if not click.channel:
        return False
    with session_scope(runtime.engine, readonly=True) as session:
        found = session.exec(
            select(ReviewMessage.id).where(
                ReviewMessage.review_id == review.id,
                ReviewMessage.channel == click.channel,
                col(ReviewMessage.ts).in_([t for t in (click.message_ts, click.thread_ts) if t]),
            )
        ).first()
    return found is not None


def check_click(runtime: Runtime, click: Click, review: Review) -> None:
    """Refuse (ClickRefused) a click from another workspace, or from a message or modal not this review's."""
    team = workspace_team(runtime)
    if team is None:
        raise ClickRefused(
            review.id, "This app could not yet confirm its Slack workspace; try again in a minute."
        )
    if click.team_id != team:
        raise ClickRefused(
            review.id, f"This click came from another Slack workspace ({click.team_id or 'unknown'})."
        )
    if click.surface == "view":
        if click.view_review_id != review.id:
            raise ClickRefused(review.id, "This button does not belong to the review this window shows.")
        return
    if click.surface == "home":
        return  # the clicker's own Home tab, published by this app to that user only (team checked above)
    if not _on_card(runtime, review, click):
        raise ClickRefused(
            review.id,
            "This button does not belong to the message it was clicked in (the review it names is "
            "posted elsewhere, or was moved).",
        )


def checked_review(runtime: Runtime, click: Click) -> Review:
    """The review a click names, once the click is known to come from that review's own card or modal."""
    review = load_review(runtime, click.review_id)
    check_click(runtime, click, review)
    return review


def pending_review(runtime: Runtime, review_id: str) -> Review:
    """A review that can still be decided (a quick read, e.g. before opening a modal)."""
    review = load_review(runtime, review_id)
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    return review


def pending_click(runtime: Runtime, click: Click) -> Review:
    """The checked review of a click, if it can still be decided."""
    review = checked_review(runtime, click)
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    return review


def load_review(runtime: Runtime, review_id: str) -> Review:
    """A review by id, read-only; ReviewNotFound if it is gone."""
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
    if review is None:
        raise ReviewNotFound(review_id, "This review is no longer in the store.")
    return review


def decide(
    runtime: Runtime,
    click: Click,
    decision: DecisionKind,
    *,
    final_text: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
) -> Decision | None:
    """Check and record one click's decision; None when the delivery was seen before."""
    now = runtime.clock.now()
    details = _Details(final_text=final_text, reason=reason, comment=comment)
    try:
        row = once_more_on_disconnect(lambda: _decide_once(runtime, click, decision, now, details))
    except (AlreadyDecided, NotAllowed):
        # Refused after the click was known to be about this card: its redelivery stays silent.
        if click.delivery_key and not first_delivery(engine=runtime.engine, key=click.delivery_key, now=now):
            return None
        raise
    if row is not None:
        runtime.services.wake_outbox()
    return row


@dataclass(frozen=True)
class _Details:
    final_text: str | None = None
    reason: str | None = None
    comment: str | None = None


def _decide_once(
    runtime: Runtime, click: Click, decision: DecisionKind, now: datetime, details: _Details
) -> Decision | None:
    """One transaction: the delivery key, the conditional update, the decision, audit and outbox rows.

    On PostgreSQL the review is read in that transaction too; on SQLite beside it, outside the write lock.
    """
    with reads_then_write(runtime.engine) as (session, reads):
        review = repo.get_review(session=reads or session, review_id=click.review_id)
        if review is None:
            raise ReviewNotFound(click.review_id, "This review is no longer in the store.")
        check_click(runtime, click, review)
        # Checked before the first write (the delivery key's INSERT takes SQLite's write lock): a refusal
        # of a redelivery is still silent, as decide() records the key before it answers.
        if review.status != ReviewStatus.PENDING:
            raise AlreadyDecided.of(review)
        supervisor = may_decide(
            review=review,
            decision=decision,
            user_id=click.user_id,
            policy=runtime.policy,
            directory=people(runtime),
        )
        if reads is not None:
            reads.expunge(review)
            session.add(review)  # decided in the write session without reading (or copying) it again
        done_reading(reads)
        if click.delivery_key and not record_delivery(session=session, key=click.delivery_key, now=now):
            return None
        repo.audit(
            session=session,
            at=now,
            actor=click.user_id,
            action="click",
            review_id=click.review_id,
            decision=decision,
            channel=click.channel,
            ts=click.message_ts,
        )
        with session.no_autoflush:  # the click's audit row goes out with the decision's, in one INSERT
            return record_decision(
                session=session,
                review_id=click.review_id,
                decision=decision,
                actor_id=click.user_id,
                actor_name=click.user_name,
                now=now,
                policy=runtime.policy,
                final_text=details.final_text,
                reason=details.reason,
                comment=details.comment,
                is_supervisor=supervisor,
                settings=runtime.settings,
            )


def report_refusal(runtime: Runtime, error: DecisionError, *, user_id: str, channel: str | None) -> None:
    """Audit a click that changed nothing and tell the clicker why: ephemerally, or by DM from a modal."""
    tell(
        runtime, user_id=user_id, channel=channel, text=error.user_message(user_id), review_id=error.review_id
    )
    with session_scope(runtime.engine) as session:
        detail: dict[str, Any] = {"result": type(error).__name__, "why": str(error)[:500], "channel": channel}
        repo.audit(
            session=session,
            at=runtime.clock.now(),
            actor=user_id,
            action=error.audit_action,
            review_id=error.review_id,
            **detail,
        )


def tell(runtime: Runtime, *, user_id: str, channel: str | None, text: str, review_id: str | None) -> None:
    """Tell one person something: an ephemeral in `channel`, or a DM where there is none (a modal, App Home)."""
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        if channel:
            message = SlackEphemeral(channel=channel, user=user_id, text=text, review_id=review_id)
            enqueue_slack_ephemeral(session, now=now, message=message)
        elif user_id:
            dm = SlackDm(user=user_id, text=text, review_id=review_id)
            enqueue_slack_dm(session, now=now, dm=dm, order_key=f"dm:{user_id}")
    runtime.services.wake_outbox()
