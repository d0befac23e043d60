"""Business-hours arithmetic: weekends, holidays, daylight-saving changes, other timezones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from bot.common.clock import SystemClock
from bot.review.policy import BusinessHours, parse_policy
from bot.sla.clock import add_after, add_business_time, sla_times

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")

EU = BusinessHours(
    timezone="Europe/Berlin", open="09:00", close="17:00", holidays=[date(2026, 12, 24), date(2026, 12, 25)]
)
US = BusinessHours(timezone="America/New_York", open="09:00", close="17:00")
EVERY_DAY_EU = BusinessHours(
    timezone="Europe/Berlin",
    days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    open="00:00",
    close="23:59",
)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def test_wall_clock_sla_ignores_hours_and_answers_in_utc() -> None:
    start = local(BERLIN, 2026, 3, 28, 23, 0)  # Saturday night before the spring change
    assert add_business_time(start, timedelta(hours=4), None) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_inside_opening_hours_is_plain_addition() -> None:
    assert add_business_time(local(BERLIN, 2026, 11, 16, 10, 0), timedelta(hours=2), EU) == local(
        BERLIN, 2026, 11, 16, 12, 0
    )


def test_ending_exactly_at_closing_time_stays_that_day() -> None:
    assert add_business_time(local(BERLIN, 2026, 11, 16, 16, 0), timedelta(hours=1), EU) == local(
        BERLIN, 2026, 11, 16, 17, 0
    )


def test_friday_afternoon_runs_over_the_weekend_to_monday() -> None:
    start = local(BERLIN, 2026, 11, 20, 16, 30)  # Friday
    assert add_business_time(start, timedelta(hours=2), EU) == local(BERLIN, 2026, 11, 23, 10, 30)


def test_start_before_opening_waits_for_opening() -> None:
    assert add_business_time(local(BERLIN, 2026, 11, 17, 6, 0), timedelta(minutes=30), EU) == local(
        BERLIN, 2026, 11, 17, 9, 30
    )


def test_start_in_the_evening_and_on_a_weekend_waits_for_next_opening() -> None:
    assert add_business_time(local(BERLIN, 2026, 11, 17, 20, 0), timedelta(minutes=15), EU) == local(
        BERLIN, 2026, 11, 18, 9, 15
    )
    assert add_business_time(local(BERLIN, 2026, 11, 21, 12, 0), timedelta(minutes=15), EU) == local(
        BERLIN, 2026, 11, 23, 9, 15
    )
    assert add_business_time(local(BERLIN, 2026, 11, 21, 12, 0), timedelta(0), EU) == local(
        BERLIN, 2026, 11, 23, 9, 0
    )


def test_holidays_are_skipped() -> None:
    # Wed 23 Dec 16:00 + 3h: 1h that day, 24th and 25th are holidays, 26th/27th a weekend → Mon 28th 11:00.
    assert add_business_time(local(BERLIN, 2026, 12, 23, 16, 0), timedelta(hours=3), EU) == local(
        BERLIN, 2026, 12, 28, 11, 0
    )


def test_duration_spanning_several_days() -> None:
    # 20 business hours from Tue 07:00: Tue 8h, Wed 8h, Thu 4h → Thu 13:00.
    assert add_business_time(local(BERLIN, 2026, 11, 17, 7, 0), timedelta(hours=20), EU) == local(
        BERLIN, 2026, 11, 19, 13, 0
    )
    # A whole business week and a bit: 41h from Monday 09:00 → next Monday 10:00.
    assert add_business_time(local(BERLIN, 2026, 11, 16, 9, 0), timedelta(hours=41), EU) == local(
        BERLIN, 2026, 11, 23, 10, 0
    )


def test_spring_forward_weekend_in_berlin_keeps_local_opening_hours() -> None:
    # Clocks go forward on Sunday 29 March 2026. Friday 16:00 CET + 2h → Monday 10:00 CEST (08:00 UTC).
    due = add_business_time(local(BERLIN, 2026, 3, 27, 16, 0), timedelta(hours=2), EU)
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert due.astimezone(BERLIN).hour == 10


def test_fall_back_weekend_in_berlin_keeps_local_opening_hours() -> None:
    # Clocks go back on Sunday 25 October 2026. Friday 16:00 CEST + 2h → Monday 10:00 CET (09:00 UTC).
    due = add_business_time(local(BERLIN, 2026, 10, 23, 16, 0), timedelta(hours=2), EU)
    assert due == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_a_23_hour_and_a_25_hour_day_count_elapsed_time() -> None:
    # Open around the clock: 5 hours from local midnight is 6:00 on the short day, 4:00 on the long one.
    assert add_business_time(local(BERLIN, 2026, 3, 29, 0, 0), timedelta(hours=5), EVERY_DAY_EU) == local(
        BERLIN, 2026, 3, 29, 6, 0
    )
    assert add_business_time(local(BERLIN, 2026, 10, 25, 0, 0), timedelta(hours=5), EVERY_DAY_EU) == local(
        BERLIN, 2026, 10, 25, 4, 0
    )


def test_start_in_the_repeated_autumn_hour_is_not_moved_backwards() -> None:
    # Hours 02:30-04:00 on Sunday 25 Oct 2026; 01:10 UTC is 02:10 CET, the *second* 02:10 (after 02:30 CEST).
    hours = BusinessHours(timezone="Europe/Berlin", days=["sun"], open="02:30", close="04:00")
    start = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert add_business_time(start, timedelta(minutes=10), hours) == datetime(2026, 10, 25, 1, 20, tzinfo=UTC)
    # Before the first 02:30 (CEST, 00:30 UTC) the clock starts at the first opening.
    assert add_business_time(
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC), timedelta(minutes=10), hours
    ) == datetime(2026, 10, 25, 0, 40, tzinfo=UTC)


def test_new_york_changes_on_other_dates_than_europe() -> None:
    # US clocks went forward on 8 March 2026: Friday 6 March 16:30 EST + 1h → Monday 9 March 09:30 EDT.
    due = add_business_time(local(NEW_YORK, 2026, 3, 6, 16, 30), timedelta(hours=1), US)
    assert due == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    # US clocks go back on 1 November 2026: Friday 30 Oct 16:30 EDT + 1h → Monday 09:30 EST (14:30 UTC).
    assert add_business_time(local(NEW_YORK, 2026, 10, 30, 16, 30), timedelta(hours=1), US) == datetime(
        2026, 11, 2, 14, 30, tzinfo=UTC
    )


def test_start_given_in_another_timezone_is_read_as_the_same_instant() -> None:
    # 23:00 Tokyo on Monday = 15:00 Berlin on Monday: 2 business hours (Berlin) left that day.
    start = local(TOKYO, 2026, 11, 16, 23, 0)
    assert add_business_time(start, timedelta(hours=3), EU) == local(BERLIN, 2026, 11, 17, 10, 0)
    # 07:00 Tokyo on Tuesday = 23:00 Berlin on Monday: the clock waits for Tuesday 09:00 Berlin.
    assert add_business_time(local(TOKYO, 2026, 11, 17, 7, 0), timedelta(hours=1), EU) == local(
        BERLIN, 2026, 11, 17, 10, 0
    )


def test_the_day_is_taken_in_the_business_timezone_not_utc() -> None:
    # Monday 00:30 Berlin is still Sunday in UTC; the Berlin Monday counts.
    start = local(BERLIN, 2026, 11, 16, 0, 30)
    assert start.astimezone(UTC).weekday() == 6
    assert add_business_time(start, timedelta(hours=1), EU) == local(BERLIN, 2026, 11, 16, 10, 0)


def test_closed_forever_is_an_error_not_a_hang() -> None:
    hours = BusinessHours(timezone="UTC", days=["mon"], holidays=[])
    with pytest.raises(ValueError):
        add_business_time(datetime(2026, 11, 16, 10, tzinfo=UTC), timedelta(days=10_000), hours)
    with pytest.raises(ValueError):
        add_business_time(datetime(2026, 11, 16, 10), timedelta(hours=1), hours)


def test_escalation_offset_zero_at_closing_time_is_the_breach_itself() -> None:
    closing = local(BERLIN, 2026, 11, 16, 17, 0)
    assert add_after(closing, timedelta(0), EU) == closing
    assert add_after(closing, timedelta(minutes=10), EU) == local(BERLIN, 2026, 11, 17, 9, 10)


def test_unquoted_yaml_times_are_read_as_the_time_written() -> None:
    text = """
