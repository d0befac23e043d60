"""The ping plan and what is due now: pure functions of a review, the policy and `now`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from freezegun import freeze_time

from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import load_policy, parse_policy
from bot.sla.clock import sla_times
from bot.sla.plan import MAX_REPEATS, ping_plan, sla_state, steps_due

FAST = load_policy(Path(__file__).with_name("policy_fast.yml"))
BUNDLED = load_policy(BUNDLED_POLICY)
T0 = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # a Monday
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class FakeReview:
    tier: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    decided_at: datetime | None = None


def review(policy: Any, tier: str, start: datetime = T0, **extra: Any) -> FakeReview:
    warn, due = sla_times(policy, tier, start)
    return FakeReview(tier, start, warn, due, dict(extra))


def offsets(steps: Any, start: datetime = T0) -> list[tuple[str, float]]:
    return [(s.kind, (s.due_at - start).total_seconds()) for s in steps]


def test_standard_tier_warns_then_pings_supervisors_every_10m_then_managers() -> None:
    plan = ping_plan(review(BUNDLED, "standard"), BUNDLED)
    m = 60.0
    assert offsets(plan) == [
        ("warn", 22.5 * m),
        ("breach:L1:0", 30 * m),
        ("breach:L1:1", 40 * m),
        ("breach:L1:2", 50 * m),
        ("breach:L2:0", 60 * m),
    ]


def test_a_repeating_last_level_stops_after_the_cap() -> None:
    plan = ping_plan(review(BUNDLED, "priority"), BUNDLED)
    l2 = [s for s in plan if s.level == 2]
    assert len(l2) == 1 + MAX_REPEATS
    assert l2[-1].due_at - l2[0].due_at == timedelta(minutes=30 * MAX_REPEATS)
    assert [s.kind for s in plan[:4]] == ["warn", "breach:L1:0", "breach:L1:1", "breach:L2:0"]


def test_a_move_tier_timeout_ends_the_round() -> None:
    assert offsets(ping_plan(review(FAST, "mover"), FAST)) == [
        ("warn", 1.0),
        ("breach:L1:0", 2.0),
        ("timeout", 3.0),
    ]


def test_a_later_round_has_its_own_step_kinds() -> None:
    r = review(FAST, "target", sla_round=1)
    assert [s.kind for s in ping_plan(r, FAST)] == ["r1:warn", "r1:breach:L1:0"]


def test_business_hours_tier_pings_only_while_open() -> None:
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # Friday 15:00 Berlin: the 2h SLA ends at closing time
    plan = ping_plan(review(FAST, "office", start), FAST)
    local = [(s.kind, s.due_at.astimezone(BERLIN).strftime("%a %H:%M")) for s in plan[:6]]
    assert local == [
        ("warn", "Fri 16:30"),
        ("breach:L1:0", "Fri 17:00"),
        ("breach:L1:1", "Mon 09:30"),
        ("breach:L2:0", "Mon 10:00"),
        ("breach:L2:1", "Mon 11:00"),
        ("breach:L2:2", "Mon 12:00"),
    ]


def test_no_sla_no_plan_and_unknown_tier_still_gets_a_breach_notice() -> None:
    assert ping_plan(FakeReview("fast", T0, None, None), FAST) == []
    gone = FakeReview("no_such_tier", T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))
    assert [s.kind for s in ping_plan(gone, FAST)] == ["warn", "breach:L1:0"]


def test_steps_due_fires_in_order_and_says_when_next() -> None:
    plan = ping_plan(review(FAST, "fast"), FAST)
    due = steps_due(plan, set(), T0 + timedelta(seconds=1.6))
    assert [s.kind for s in due.fire] == ["warn"] and due.skip == []
    assert due.next_at == T0 + timedelta(seconds=3)
    due = steps_due(plan, {"warn"}, T0 + timedelta(seconds=3.1))
    assert [s.kind for s in due.fire] == ["breach:L1:0"]
    assert steps_due(plan, {"warn", "breach:L1:0"}, T0 + timedelta(seconds=3.2)).fire == []


def test_after_long_downtime_stale_warning_and_reminders_are_skipped_not_burst() -> None:
    plan = ping_plan(review(BUNDLED, "standard"), BUNDLED)
    due = steps_due(plan, set(), T0 + timedelta(minutes=55))
    assert [s.kind for s in due.fire] == ["breach:L1:0", "breach:L1:2"]
    assert [s.kind for s in due.skip] == ["warn", "breach:L1:1"]
    later = steps_due(plan, {"warn", "breach:L1:0", "breach:L1:1", "breach:L1:2"}, T0 + timedelta(minutes=61))
    assert [s.kind for s in later.fire] == ["breach:L2:0"] and later.next_at is None


def test_timeout_and_first_pings_always_fire_even_late() -> None:
    plan = ping_plan(review(FAST, "mover"), FAST)
    due = steps_due(plan, set(), T0 + timedelta(hours=1))
    assert [s.kind for s in due.fire] == ["breach:L1:0", "timeout"]
    assert [s.kind for s in due.skip] == ["warn"]


@freeze_time("2026-11-16 10:20:00")
def test_card_shows_countdown_then_outcome() -> None:
    now = datetime.now(UTC)
    r = review(BUNDLED, "standard")  # due 10:30, warn 10:22:30
    assert sla_state(r, now).text == "⏳ 10m left"
    assert sla_state(r, now + timedelta(minutes=5)).state == "warning"
    assert sla_state(r, now + timedelta(minutes=14)).text == "🔴 SLA breached 4m ago"
    r.status, r.decided_at = "approved", now + timedelta(minutes=12, seconds=30)
    assert sla_state(r, now + timedelta(hours=1)).text == "🔴 SLA breached by 2m 30s"
    r.decided_at = now + timedelta(minutes=1)
    assert sla_state(r, now + timedelta(hours=1)).text == "✅ SLA met (9m to spare)"


def test_plan_does_not_depend_on_the_order_of_levels_in_the_file() -> None:
    text = """
defaults: {tier: t}
tiers:
  t:
    channel: "#t"
    sla: 10m
    escalation:
      levels:
        - {level: 2, after: 10m, channel: "#m"}
        - {level: 1, after: 0m, channel: "#s", repeat_every: 4m}
"""
    p = parse_policy(text)
    assert [k for k, _ in offsets(ping_plan(review(p, "t"), p))] == [
        "warn",
        "breach:L1:0",
        "breach:L1:1",
        "breach:L1:2",
        "breach:L2:0",
    ]
