"""The policy file as a model: thresholds, triggers, tiers, business hours, QA, oversight (frozen, strict)."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.common.durations import parse_duration
from storage.enums import HUMAN_DECISION_KINDS, DecisionKind, Route

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _only(*allowed: StrEnum) -> BeforeValidator:
    """Accept only these members of an enum, refusing others with the message a `Literal` gives."""
    names = [f"'{a}'" for a in allowed]
    expected = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    return BeforeValidator(check)


# A trigger only moves a draft toward humans, so it never routes to auto_send.
TriggerRoute = Annotated[Route, _only(Route.REVIEW, Route.TAKE_OVER)]
# What a person decides on a review card: the decisions a supervisor may be required for.
HumanDecision = Annotated[DecisionKind, _only(*HUMAN_DECISION_KINDS)]


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


class Thresholds(_Strict):
    auto_send_at: float = Field(
        ge=0, le=1.01, description="confidence at or above which a draft is auto-sent"
    )
    review_at: float = Field(
        ge=0, le=1, description="confidence at or above which a human reviews (below: take over)"
    )
    tier: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review_at > self.auto_send_at:
            raise ValueError("review_at must not be above auto_send_at")
        return self


class Defaults(_Strict):
    auto_send_at: float = Field(0.95, ge=0, le=1.01)
    review_at: float = Field(0.6, ge=0, le=1)
    tier: str


class KeywordTrigger(_Strict):
    words: list[str] = []
    route: TriggerRoute = Route.REVIEW
    exempt_types: dict[str, list[str]] = {}

    @cached_property
    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(w, re.compile(r"(?<!\w)" + re.escape(w.lower()) + r"(?!\w)")) for w in self.words]


class SentimentTrigger(_Strict):
    below: float = Field(-0.5, ge=-1, le=1)
    route: TriggerRoute = Route.REVIEW
    strong_below: float | None = Field(None, ge=-1, le=1)
    strong_route: TriggerRoute = Route.TAKE_OVER


class RepeatContactTrigger(_Strict):
    window: timedelta = timedelta(hours=48)
    min_prior: int = Field(1, ge=1)
    route: TriggerRoute = Route.REVIEW
    take_over_at: int | None = Field(None, ge=1)

    _parse_window = field_validator("window", mode="before")(_duration)


class VipTrigger(_Strict):
    customer_tiers: list[str] = ["vip"]
    account_value_over: float | None = None
    route: TriggerRoute = Route.REVIEW
    tier: str | None = None


class RefundTrigger(_Strict):
    over: float = Field(ge=0)
    route: TriggerRoute = Route.REVIEW
    supervisor_for: list[HumanDecision] = [DecisionKind.APPROVE, DecisionKind.EDIT]
    tier: str | None = None


class FlagTrigger(_Strict):
    route: TriggerRoute = Route.REVIEW
    supervisor_for: list[HumanDecision] = []
    tier: str | None = None


class Triggers(_Strict):
    risky_keywords: KeywordTrigger | None = None
    negative_sentiment: SentimentTrigger | None = None
    repeat_contact: RepeatContactTrigger | None = None
    vip: VipTrigger | None = None
    refund_amount: RefundTrigger | None = None
    policy_exception: FlagTrigger | None = None
    unknown_type: FlagTrigger = FlagTrigger()


class People(_Strict):
    """Slack user groups (S...) and user ids (U...); empty means anyone in the channel."""

    usergroups: list[str] = []
    users: list[str] = []

    @property
    def anyone(self) -> bool:
        return not self.usergroups and not self.users

    def mention(self) -> str:
        return " ".join([f"<!subteam^{g}>" for g in self.usergroups] + [f"<@{u}>" for u in self.users])


class EscalationLevel(_Strict):
    level: int = Field(ge=1)
    after: timedelta = timedelta(0)
    notify: People = People()
    channel: str | None = None
    dm: bool = False
    repeat_every: timedelta | None = None

    _parse = field_validator("after", "repeat_every", mode="before")(_duration)


class TimeoutAction(_Strict):
    after: timedelta
    action: Literal["move_tier", "reassign"]
    to: str

    _parse = field_validator("after", mode="before")(_duration)


class Escalation(_Strict):
    levels: list[EscalationLevel] = []
    on_timeout: TimeoutAction | None = None


class Tier(_Strict):
    channel: str
    sla: timedelta
    warn_at: float = Field(0.75, gt=0, lt=1, description="share of the SLA after which a warning is posted")
    business_hours: str | None = None
    approvers: People = People()
    supervisors: People = People()
    supervisor_decisions: list[HumanDecision] = []
    escalation: Escalation = Escalation()

    _parse = field_validator("sla", mode="before")(_duration)


class BusinessHours(_Strict):
    timezone: str
    days: list[str] = ["mon", "tue", "wed", "thu", "fri"]
    open: time = time(9, 0)
    close: time = time(17, 0)
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("open", "close", mode="before")
    @classmethod
    def _wall_clock(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 17:00 as the base-60 number 1020 (and 9:00:00 as 32400);
        # pydantic would take that as seconds after midnight (00:17). Read it as the time written.
        if isinstance(value, int) and not isinstance(value, bool):
            minutes, seconds = (value, 0) if value < 24 * 60 else divmod(value, 60)
            if not 0 <= minutes < 24 * 60:
                raise ValueError(f'{value!r} is not a time of day; write it like "09:00"')
            return time(minutes // 60, minutes % 60, seconds)
        return value

    @field_validator("open", "close")
    @classmethod
    def _local_time(cls, value: time) -> time:
        return value.replace(tzinfo=None)  # wall-clock in `timezone`; an offset here would be ignored

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower()[:3] not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}; use mon, tue, wed, thu, fri, sat, sun")
        return [d.lower()[:3] for d in value]

    @model_validator(mode="after")
    def _opens_before_close(self) -> BusinessHours:
        if self.close <= self.open:
            raise ValueError("close must be after open")
        return self


class QA(_Strict):
    sample_rate: float = Field(0.05, ge=0, le=1)
    channel: str | None = None
    human_sample_rate: float = Field(
        0.05, ge=0, le=1, description="share of approved and edited replies also rated in QA, once delivered"
    )


class HelpdeskPolicy(_Strict):
    status_after_reply: Literal["open", "pending", "hold", "solved"] = "pending"
    status_after_take_over: Literal["open", "pending", "hold", "solved"] | None = "open"


class Tone(_Strict):
    banned_phrases: list[str] = []


class Oversight(_Strict):
    """Criteria of the oversight review (`/hitl review`, weekly digest): where to widen or narrow AI autonomy."""

    min_volume: int = Field(
        30, ge=1, description="decisions of a type in the period before autonomy may grow"
    )
    min_rated: int = Field(
        10, ge=1, description="human-judged or QA-rated replies before an error rate is known"
    )
    expand_min_approve_rate: float = Field(0.9, ge=0, le=1, description="share approved without edit")
    expand_max_severe_defects: int = Field(0, ge=0)
    expand_min_qa_pass_rate: float = Field(0.95, ge=0, le=1)
    tighten_error_rate: float = Field(
        0.2, ge=0, le=1, description="rejects plus heavy edits, per judged draft"
    )
    tighten_min_qa_pass_rate: float = Field(0.85, ge=0, le=1, description="QA pass rate of auto-sent replies")
    warn_sla_breach_rate: float = Field(
        0.15, ge=0, le=1, description="SLA breach rate flagged as a warning sign"
    )
    severe_defects: list[str] = ["hallucination", "policy_misapplication"]
    heavy_edit_distance: float = Field(0.3, ge=0, le=1)
    whatif_last: int = Field(200, ge=1, description="what-if replays the last N human decisions of a type")
    whatif_step: float = Field(
        0.05, gt=0, le=0.5, description="auto-send threshold change the what-if proposes"
    )
    rising_ratio: float = Field(
        1.5, gt=1, description="a share this much above the previous period is rising"
    )
    rising_min_count: int = Field(3, ge=1, description="...and at least this many cases this period")
    digest_cron: str = Field("0 9 * * mon", description="weekly digest, crontab in UTC")
    digest_period: timedelta = timedelta(days=7)
    min_qa_ratings: int = Field(20, ge=1, description="QA ratings of auto-sent replies before EXPAND")
    sustained_periods: int = Field(
        2, ge=1, le=6, description="periods in a row (this one too) the evidence must hold for EXPAND"
    )
    came_back_window: timedelta = Field(
        timedelta(hours=72), description="a new contact this soon after a reply: the customer came back"
    )
    review_time_cap: timedelta = Field(
        timedelta(minutes=30), description="reviewer time counted per review at most (idle is not work)"
    )
    fast_approver_ratio: float = Field(
        0.5, gt=0, lt=1, description="a reviewer whose median approval time is below this share of the team's"
    )
    fast_approver_min_approvals: int = Field(
        20, ge=1, description="...with at least this many approvals in the period is compared"
    )

    _parse = field_validator("digest_period", "came_back_window", "review_time_cap", mode="before")(_duration)

    @field_validator("digest_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab expression (minute hour day month weekday): {exc}") from exc
        return value


class Pings(_Strict):
    """SLA warning and breach pings people act from (issue 13): the money they show and the snooze."""

    currency: str = Field(
        "USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of account values shown in pings, unless the customer data names one",
    )
    snooze: timedelta = Field(
        timedelta(minutes=15), description="how far Snooze postpones a level's next step (once per level)"
    )

    _parse = field_validator("snooze", mode="before")(_duration)

    @field_validator("snooze")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=1):
            raise ValueError("snooze must be more than 0 and at most 1d, e.g. 15m")
        return value


class Ops(_Strict):
    """Operations in Slack: who may act on the ops channel's alerts."""

    # Retry on a dead-letter alert; empty: the supervisors of every tier (nobody named anywhere: nobody).
    dead_letter_retry: People = People()


