"""What one person's App Home shows, read from the store: their claims, the reviews waiting longest, those
past their SLA, and (for managers) a short stats snapshot. Pure reads, no Slack calls, `now` injected.

Lines are pending reviews only (ix_reviews_status_due serves every list). "Waiting longest" and "Breached
now" leave out the reader's own claims, which "My claims" shows, so a review appears once per Home.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy import select as select_rows
from sqlmodel import Session, col, select

from bot.reporting.stats.query import compute_stats
from bot.reporting.stats.text import auto_sent_share
from bot.review.policy import Oversight
from storage.models import Review, ReviewStatus

LINES_PER_SECTION = 5
SNAPSHOT_PERIOD = timedelta(days=7)


@dataclass(frozen=True)
class HomeLine:
    """One pending review as a Home line, with what this reader may do about it (`actions`)."""

    review_id: str
    ticket_id: str
    interaction_type: str
    tier: str
    route: str
    customer_tier: str | None
    account_value: float | None
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    channel: str | None
    ts: str | None
    claimed_by: str | None
    ticket_url: str | None
    permalink: str | None = None
    actions: tuple[str, ...] = ()  # ActionId values the reader gets buttons for
    review: Review | None = field(default=None, compare=False, repr=False)  # for the permission checks

    def breached(self, now: datetime) -> bool:
        return self.sla_due_at is not None and now >= self.sla_due_at


@dataclass(frozen=True)
class Snapshot:
    """The managers' week at a glance (from bot.reporting.stats.query.compute_stats)."""

    since: datetime
    until: datetime
    volume: int
    auto_send: int
    decided: int
    approve_rate: float | None
    sla_breached: int
    pending: int
    pending_overdue: int
    auto_share: float | None  # routed straight to the customer, of all drafts (`/hitl stats`' "auto-sent")


@dataclass(frozen=True)
class HomeData:
    """Everything one Home view is built from."""

    user_id: str
    now: datetime
    my_claims: list[HomeLine]
    waiting: list[HomeLine]
    breached: list[HomeLine]
    pending_total: int
    breached_total: int
    decides_anywhere: bool = True
    snapshot: Snapshot | None = None
    notes: list[str] = field(default_factory=list)


def _line(review: Review) -> HomeLine:
    customer: dict[str, Any] = review.customer or {}
    value = customer.get("account_value")
    return HomeLine(
        review_id=review.id,
        ticket_id=review.ticket_id,
        interaction_type=review.interaction_type,
        tier=review.tier,
        route=review.route,
        customer_tier=str(customer["tier"]) if customer.get("tier") else None,
        account_value=float(value) if isinstance(value, int | float) else None,
        created_at=review.created_at,
        sla_warn_at=review.sla_warn_at,
        sla_due_at=review.sla_due_at,
        channel=review.slack_channel,
        ts=review.slack_ts,
        claimed_by=review.claimed_by,
        ticket_url=review.ticket_url,
        review=review,
    )


def _pending(tiers: Collection[str] | None) -> Any:
    query = select(Review).where(col(Review.status) == ReviewStatus.PENDING)
    return query.where(col(Review.tier).in_(list(tiers))) if tiers is not None else query


def _soonest_due_first(query: Any) -> Any:
    """Soonest SLA due first (no SLA last), then oldest: the order a reviewer should work in."""
    return query.order_by(col(Review.sla_due_at).is_(None), col(Review.sla_due_at), col(Review.created_at))


def _not_mine(user_id: str) -> Any:
    return or_(col(Review.claimed_by).is_(None), col(Review.claimed_by) != user_id)


def my_claims(*, session: Session, user_id: str, limit: int = LINES_PER_SECTION) -> list[HomeLine]:
    """Pending reviews `user_id` claimed, soonest due first."""
    query = _soonest_due_first(_pending(None).where(col(Review.claimed_by) == user_id)).limit(limit)
    return [_line(r) for r in session.exec(query).all()]


def waiting_longest(
    *,
    session: Session,
    user_id: str,
    now: datetime,
    tiers: Collection[str] | None,
    limit: int = LINES_PER_SECTION,
) -> list[HomeLine]:
    """Pending reviews still within their SLA (or without one) in `tiers`, soonest to breach first."""
    within = or_(col(Review.sla_due_at).is_(None), col(Review.sla_due_at) > now)
    query = _soonest_due_first(_pending(tiers).where(within, _not_mine(user_id))).limit(limit)
    return [_line(r) for r in session.exec(query).all()]


def breached_now(
    *,
    session: Session,
    user_id: str,
    now: datetime,
    tiers: Collection[str] | None,
    limit: int = LINES_PER_SECTION,
) -> list[HomeLine]:
    """Pending reviews past their SLA due time in `tiers`, longest overdue first."""
    past = col(Review.sla_due_at) <= now
    query = _soonest_due_first(_pending(tiers).where(past, _not_mine(user_id))).limit(limit)
    return [_line(r) for r in session.exec(query).all()]


def queue_counts(*, session: Session, now: datetime, tiers: Collection[str] | None) -> tuple[int, int]:
    """(pending, past their SLA) in `tiers` (all tiers when None)."""
    query = select_rows(func.count(), func.count().filter(col(Review.sla_due_at) <= now)).where(
        col(Review.status) == ReviewStatus.PENDING
    )
    if tiers is not None:
        query = query.where(col(Review.tier).in_(list(tiers)))
    pending, overdue = session.execute(query).one()
    return int(pending), int(overdue)


def snapshot(*, session: Session, now: datetime, oversight: Oversight | None = None) -> Snapshot:
    """The last SNAPSHOT_PERIOD of the feedback store: volume, auto-sent share, approve rate, SLA breaches."""
    since = now - SNAPSHOT_PERIOD
    stats = compute_stats(session=session, since=since, until=now, oversight=oversight, now=now)
    total = stats.total
    return Snapshot(
        since=since,
        until=now,
        volume=total.volume,
        auto_send=total.auto_send,
        decided=total.decided,
        auto_share=auto_sent_share(total),
        approve_rate=total.approve_rate,
        sla_breached=total.sla_breached,
        pending=stats.pending,
        pending_overdue=stats.pending_overdue,
    )


def home_data(
    *,
    session: Session,
    user_id: str,
    now: datetime,
    tiers: Collection[str] | None,
    with_snapshot: bool = False,
    oversight: Oversight | None = None,
) -> HomeData:
    """The lines and counts of one reader's Home; `tiers` are those they decide in (None: show every tier)."""
    pending, overdue = queue_counts(session=session, now=now, tiers=tiers)
    return HomeData(
        user_id=user_id,
        now=now,
        my_claims=my_claims(session=session, user_id=user_id),
        waiting=waiting_longest(session=session, user_id=user_id, now=now, tiers=tiers),
        breached=breached_now(session=session, user_id=user_id, now=now, tiers=tiers),
        pending_total=pending,
        breached_total=overdue,
        snapshot=snapshot(session=session, now=now, oversight=oversight) if with_snapshot else None,
    )
