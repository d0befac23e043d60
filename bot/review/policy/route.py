"""Routing a draft: confidence gives a route, then every trigger may move it toward more human involvement.

`route_draft` is pure: the same draft, policy and history always give the same route and reasons.
Each trigger family is one small function returning its `Hit` (or None); `_combine` folds them in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.review.policy.model import Policy, Thresholds
from storage.enums import DecisionKind, Route

# Rank of each route by human involvement, from the enum's order (keys are `Route` members, which are str).
ROUTE_ORDER: Mapping[str, int] = {route: rank for rank, route in enumerate(Route)}


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
    route: Route
    tier: str
    reasons: tuple[Reason, ...]
    supervisor_decisions: frozenset[DecisionKind] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Hit:
    """A trigger that fired: the route it asks for, why, and the tier and supervisor sign-offs it adds."""

    route: Route
    reason: Reason
    tier: str | None = None
    supervisor_for: Iterable[DecisionKind] = ()


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _is_confidence(conf: Any) -> bool:
    return isinstance(conf, (int, float)) and not math.isnan(conf) and 0 <= conf <= 1


def _confidence_route(draft: DraftFacts, th: Thresholds) -> tuple[Route, Reason]:
    """The route the confidence alone gives, against the type's thresholds."""
    conf, kind = draft.confidence, draft.interaction_type
    if not _is_confidence(conf):
        return Route.TAKE_OVER, Reason(
            "invalid_confidence", f"confidence {conf!r} is not a number from 0 to 1"
        )
    if conf >= th.auto_send_at:
        return Route.AUTO_SEND, Reason(
            "confidence_high", f"confidence {conf:.2f} ≥ {th.auto_send_at:.2f} auto-send threshold for {kind}"
        )
    if conf >= th.review_at:
        return Route.REVIEW, Reason(
            "confidence_medium",
            f"confidence {conf:.2f} below {th.auto_send_at:.2f} auto-send threshold for {kind}",
        )
    return Route.TAKE_OVER, Reason(
        "confidence_low", f"confidence {conf:.2f} below {th.review_at:.2f} review threshold for {kind}"
    )