class Policy(_Strict):
    """The whole policy file."""

    version: int = 1
    defaults: Defaults
    interaction_types: dict[str, Thresholds] = {}
    human_only: list[str] = []
    human_only_tier: str | None = None
    triggers: Triggers = Triggers()
    tiers: dict[str, Tier]
    business_hours: dict[str, BusinessHours] = {}
    qa: QA = QA()
    helpdesk: HelpdeskPolicy = HelpdeskPolicy()
    tone: Tone = Tone()
    oversight: Oversight = Oversight()
    # Who may see the reports (`/hitl stats`, `queue`, `review`, `digest`, the chart); empty: anyone (warned).
    managers: People = People()
    # issue 13: SLA pings people act from, and who may retry a dead letter from its alert
    pings: Pings = Pings()
    ops: Ops = Ops()

    @model_validator(mode="after")
    def _references(self) -> Policy:
        """Every tier and business-hours name the file uses is defined in it."""
        for tname, tier in self.tiers.items():
            if tier.business_hours and tier.business_hours not in self.business_hours:
                raise ValueError(
                    f"tiers.{tname}.business_hours names {tier.business_hours!r}, not defined under business_hours"
                )
        for where, name in self._tier_references():
            if name is not None and name not in self.tiers:
                raise ValueError(
                    f"{where} names tier {name!r}, which is not under tiers ({', '.join(sorted(self.tiers))})"
                )
        return self

    def _tier_references(self) -> list[tuple[str, str | None]]:
        """(where, tier name) for every place the file names a tier."""
        t = self.triggers
        trigger_tiers = {
            "vip": t.vip,
            "refund_amount": t.refund_amount,
            "policy_exception": t.policy_exception,
            "unknown_type": t.unknown_type,
        }
        return [
            ("defaults.tier", self.defaults.tier),
            ("human_only_tier", self.human_only_tier),
            *((f"interaction_types.{k}.tier", v.tier) for k, v in self.interaction_types.items()),
            *((f"triggers.{k}.tier", v.tier) for k, v in trigger_tiers.items() if v is not None),
            *(
                (f"tiers.{k}.escalation.on_timeout.to", v.escalation.on_timeout.to)
                for k, v in self.tiers.items()
                if v.escalation.on_timeout and v.escalation.on_timeout.action == "move_tier"
            ),
        ]

    def thresholds(self, interaction_type: str) -> Thresholds:
        """Thresholds for a type; the defaults for a type the policy does not list."""
        known = self.interaction_types.get(interaction_type)
        if known is not None:
            return known
        return Thresholds(
            auto_send_at=self.defaults.auto_send_at,
            review_at=self.defaults.review_at,
            tier=self.defaults.tier,
        )

    def tier_rank(self, name: str) -> int:
        return list(self.tiers).index(name)
