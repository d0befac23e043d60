"""Expand AI autonomy, keep, or increase human involvement: the rules of `policy.oversight` per type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.reporting.format import pct, plural
from bot.reporting.oversight.whatif import WhatIf
from bot.reporting.stats.model import Counts
from bot.review.policy import Oversight, Policy

Verdict = Literal["expand", "keep", "increase"]
VERDICT_LABEL: dict[str, str] = {
    "expand": "expand AI autonomy",
    "keep": "keep as is",
    "increase": "increase human involvement",
}


@dataclass(frozen=True)
class Recommendation:
    interaction_type: str
    verdict: Verdict
    headline: str
    evidence: tuple[str, ...]
    reasons: tuple[str, ...] = ()  # why this verdict (or, for keep, what stands in the way of expanding)
    current: float | None = None  # auto-send threshold now
    proposed: float | None = None  # threshold the verdict proposes
    whatif: WhatIf | None = None

    @property
    def label(self) -> str:
        return VERDICT_LABEL[self.verdict]


def thresholds_for(itype: str, policy: Policy) -> tuple[float, float]:
    """(auto_send_at, review_at) the policy applies to a type now."""
    th = policy.thresholds(itype)
    return th.auto_send_at, th.review_at


def proposal(itype: str, verdict: Verdict, policy: Policy) -> tuple[float, float]:
    """(current, proposed) auto-send threshold for a verdict: one `whatif_step` down or up."""
    current, review_at = thresholds_for(itype, policy)
    step = policy.oversight.whatif_step
    if verdict == "increase":
        return current, round(min(current + step, 1.01), 2)
    return current, round(max(current - step, review_at), 2)


def evidence_of(c: Counts) -> tuple[str, ...]:
    return (
        f"{plural(c.decided, 'decision')} ({c.human} by humans, {c.auto_send} auto-sent)",
        f"approved without edit {pct(c.approve_rate)}",
        (
            f"error rate {pct(c.error_rate)} ({plural(c.reject, 'reject')} + {plural(c.heavy_edits, 'heavy edit')} "
            f"of {c.judged} judged)"
        ),
        f"severe defects {c.severe_defects}",
        f"QA pass {pct(c.qa_pass_rate)} of {c.qa_rated} rated" if c.qa_rated else "no QA ratings",
        f"SLA breached {pct(c.sla_breach_rate)}",
    )


# ---------------------------------------------------------------- what calls for more humans


def harm_signs(c: Counts, o: Oversight) -> list[str]:
    """Why this type needs more human involvement (empty: no harm seen)."""
    harm: list[str] = []
    if c.error_rate is not None and c.judged >= o.min_rated and c.error_rate > o.tighten_error_rate:
        harm.append(f"error rate {pct(c.error_rate)} is above {pct(o.tighten_error_rate)}")
    if (
        c.qa_pass_rate is not None
        and c.qa_rated >= o.min_rated
        and c.qa_pass_rate < o.tighten_min_qa_pass_rate
    ):
        harm.append(
            f"auto-sent replies pass QA {pct(c.qa_pass_rate)}, below {pct(o.tighten_min_qa_pass_rate)}"
        )
    if c.qa_severe > o.expand_max_severe_defects:
        harm.append(f"{c.qa_severe} auto-sent repl{'y' if c.qa_severe == 1 else 'ies'} had a severe defect")
    return harm


# ---------------------------------------------------------------- what stands in the way of expanding


def _evidence_blockers(itype: str, c: Counts, policy: Policy) -> list[str]:
    """Too little known: not in the policy, too few decisions or judgements."""
    o = policy.oversight
    blockers: list[str] = []
    if itype not in policy.interaction_types:
        blockers.append("not in the policy (defaults and the unknown_type trigger apply): add it first")
    if c.decided < o.min_volume:
        blockers.append(f"only {plural(c.decided, 'decision')} (at least {o.min_volume} needed)")
    if c.judged < o.min_rated:
        blockers.append(f"only {plural(c.judged, 'draft')} judged by humans (at least {o.min_rated} needed)")
    return blockers


def _quality_blockers(c: Counts, o: Oversight) -> list[str]:
    """Not good enough: approval, severe defects, QA of auto-sent replies."""
    blockers: list[str] = []
    if c.approve_rate is not None and c.approve_rate < o.expand_min_approve_rate:
        blockers.append(
            f"approved without edit {pct(c.approve_rate)}, needs {pct(o.expand_min_approve_rate)}"
        )
    if c.severe_defects > o.expand_max_severe_defects:
        blockers.append(f"{c.severe_defects} severe defect(s), at most {o.expand_max_severe_defects} allowed")
    if c.auto_send and not c.qa_rated:
        blockers.append(f"none of its {c.auto_send} auto-sent replies were QA-rated")
    if c.qa_pass_rate is not None and c.qa_pass_rate < o.expand_min_qa_pass_rate:
        blockers.append(f"QA pass {pct(c.qa_pass_rate)}, needs {pct(o.expand_min_qa_pass_rate)}")
    return blockers


def _whatif_blockers(whatif: WhatIf | None, o: Oversight) -> list[str]:
    """The replay of a lower threshold shows too many drafts humans had to fix."""
    if (
        whatif is not None
        and whatif.proposed < whatif.current
        and whatif.error_share is not None
        and whatif.error_share > 1 - o.expand_min_approve_rate
    ):
        return [
            f"what-if: humans rejected or heavily edited {whatif.errors} of the {whatif.newly_auto_sent} "
            "drafts the lower threshold would have auto-sent"
        ]
    return []


def expand_blockers(itype: str, c: Counts, policy: Policy, whatif: WhatIf | None) -> list[str]:
    """Every expand criterion this type misses (empty: expand)."""
    o = policy.oversight
    blockers = _evidence_blockers(itype, c, policy) + _quality_blockers(c, o)
    cur, new = proposal(itype, "expand", policy)
    if new >= cur:
        blockers.append(f"auto-send threshold {cur:.2f} is already at the review threshold")
    return blockers + _whatif_blockers(whatif, o)


# ---------------------------------------------------------------- the verdict


def _increase(
    itype: str, evidence: tuple[str, ...], harm: list[str], policy: Policy, whatif: WhatIf | None
) -> Recommendation:
    cur, new = proposal(itype, "increase", policy)
    head = (
        f"increase human involvement: auto-send at {new:.2f} instead of {cur:.2f}"
        if new <= 1
        else f"increase human involvement: stop auto-sending (now at {cur:.2f})"
    )
    return Recommendation(itype, "increase", head, evidence, tuple(harm), cur, new, whatif)


def recommend(itype: str, c: Counts, policy: Policy, whatif: WhatIf | None = None) -> Recommendation:
    """Expand, keep or increase human involvement for one type, from the policy's oversight criteria."""
    evidence = evidence_of(c)
    if itype in policy.human_only:
        return Recommendation(
            itype,
            "keep",
            "keep: human only by policy",
            evidence,
            ("the policy lists this type under human_only",),
        )
    harm = harm_signs(c, policy.oversight)
    if harm:
        return _increase(itype, evidence, harm, policy, whatif)
    blockers = expand_blockers(itype, c, policy, whatif)
    cur, new = proposal(itype, "expand", policy)
    if blockers:
        current, _ = thresholds_for(itype, policy)
        return Recommendation(
            itype,
            "keep",
            f"keep as is: auto-send stays at {current:.2f}",
            evidence,
            tuple(blockers),
            current,
            new if new < cur else None,
            whatif,
        )
    return Recommendation(
        itype,
        "expand",
        f"expand AI autonomy: auto-send at {new:.2f} instead of {cur:.2f}",
        evidence,
        ("every expand criterion in policy.oversight is met",),
        cur,
        new,
        whatif,
    )
