"""Queue a review's decision callback in the transaction that decides it (a no-op without callback_url)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.outbox.kinds import CallbackEvent, DecisionCallback, enqueue_decision_callback
from storage.models import Review

__all__ = ["CallbackEvent", "callback_of", "queue_callback", "queue_timed_out"]


def callback_of(
    review: Review, *, now: datetime, event: CallbackEvent, timeout_action: str | None = None
) -> DecisionCallback | None:
    """What the pipeline is told about `review`, as it stands now; None when it asked for no callback."""
    extra = review.extra or {}
    url = extra.get("callback_url")
    if not url:
        return None
    return DecisionCallback(
        url=str(url),
        event=event,
        review_id=review.id,
        ticket_id=review.ticket_id,
        status=review.status,
        tier=review.tier,
        occurred_at=now,
        decision=review.decision,
        final_text=review.final_text,
        decided_by=review.decided_by,
        decided_by_name=review.decided_by_name,
        decided_at=review.decided_at,
        reason=extra.get("reject_category"),
        comment=extra.get("reject_comment"),
        timeout_action=timeout_action,
    )


def queue_callback(
    session: Session,
    *,
    review: Review,
    now: datetime,
    event: CallbackEvent,
    timeout_action: str | None = None,
) -> None:
    """Enqueue the decision callback of `review` for `event`, once per event (and per SLA round)."""
    callback = callback_of(review, now=now, event=event, timeout_action=timeout_action)
    if callback is None:
        return
    key = f"callback:{review.id}:{event.value}"
    if event is CallbackEvent.TIMED_OUT:
        key += f":{(review.extra or {}).get('sla_round', 0)}"
    enqueue_decision_callback(session, now=now, callback=callback, dedupe_key=key)


def queue_timed_out(session: Session, *, review: Review, now: datetime, action: str) -> None:
    """The SLA ran out and its timeout `action` (reassign, move_tier) fired: the review is still pending."""
    queue_callback(session, review=review, now=now, event=CallbackEvent.TIMED_OUT, timeout_action=action)
