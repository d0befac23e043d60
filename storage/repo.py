"""Keyword-only query functions over the store. No Slack or HTTP here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
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


# Built once: on the ingest path, building a statement per call cost more than running it on SQLite.
_BY_KEY = select(Review).where(col(Review.idempotency_key) == bindparam("key"))
_PRIOR_CONTACTS = select(func.count(col(Review.id))).where(
    col(Review.customer_key) == bindparam("customer_key"),
    col(Review.created_at) >= bindparam("since"),
    col(Review.created_at) < bindparam("before"),
)


def review_by_key(*, session: Session, idempotency_key: str) -> Review | None:
    return session.execute(_BY_KEY, {"key": idempotency_key}).scalars().first()


def get_review(*, session: Session, review_id: str) -> Review | None:
    return session.get(Review, review_id)


def prior_contacts(*, session: Session, customer_key: str | None, since: datetime, before: datetime) -> int:
    """How many drafts this customer had in [since, before): the repeat-contact history."""
    if not customer_key:
        return 0
    params = {"customer_key": customer_key, "since": since, "before": before}
    return int(session.execute(_PRIOR_CONTACTS, params).scalar_one())
