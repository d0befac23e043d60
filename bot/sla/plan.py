"""The SLA plan: which steps a review has and when, which are due at `now`, and the countdown a card shows.

Pure functions of the review, the policy and `now`; the scheduler engine (engine.py) claims and acts on
the steps. A review's steps are `warn`, `breach:L<level>:<repeat>` (the first ping of an escalation
level is repeat 0) and `timeout`; after a `move_tier` timeout the review starts round n in its new tier,
and that round's steps are prefixed `r<n>:`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from bot.common.durations import format_duration
from bot.review.policy import BusinessHours, EscalationLevel, People, Policy, Tier
from bot.sla.clock import add_after, business_hours_for
from storage.models import ReviewStatus

MAX_REPEATS = 24  # repeats of one escalation level before it goes quiet

StepAction = Literal["warn", "breach", "timeout"]
_RANK: dict[StepAction, int] = {"warn": 0, "breach": 1, "timeout": 2}


class SlaSubject(Protocol):
    """What the plan needs of a review."""

    @property
    def tier(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def sla_warn_at(self) -> datetime | None: ...
    @property
    def sla_due_at(self) -> datetime | None: ...
    @property
    def extra(self) -> dict[str, Any]: ...


class SlaOutcomeSubject(Protocol):
    """What the countdown needs of a review."""

    @property
    def status(self) -> str: ...
    @property
    def decided_at(self) -> datetime | None: ...
    @property
    def sla_warn_at(self) -> datetime | None: ...
    @property
    def sla_due_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Step:
    """One SLA step of a review: `warn`, `breach:L1:0` (level 1, first ping), `breach:L1:1`, `timeout`."""

    kind: str
    due_at: datetime
    action: StepAction
    level: int = 0
    repeat: int = 0

    def label(self) -> str:
        if self.action == "breach":
            return f"breach ping, level {self.level}" + (f", reminder {self.repeat}" if self.repeat else "")
        return self.action


@dataclass(frozen=True)
class DueSteps:
    """What to do now: steps to fire, overdue steps a later due step makes pointless, and the next time."""

    fire: list[Step]
    skip: list[Step]
    next_at: datetime | None


def sla_round(review: SlaSubject) -> int:
    """How many times the review's SLA has restarted (a timeout moved it to another tier)."""
    return int((review.extra or {}).get("sla_round", 0))


def _kind(round_: int, base: str) -> str:
    return base if round_ == 0 else f"r{round_}:{base}"


def escalation_levels(tier: Tier | None) -> list[EscalationLevel]:
    """The tier's escalation chain in level order; one silent level 1 when it has none."""
    levels = sorted(tier.escalation.levels, key=lambda lv: lv.level) if tier else []
    # A tier without a chain still says so in the thread when its SLA is breached.
    return levels or [EscalationLevel(level=1)]


def sla_watchers(tier: Tier | None) -> People:
    """Who hears about a tier's SLA: its supervisors, else whom its first escalation level notifies."""
    if tier is None:
        return People()
    if not tier.supervisors.anyone:
        return tier.supervisors
    return escalation_levels(tier)[0].notify


def breach_level(tier: Tier | None, level: int) -> EscalationLevel:
    """The tier's escalation level `level` (a silent one when the chain has none by that number)."""
    return next((lv for lv in escalation_levels(tier) if lv.level == level), EscalationLevel(level=level))


def breach_audience(tier: Tier | None, level: EscalationLevel) -> People:
    """Whom a breach ping at `level` mentions: whom the level names, else the tier's watchers at level 1."""
    if not level.notify.anyone:
        return level.notify
    return sla_watchers(tier) if level.level == 1 else People()


@dataclass(frozen=True)
class Snooze:
    """A Snooze pressed on a breach ping: that level's steps from `at` on come `by` later."""

    at: datetime
    by: timedelta
    user: str = ""


def snooze_key(round_: int, level: int) -> str:
    """Where a level's snooze is kept in `review.extra["sla_snoozes"]` (one per level and round)."""
    return f"r{round_}:L{level}"