def _human_only(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    kind = draft.interaction_type
    if kind not in policy.human_only:
        return None
    return Hit(
        Route.TAKE_OVER, Reason("human_only", f"{kind} is handled by humans only"), policy.human_only_tier
    )


def _unknown_type(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    kind = draft.interaction_type
    if kind in policy.interaction_types or kind in policy.human_only:
        return None
    t = policy.triggers.unknown_type
    reason = Reason("unknown_type", f"interaction type {kind!r} is not in the policy")
    return Hit(t.route, reason, t.tier, t.supervisor_for)


def _risky_keywords(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    t = policy.triggers.risky_keywords
    if not t:
        return None
    text = f"{draft.subject or ''}\n{draft.customer_message}".lower()
    kind = draft.interaction_type
    hits = [w for w, pat in t.patterns if kind not in t.exempt_types.get(w, []) and pat.search(text)]
    if not hits:
        return None
    return Hit(t.route, Reason("risky_keyword", "mentions " + ", ".join(f"“{h}”" for h in hits[:5])))


def _negative_sentiment(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    s, sentiment = policy.triggers.negative_sentiment, draft.sentiment
    if not s or sentiment is None:
        return None
    if s.strong_below is not None and sentiment < s.strong_below:
        reason = Reason("very_negative_sentiment", f"sentiment {sentiment:.2f} below {s.strong_below:.2f}")
        return Hit(s.strong_route, reason)
    if sentiment < s.below:
        return Hit(s.route, Reason("negative_sentiment", f"sentiment {sentiment:.2f} below {s.below:.2f}"))
    return None


def _repeat_contact(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    r, prior = policy.triggers.repeat_contact, history.prior_contacts
    if not r or prior < r.min_prior:
        return None
    to = Route.TAKE_OVER if r.take_over_at and prior >= r.take_over_at else r.route
    hours = r.window.total_seconds() / 3600
    return Hit(to, Reason("repeat_contact", f"{prior} earlier contact(s) from this customer in {hours:g}h"))


def _vip(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    v = policy.triggers.vip
    if not v:
        return None
    why = []
    if draft.customer_tier and draft.customer_tier.lower() in [x.lower() for x in v.customer_tiers]:
        why.append(f"{draft.customer_tier} customer")
    value, limit = draft.account_value, v.account_value_over
    if limit is not None and value is not None and value > limit:
        why.append(f"account value {_money(value)} over {_money(limit)}")
    return Hit(v.route, Reason("vip", "; ".join(why)), v.tier) if why else None


def _refund_amount(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    ra, amount = policy.triggers.refund_amount, draft.refund_amount
    if not ra or amount is None or not amount > ra.over:  # (a NaN amount is not over)
        return None
    reason = Reason("refund_over_limit", f"refund {_money(amount)} over the {_money(ra.over)} limit")
    return Hit(ra.route, reason, ra.tier, ra.supervisor_for)


def _policy_exception(draft: DraftFacts, policy: Policy, history: History) -> Hit | None:
    pe = policy.triggers.policy_exception
    if not pe or not draft.policy_exception:
        return None
    reason = Reason("policy_exception", "the pipeline flagged a policy exception")
    return Hit(pe.route, reason, pe.tier, pe.supervisor_for)


Trigger = Callable[[DraftFacts, Policy, History], Hit | None]
# In the order their reasons are listed.
TRIGGERS: tuple[Trigger, ...] = (
    _human_only,
    _unknown_type,
    _risky_keywords,
    _negative_sentiment,
    _repeat_contact,
    _vip,
    _refund_amount,
    _policy_exception,
)


def _combine(route: Route, reason: Reason, tier: str, hits: list[Hit], policy: Policy) -> RouteDecision:
    """The most human route and the highest tier asked for, every reason, every supervisor sign-off."""
    final_route = max([route, *(h.route for h in hits)], key=ROUTE_ORDER.__getitem__)
    final_tier = max([tier, *(h.tier for h in hits if h.tier)], key=policy.tier_rank)
    supervisor = {d for h in hits for d in h.supervisor_for}
    supervisor.update(policy.tiers[final_tier].supervisor_decisions)
    return RouteDecision(
        route=final_route,
        tier=final_tier,
        reasons=(reason, *(h.reason for h in hits)),
        supervisor_decisions=frozenset(supervisor),
    )


def route_draft(draft: DraftFacts, policy: Policy, history: History = History()) -> RouteDecision:
    """Route a draft by confidence, then let every trigger move it toward more human involvement."""
    th = policy.thresholds(draft.interaction_type)
    route, reason = _confidence_route(draft, th)
    hits = [hit for trigger in TRIGGERS if (hit := trigger(draft, policy, history)) is not None]
    return _combine(route, reason, th.tier or policy.defaults.tier, hits, policy)


def _routing_row(policy: Policy, kind: str) -> dict[str, Any]:
    th = policy.thresholds(kind)
    human_only = kind in policy.human_only
    tier = (
        policy.human_only_tier if human_only and policy.human_only_tier else (th.tier or policy.defaults.tier)
    )
    return {
        "type": kind,
        Route.AUTO_SEND: "never (human only)" if human_only else f"≥ {th.auto_send_at:.2f}",
        Route.REVIEW: "—" if human_only else f"{th.review_at:.2f}–{th.auto_send_at:.2f}",
        Route.TAKE_OVER: "always" if human_only else f"< {th.review_at:.2f}",
        "tier": tier,
        "channel": policy.tiers[tier].channel,
        "sla": policy.tiers[tier].sla,
    }


def routing_table(policy: Policy) -> list[dict[str, Any]]:
    """One row per interaction type: where a draft goes at each confidence, and its tier's SLA."""
    extra = [k for k in policy.human_only if k not in policy.interaction_types]
    return [_routing_row(policy, kind) for kind in [*policy.interaction_types, *extra]]
