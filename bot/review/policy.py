"""The routing policy: a YAML file a support operation can read, review and change.

`route_draft` is pure: the same draft, policy and history always give the same route and reasons.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.common.durations import parse_duration

ROUTE_ORDER = {"auto_send": 0, "review": 1, "take_over": 2}
DECISIONS = ("approve", "edit", "take_over", "reject")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyError(Exception):
    """A policy file that cannot be used, with the key and line that are wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    route: Literal["review", "take_over"] = "review"
    exempt_types: dict[str, list[str]] = {}

    @cached_property
    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(w, re.compile(r"(?<!\w)" + re.escape(w.lower()) + r"(?!\w)")) for w in self.words]


class SentimentTrigger(_Strict):
    below: float = Field(-0.5, ge=-1, le=1)
    route: Literal["review", "take_over"] = "review"
    strong_below: float | None = Field(None, ge=-1, le=1)
    strong_route: Literal["review", "take_over"] = "take_over"


class RepeatContactTrigger(_Strict):
    window: timedelta = timedelta(hours=48)
    min_prior: int = Field(1, ge=1)
    route: Literal["review", "take_over"] = "review"
    take_over_at: int | None = Field(None, ge=1)

    _parse_window = field_validator("window", mode="before")(_duration)


class VipTrigger(_Strict):
    customer_tiers: list[str] = ["vip"]
    account_value_over: float | None = None
    route: Literal["review", "take_over"] = "review"
    tier: str | None = None


class RefundTrigger(_Strict):
    over: float = Field(ge=0)
    route: Literal["review", "take_over"] = "review"
    supervisor_for: list[Literal["approve", "edit", "take_over", "reject"]] = ["approve", "edit"]
    tier: str | None = None


class FlagTrigger(_Strict):
    route: Literal["review", "take_over"] = "review"
    supervisor_for: list[Literal["approve", "edit", "take_over", "reject"]] = []
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
    supervisor_decisions: list[Literal["approve", "edit", "take_over", "reject"]] = []
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

    _parse = field_validator("digest_period", mode="before")(_duration)

    @field_validator("digest_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab expression (minute hour day month weekday): {exc}") from exc
        return value


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

    @model_validator(mode="after")
    def _references(self) -> Policy:
        tiers = set(self.tiers)
        refs: list[tuple[str, str | None]] = [
            ("defaults.tier", self.defaults.tier),
            ("human_only_tier", self.human_only_tier),
        ]
        refs += [(f"interaction_types.{k}.tier", v.tier) for k, v in self.interaction_types.items()]
        for name in ("vip", "refund_amount", "policy_exception", "unknown_type"):
            trig = getattr(self.triggers, name)
            if trig is not None:
                refs.append((f"triggers.{name}.tier", trig.tier))
        for tname, tier in self.tiers.items():
            if tier.escalation.on_timeout and tier.escalation.on_timeout.action == "move_tier":
                refs.append((f"tiers.{tname}.escalation.on_timeout.to", tier.escalation.on_timeout.to))
            if tier.business_hours and tier.business_hours not in self.business_hours:
                raise ValueError(
                    f"tiers.{tname}.business_hours names {tier.business_hours!r}, not defined under business_hours"
                )
        for where, name in refs:
            if name is not None and name not in tiers:
                raise ValueError(
                    f"{where} names tier {name!r}, which is not under tiers ({', '.join(sorted(tiers))})"
                )
        return self

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


# ---------------------------------------------------------------- routing


@dataclass(frozen=True)
class DraftFacts:
    """What routing looks at in a draft."""

    interaction_type: str
    confidence: float
    customer_message: str = ""
    subject: str | None = None
    customer_tier: str | None = None
    account_value: float | None = None
    refund_amount: float | None = None
    sentiment: float | None = None
    policy_exception: bool = False


@dataclass(frozen=True)
class History:
    """What the store knows about this customer: earlier contacts inside the repeat window."""

    prior_contacts: int = 0


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class RouteDecision:
    route: str
    tier: str
    reasons: tuple[Reason, ...]
    supervisor_decisions: frozenset[str] = field(default_factory=frozenset)


def _money(x: float) -> str:
    return f"{x:,.2f}"


