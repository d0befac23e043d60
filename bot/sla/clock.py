"""SLA clock arithmetic: wall-clock or business-hours durations, with an injected `now`.

All arithmetic is done on absolute (UTC) instants. Opening hours are wall-clock times in the
business-hours timezone, turned into instants per day, so a daylight-saving change moves them
correctly. (Comparing two aware datetimes in the *same* zone compares wall clocks and ignores
`fold`, which goes wrong in the repeated autumn hour; that is why nothing here compares local times.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.review.policy import WEEKDAYS, BusinessHours, Policy

MAX_DAYS_AHEAD = 3 * 366


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz`.

    A time inside a spring-forward gap is shifted forward by the gap (02:30 → 03:30 in Berlin);
    a time in the repeated autumn hour means its first occurrence.
    """
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz).astimezone(UTC)


def business_hours_for(policy: Policy, tier_name: str) -> BusinessHours | None:
    """The business hours a tier's SLA counts in, or None for wall-clock time."""
    tier = policy.tiers.get(tier_name)
    if tier is None or not tier.business_hours:
        return None
    return policy.business_hours.get(tier.business_hours)


def is_open_day(day: date, hours: BusinessHours) -> bool:
    return WEEKDAYS[day.weekday()] in hours.days and day not in hours.holidays


def add_business_time(start: datetime, duration: timedelta, hours: BusinessHours | None) -> datetime:
    """`start` plus `duration` as a UTC instant, counting only open hours when `hours` is given.

    Open hours are the half-open window [open, close) of each open day. Starting outside the window
    (evening, weekend, holiday) the clock starts at the next opening; a zero duration then gives that
    opening. DST-safe: a business day that is 23 or 25 hours long is counted by elapsed time.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if duration < timedelta(0):
        raise ValueError("duration cannot be negative")
    cursor = start.astimezone(UTC)
    if hours is None:
        return cursor + duration
    tz = ZoneInfo(hours.timezone)
    remaining = duration
    day = cursor.astimezone(tz).date()
    for _ in range(MAX_DAYS_AHEAD):
        if is_open_day(day, hours):
            opens, closes = _instant(day, hours.open, tz), _instant(day, hours.close, tz)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("business hours never open within three years; check days and holidays")


def add_after(base: datetime, offset: timedelta, hours: BusinessHours | None) -> datetime:
    """`offset` after `base`, in business time when `hours` is given; a zero offset is `base` itself.

    Used for escalation steps counted from the breach: the breach instant itself (offset 0) may be
    the closing time, and the first ping belongs there, not at the next opening.
    """
    if offset <= timedelta(0):
        return base.astimezone(UTC)
    return add_business_time(base, offset, hours)


def sla_times(policy: Policy, tier_name: str, start: datetime) -> tuple[datetime, datetime]:
    """(warn_at, due_at) for a review in `tier_name` whose SLA clock starts at `start`."""
    tier = policy.tiers[tier_name]
    hours = business_hours_for(policy, tier_name)
    due = add_business_time(start, tier.sla, hours)
    warn = add_business_time(start, tier.sla * tier.warn_at, hours)
    return warn, due