def snoozes(review: SlaSubject) -> dict[str, Snooze]:
    """The snoozes recorded on a review (bad entries are ignored: the plan then runs unsnoozed)."""
    found: dict[str, Snooze] = {}
    for key, raw in ((review.extra or {}).get("sla_snoozes") or {}).items():
        try:
            found[str(key)] = Snooze(
                at=datetime.fromisoformat(raw["at"]),
                by=timedelta(seconds=float(raw["seconds"])),
                user=str(raw.get("user") or ""),
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _postponed(
    steps: list[Step], snooze: Snooze, end: datetime | None, hours: BusinessHours | None
) -> list[Step]:
    """A snoozed level: its steps from the snooze on come later; none runs into the next level."""
    moved = [
        Step(s.kind, add_after(s.due_at, snooze.by, hours), s.action, s.level, s.repeat)
        if s.due_at >= snooze.at
        else s
        for s in steps
    ]
    return [s for s in moved if s.repeat == 0 or end is None or s.due_at < end]


def _level_steps(
    round_: int,
    due: datetime,
    levels: Sequence[EscalationLevel],
    i: int,
    hours: BusinessHours | None,
    snooze: Snooze | None = None,
) -> list[Step]:
    """Level `i`'s first ping and its reminders every `repeat_every` until the next level starts."""
    lv = levels[i]
    steps = [
        Step(_kind(round_, f"breach:L{lv.level}:0"), add_after(due, lv.after, hours), "breach", lv.level, 0)
    ]
    if lv.repeat_every is None or lv.repeat_every <= timedelta(0):
        return steps
    end = add_after(due, levels[i + 1].after, hours) if i + 1 < len(levels) else None
    for k in range(1, MAX_REPEATS + 1):
        at = add_after(due, lv.after + lv.repeat_every * k, hours)
        if end is not None and at >= end:
            break
        steps.append(Step(_kind(round_, f"breach:L{lv.level}:{k}"), at, "breach", lv.level, k))
    return _postponed(steps, snooze, end, hours) if snooze is not None else steps


def ping_plan(review: SlaSubject, policy: Policy) -> list[Step]:
    """Every SLA step of the review's current round, in time order (pure, bounded).

    `warn` at `sla_warn_at`; at `sla_due_at` + each level's `after` its first ping, repeated every
    `repeat_every` until the next level starts (at most MAX_REPEATS times); `timeout` at
    `sla_due_at` + `on_timeout.after`. Escalation offsets count business hours when the tier does.
    A `move_tier` timeout ends the round: the review starts a new round in its new tier.
    """
    due = review.sla_due_at
    if due is None:
        return []
    round_ = sla_round(review)
    tier = policy.tiers.get(review.tier)
    hours = business_hours_for(policy, review.tier)
    steps: list[Step] = []
    if review.sla_warn_at is not None and review.sla_warn_at < due:
        steps.append(Step(_kind(round_, "warn"), review.sla_warn_at, "warn"))
    levels = escalation_levels(tier)
    snoozed = snoozes(review)
    for i in range(len(levels)):
        snooze = snoozed.get(snooze_key(round_, levels[i].level))
        steps += _level_steps(round_, due, levels, i, hours, snooze)
    timeout = tier.escalation.on_timeout if tier else None
    if timeout is not None:
        at = add_after(due, timeout.after, hours)
        if timeout.action == "move_tier":
            steps = [s for s in steps if s.due_at <= at]
        steps.append(Step(_kind(round_, "timeout"), at, "timeout"))
    return sorted(steps, key=lambda s: (s.due_at, _RANK[s.action], s.level, s.repeat))


def _superseded(step: Step, later_due: Sequence[Step]) -> bool:
    """A warning once the breach is due, or a reminder once a later reminder or level is due."""
    if step.action == "warn":
        return any(s.action == "breach" for s in later_due)
    if step.action == "breach" and step.repeat > 0:
        return any(
            s.action == "breach"
            and (s.level > step.level or (s.level == step.level and s.repeat > step.repeat))
            for s in later_due
        )
    return False


def steps_due(plan: Sequence[Step], claimed: Collection[str], now: datetime) -> DueSteps:
    """Split a plan at `now`: unclaimed due steps to fire or skip, and when the next one is due.

    After downtime several steps can be overdue at once; the first breach ping of each level and the
    timeout always fire, but a stale warning or reminder is skipped rather than sent late in a burst.
    """
    due = [s for s in plan if s.due_at <= now]
    fire: list[Step] = []
    skip: list[Step] = []
    for i, step in enumerate(due):
        if step.kind in claimed:
            continue
        (skip if _superseded(step, due[i + 1 :]) else fire).append(step)
    later = [s for s in plan if s.due_at > now and s.kind not in claimed]
    return DueSteps(fire, skip, later[0].due_at if later else None)


def next_step_at(review: SlaSubject, policy: Policy, claimed: Collection[str]) -> datetime | None:
    """When the review's first unclaimed step is due (possibly in the past), or None when none is left."""
    return next((s.due_at for s in ping_plan(review, policy) if s.kind not in claimed), None)


def later_in_level(review: SlaSubject, policy: Policy, level: int, repeat: int) -> Step | None:
    """The step of escalation `level` after its ping number `repeat` (this round), if the plan has one."""
    return next(
        (
            s
            for s in ping_plan(review, policy)
            if s.action == "breach" and s.level == level and s.repeat > repeat
        ),
        None,
    )


# ---------------------------------------------------------------- the countdown


@dataclass(frozen=True)
class SlaState:
    """The SLA as a review card shows it."""

    state: Literal["none", "on_track", "warning", "breached", "met", "missed"]
    text: str
    due_at: datetime | None = None


def sla_state(review: SlaOutcomeSubject, now: datetime) -> SlaState:
    """Countdown while pending (`⏳ 12m left`, `⚠️ 3m left`, `🔴 breached 5m ago`), outcome once decided."""
    due = review.sla_due_at
    if due is None:
        return SlaState("none", "")
    if review.status != ReviewStatus.PENDING:
        decided = review.decided_at or now
        if decided <= due:
            return SlaState("met", f"✅ SLA met ({format_duration(due - decided)} to spare)", due)
        return SlaState("missed", f"🔴 SLA breached by {format_duration(decided - due)}", due)
    if now >= due:
        return SlaState("breached", f"🔴 SLA breached {format_duration(now - due)} ago", due)
    warn = review.sla_warn_at
    if warn is not None and now >= warn:
        return SlaState("warning", f"⚠️ {format_duration(due - now)} left", due)
    return SlaState("on_track", f"⏳ {format_duration(due - now)} left", due)


def next_in_level(review: SlaSubject, policy: Policy, level: int, claimed: Collection[str]) -> Step | None:
    """The first unclaimed step of escalation `level` in the review's current round, if any is left."""
    return next(
        (
            s
            for s in ping_plan(review, policy)
            if s.action == "breach" and s.level == level and s.kind not in claimed
        ),
        None,
    )