defaults: {tier: t}
tiers: {t: {channel: "#t", sla: 1h, business_hours: eu}}
business_hours:
  eu: {timezone: Europe/Berlin, open: 8:30, close: 17:00, holidays: [2026-12-25]}
"""
    hours = parse_policy(text).business_hours["eu"]
    assert (hours.open.hour, hours.open.minute, hours.close.hour) == (8, 30, 17)
    assert hours.holidays == [date(2026, 12, 25)]


POLICY = parse_policy("""
defaults: {tier: office}
tiers:
  office: {channel: "#office", sla: 2h, warn_at: 0.75, business_hours: eu}
  plain: {channel: "#plain", sla: 30m, warn_at: 0.5}
business_hours:
  eu: {timezone: Europe/Berlin, open: "09:00", close: "17:00", holidays: [2026-12-24, 2026-12-25]}
""")


@freeze_time("2026-11-20 15:30:00")  # Friday 16:30 in Berlin
def test_a_draft_arriving_friday_afternoon_is_due_monday_morning() -> None:
    now = SystemClock().now()
    warn, due = sla_times(POLICY, "office", now)
    assert due == local(BERLIN, 2026, 11, 23, 10, 30)
    assert warn == local(BERLIN, 2026, 11, 23, 10, 0)  # 90 business minutes: 30 on Friday, 60 on Monday


@freeze_time("2026-12-23 15:00:00")  # Wednesday 16:00 in Berlin, before Christmas
def test_a_draft_arriving_before_holidays_is_due_after_them() -> None:
    _warn, due = sla_times(POLICY, "office", SystemClock().now())
    assert due == local(BERLIN, 2026, 12, 28, 10, 0)


@freeze_time("2026-03-29 00:45:00")  # Sunday 01:45 CET, 15 minutes before the clocks go forward
def test_a_wall_clock_tier_counts_real_minutes_across_the_change() -> None:
    warn, due = sla_times(POLICY, "plain", SystemClock().now())
    assert due - SystemClock().now() == timedelta(minutes=30)
    assert due.astimezone(BERLIN) == local(
        BERLIN, 2026, 3, 29, 3, 15
    )  # 01:45 CET + 30 min, past the skipped hour
    assert warn == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
