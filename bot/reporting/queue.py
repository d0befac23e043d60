"""The queue now: pending reviews per tier, oldest first (ix_reviews_pending / ix_reviews_status_due)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from bot.reporting.stats.query import columns
from storage.models import Review, ReviewStatus

QUEUE_PER_TIER = 8


@dataclass(frozen=True)
class QueueItem:
    ticket_id: str
    interaction_type: str
    tier: str
    route: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    ticket_url: str | None


@dataclass(frozen=True)
class Queue:
    """Pending and past-SLA counts per tier, and the oldest QUEUE_PER_TIER items of each."""

    now: datetime
    tier: str | None
    counts: dict[str, tuple[int, int]]
    items: dict[str, list[QueueItem]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n for n, _ in self.counts.values())

    @property
    def overdue(self) -> int:
        return sum(od for _, od in self.counts.values())


def pending_queue(*, session: Session, now: datetime, tier: str | None = None) -> Queue:
    """The queue at `now`, of one tier or all."""
    r = columns(Review)
    pending = r.status == ReviewStatus.PENDING
    counts_q = select(r.tier, func.count(), func.count().filter(r.sla_due_at < now)).where(pending)
    rows_q = (
        select(
            r.ticket_id,
            r.interaction_type,
            r.tier,
            r.route,
            r.created_at,
            r.sla_warn_at,
            r.sla_due_at,
            r.ticket_url,
        )
        .where(pending)
        .order_by(r.created_at, r.id)
    )
    if tier:
        counts_q, rows_q = counts_q.where(r.tier == tier), rows_q.where(r.tier == tier)
    counts = {t: (int(n), int(od)) for t, n, od in session.execute(counts_q.group_by(r.tier))}
    items: dict[str, list[QueueItem]] = {}
    for t in counts:
        for row in session.execute(rows_q.where(r.tier == t).limit(QUEUE_PER_TIER)):
            items.setdefault(t, []).append(QueueItem(*row))
    return Queue(now=now, tier=tier, counts=counts, items=items)