def route_draft(draft: DraftFacts, policy: Policy, history: History = History()) -> RouteDecision:
    """Route a draft by confidence, then let every trigger move it toward more human involvement."""
    kind = draft.interaction_type
    known = kind in policy.interaction_types or kind in policy.human_only
    th = policy.thresholds(kind)
    tiers = [th.tier or policy.defaults.tier]
    supervisor: set[str] = set()
    reasons: list[Reason] = []
    conf = draft.confidence

    if not isinstance(conf, (int, float)) or math.isnan(conf) or not 0 <= conf <= 1:
        route = "take_over"
        reasons.append(Reason("invalid_confidence", f"confidence {conf!r} is not a number from 0 to 1"))
    elif conf >= th.auto_send_at:
        route = "auto_send"
        reasons.append(
            Reason(
                "confidence_high",
                f"confidence {conf:.2f} ≥ {th.auto_send_at:.2f} auto-send threshold for {kind}",
            )
        )
    elif conf >= th.review_at:
        route = "review"
        reasons.append(
            Reason(
                "confidence_medium",
                f"confidence {conf:.2f} below {th.auto_send_at:.2f} auto-send threshold for {kind}",
            )
        )
    else:
        route = "take_over"
        reasons.append(
            Reason(
                "confidence_low",
                f"confidence {conf:.2f} below {th.review_at:.2f} review threshold for {kind}",
            )
        )

    def escalate(to: str, reason: Reason, tier: str | None = None, sup: list[str] | None = None) -> None:
        nonlocal route
        if ROUTE_ORDER[to] > ROUTE_ORDER[route]:
            route = to
        reasons.append(reason)
        if tier:
            tiers.append(tier)
        supervisor.update(sup or [])

    t = policy.triggers
    if kind in policy.human_only:
        escalate(
            "take_over", Reason("human_only", f"{kind} is handled by humans only"), policy.human_only_tier
        )
    if not known:
        escalate(
            t.unknown_type.route,
            Reason("unknown_type", f"interaction type {kind!r} is not in the policy"),
            t.unknown_type.tier,
            t.unknown_type.supervisor_for,
        )
    if t.risky_keywords:
        text = f"{draft.subject or ''}\n{draft.customer_message}".lower()
        hits = [
            w
            for w, pat in t.risky_keywords.patterns
            if kind not in t.risky_keywords.exempt_types.get(w, []) and pat.search(text)
        ]
        if hits:
            escalate(
                t.risky_keywords.route,
                Reason("risky_keyword", "mentions " + ", ".join(f"“{h}”" for h in hits[:5])),
            )
    s = t.negative_sentiment
    if s and draft.sentiment is not None:
        if s.strong_below is not None and draft.sentiment < s.strong_below:
            escalate(
                s.strong_route,
                Reason(
                    "very_negative_sentiment", f"sentiment {draft.sentiment:.2f} below {s.strong_below:.2f}"
                ),
            )
        elif draft.sentiment < s.below:
            escalate(
                s.route, Reason("negative_sentiment", f"sentiment {draft.sentiment:.2f} below {s.below:.2f}")
            )
    r = t.repeat_contact
    if r and history.prior_contacts >= r.min_prior:
        to = "take_over" if r.take_over_at and history.prior_contacts >= r.take_over_at else r.route
        hours = r.window.total_seconds() / 3600
        escalate(
            to,
            Reason(
                "repeat_contact",
                f"{history.prior_contacts} earlier contact(s) from this customer in {hours:g}h",
            ),
        )
    v = t.vip
    if v:
        why = []
        if draft.customer_tier and draft.customer_tier.lower() in [x.lower() for x in v.customer_tiers]:
            why.append(f"{draft.customer_tier} customer")
        if (
            v.account_value_over is not None
            and draft.account_value is not None
            and draft.account_value > v.account_value_over
        ):
            why.append(f"account value {_money(draft.account_value)} over {_money(v.account_value_over)}")
        if why:
            escalate(v.route, Reason("vip", "; ".join(why)), v.tier)
    ra = t.refund_amount
    if ra and draft.refund_amount is not None and draft.refund_amount > ra.over:
        escalate(
            ra.route,
            Reason(
                "refund_over_limit", f"refund {_money(draft.refund_amount)} over the {_money(ra.over)} limit"
            ),
            ra.tier,
            ra.supervisor_for,
        )
    pe = t.policy_exception
    if pe and draft.policy_exception:
        escalate(
            pe.route,
            Reason("policy_exception", "the pipeline flagged a policy exception"),
            pe.tier,
            pe.supervisor_for,
        )

    tier = max(tiers, key=policy.tier_rank)
    supervisor.update(policy.tiers[tier].supervisor_decisions)
    return RouteDecision(
        route=route, tier=tier, reasons=tuple(reasons), supervisor_decisions=frozenset(supervisor)
    )


# ---------------------------------------------------------------- loading


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that keeps where each mapping key was written."""


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (str(k.value),)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (str(i),)] = v.start_mark.line + 1
                walk(v, path + (str(i),))

    root = yaml.compose(text, Loader=_LineLoader)
    if root is not None:
        walk(root, ())
    return lines


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML, naming the key and line of the first problems."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy file is a YAML mapping with at least `defaults` and `tiers`")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        problems = []
        for err in exc.errors()[:8]:
            loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
            line = None
            for n in range(len(loc), 0, -1):
                if loc[:n] in lines:
                    line = lines[loc[:n]]
                    break
            key = ".".join(loc) or "(top)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (a typo? see docs/policy.md for the keys a policy may have)"
            problems.append(f"{source}:{line or '?'}: {key}: {msg}")
        raise PolicyError("\n".join(problems)) from exc


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read the policy file ({exc.strerror})") from exc
    return parse_policy(text, str(p))


def routing_table(policy: Policy) -> list[dict[str, Any]]:
    """One row per interaction type: where a draft goes at each confidence, and its tier's SLA."""
    rows = []
    for kind in list(policy.interaction_types) + [
        k for k in policy.human_only if k not in policy.interaction_types
    ]:
        th = policy.thresholds(kind)
        tier = (
            policy.human_only_tier
            if kind in policy.human_only and policy.human_only_tier
            else (th.tier or policy.defaults.tier)
        )
        rows.append(
            {
                "type": kind,
                "auto_send": "never (human only)"
                if kind in policy.human_only
                else f"≥ {th.auto_send_at:.2f}",
                "review": "—" if kind in policy.human_only else f"{th.review_at:.2f}–{th.auto_send_at:.2f}",
                "take_over": "always" if kind in policy.human_only else f"< {th.review_at:.2f}",
                "tier": tier,
                "channel": policy.tiers[tier].channel,
                "sla": policy.tiers[tier].sla,
            }
        )
    return rows
