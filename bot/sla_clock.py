"""SLA clock arithmetic: wall-clock or business-hours durations, with an injected `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.policy import WEEKDAYS, BusinessHours, Policy

MAX_DAYS_AHEAD = 3 * 366


def add_business_time(start: datetime, duration: timedelta, hours: BusinessHours | None) -> datetime:
    """`start` plus `duration`, counting only open hours when `hours` is given (DST-safe)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if hours is None:
        return start + duration
    tz = ZoneInfo(hours.timezone)
    remaining = duration
    cursor = start.astimezone(tz)
    holidays = set(hours.holidays)
    for _ in range(MAX_DAYS_AHEAD):
        day = cursor.date()
        if WEEKDAYS[day.weekday()] in hours.days and day not in holidays:
            # Build the window from local wall-clock times so a DST change moves it correctly.
            opens = datetime.combine(day, hours.open, tzinfo=tz)
            closes = datetime.combine(day, hours.close, tzinfo=tz)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes.astimezone(UTC) - begin.astimezone(UTC)
                if remaining <= available:
                    return (begin.astimezone(UTC) + remaining).astimezone(UTC)
                remaining -= available
        cursor = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    raise ValueError("business hours never open within three years; check days and holidays")


def sla_times(policy: Policy, tier_name: str, start: datetime) -> tuple[datetime, datetime]:
    """(warn_at, due_at) for a review in `tier_name` created at `start`."""
    tier = policy.tiers[tier_name]
    hours = policy.business_hours.get(tier.business_hours) if tier.business_hours else None
    due = add_business_time(start, tier.sla, hours)
    warn = add_business_time(start, tier.sla * tier.warn_at, hours)
    return warn.astimezone(UTC), due.astimezone(UTC)
