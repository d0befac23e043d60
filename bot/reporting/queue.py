"""The queue now: pending reviews soonest to breach first (ix_reviews_status_due), and counts per tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from bot.reporting.stats.query import columns
from storage.models import Review, ReviewStatus

QUEUE_TOP = 10  # lines a phone shows without scrolling far; the rest are counted


@dataclass(frozen=True)
class QueueItem:
    """One pending review, with what a manager needs to pick it: SLA, customer and where its card is."""

    review_id: str
    ticket_id: str
    interaction_type: str
    tier: str
    route: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    ticket_url: str | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    customer: dict[str, Any] = field(default_factory=dict)
    claimed_by_name: str | None = None

    def time_to_breach(self, now: datetime) -> timedelta | None:
        """Time left before the SLA runs out (negative once breached); None without an SLA."""
        return None if self.sla_due_at is None else self.sla_due_at - now


@dataclass(frozen=True)
class Queue:
    """Pending and past-SLA counts per tier, and the QUEUE_TOP items soonest to breach (breached first)."""

    now: datetime
    tier: str | None
    counts: dict[str, tuple[int, int]]
    items: list[QueueItem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for n, _ in self.counts.values())

    @property
    def overdue(self) -> int:
        return sum(od for _, od in self.counts.values())


def pending_queue(
    *, session: Session, now: datetime, tier: str | None = None, limit: int = QUEUE_TOP
) -> Queue:
    """The queue at `now`, of one tier or all: the `limit` soonest to breach, then those without an SLA."""
    r = columns(Review)
    pending = r.status == ReviewStatus.PENDING
    counts_q = select(r.tier, func.count(), func.count().filter(r.sla_due_at < now)).where(pending)
    rows_q = (
        select(
            r.id,
            r.ticket_id,
            r.interaction_type,
            r.tier,
            r.route,
            r.created_at,
            r.sla_warn_at,
            r.sla_due_at,
            r.ticket_url,
            r.slack_channel,
            r.slack_ts,
            r.customer,
            r.claimed_by_name,
        )
        .where(pending)
        .order_by(r.sla_due_at.asc().nulls_last(), r.created_at, r.id)
        .limit(limit)
    )
    if tier:
        counts_q, rows_q = counts_q.where(r.tier == tier), rows_q.where(r.tier == tier)
    counts = {t: (int(n), int(od)) for t, n, od in session.execute(counts_q.group_by(r.tier))}
    items = [_item(row) for row in session.execute(rows_q)]
    return Queue(now=now, tier=tier, counts=counts, items=items)


def _item(row: Any) -> QueueItem:
    rid, ticket, itype, tier, route, created, warn, due, url, channel, ts, customer, claimed = row
    return QueueItem(
        review_id=rid,
        ticket_id=ticket,
        interaction_type=itype,
        tier=tier,
        route=route,
        created_at=created,
        sla_warn_at=warn,
        sla_due_at=due,
        ticket_url=url,
        slack_channel=channel,
        slack_ts=ts,
        customer=customer if isinstance(customer, dict) else {},
        claimed_by_name=claimed,
    )
