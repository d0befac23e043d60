"""Keyword-only query functions over the store. No Slack or HTTP here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from storage.models import AuditEvent, OutboxItem, Review


def audit(
    *, session: Session, at: datetime, actor: str, action: str, review_id: str | None = None, **detail: Any
) -> None:
    """Append one audit row in the caller's transaction."""
    session.add(AuditEvent(at=at, actor=actor, action=action, review_id=review_id, detail=detail))


def enqueue(
    *,
    session: Session,
    now: datetime,
    kind: str,
    order_key: str,
    payload: dict[str, Any],
    dedupe_key: str | None = None,
    delay: timedelta = timedelta(0),
) -> OutboxItem:
    """Add an outside write to the outbox in the caller's transaction (delivered after commit)."""
    item = OutboxItem(
        kind=kind,
        order_key=order_key,
        dedupe_key=dedupe_key,
        payload=payload,
        created_at=now,
        next_attempt_at=now + delay,
    )
    session.add(item)
    return item


def review_by_key(*, session: Session, idempotency_key: str) -> Review | None:
    return (
        session.execute(select(Review).where(col(Review.idempotency_key) == idempotency_key))
        .scalars()
        .first()
    )


def get_review(*, session: Session, review_id: str) -> Review | None:
    return session.get(Review, review_id)


def prior_contacts(*, session: Session, customer_key: str | None, since: datetime, before: datetime) -> int:
    """How many drafts this customer had in [since, before): the repeat-contact history."""
    if not customer_key:
        return 0
    q = select(func.count(col(Review.id))).where(
        col(Review.customer_key) == customer_key,
        col(Review.created_at) >= since,
        col(Review.created_at) < before,
    )
    return int(session.execute(q).scalar_one())
