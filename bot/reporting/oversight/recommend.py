"""Expand AI autonomy, keep, or increase human involvement: the rules of `policy.oversight` per type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.reporting.format import pct, plural
from bot.reporting.oversight.interval import Rate
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
    customer: tuple[str, ...] = ()  # CSAT, came back, customer-facing errors, first reply, reviewer time

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


def approved_rate(c: Counts) -> Rate:
    """Approved without edit, of the drafts a human decided."""
    return Rate(c.approve, c.human)


def error_rate(c: Counts) -> Rate:
    """Rejects plus heavy edits, of the drafts a human judged."""
    return Rate(c.errors, c.judged)


def qa_pass(c: Counts) -> Rate:
    """QA-rated auto-sent replies rated good."""
    return Rate(c.qa_good, c.qa_rated)


def pct1(x: float | None) -> str:
    """A bound next to its bar, with one decimal (80.5% vs 90%), so a near miss never reads as a tie."""
    return "—" if x is None else f"{x:.1%}"


def qa_human_defects(c: Counts) -> Rate:
    """QA-rated replies a human approved or edited, rated a defect (the reviewers' own miss rate)."""
    return Rate(c.qa_human_defect, c.qa_human_rated)


def qa_auto_defects(c: Counts) -> Rate:
    """QA-rated auto-sent replies rated a defect."""
    return Rate(c.qa_defect, c.qa_rated)


def _qa_defect_line(c: Counts) -> tuple[str, ...]:
    """The defect rate of human-approved replies next to the auto-sent one's, when any were QA-rated."""
    if not c.qa_human_rated:
        return ()
    auto = f"; auto-sent {qa_auto_defects(c).text()}" if c.qa_rated else ""
    return (f"QA defects of human-approved replies {qa_human_defects(c).text()}{auto}",)


def evidence_of(c: Counts) -> tuple[str, ...]:
    return (
        f"{plural(c.decided, 'decision')} ({c.human} by humans, {c.auto_send} auto-sent)",
        f"approved without edit {approved_rate(c).text()}",
        (
            f"error rate {error_rate(c).text()} ({plural(c.reject, 'reject')} + "
            f"{plural(c.heavy_edits, 'heavy edit')} of judged drafts)"
        ),
        f"severe defects {c.severe_defects}",
        f"QA pass {qa_pass(c).text()}" if c.qa_rated else "no QA ratings",
        *_qa_defect_line(c),
        f"SLA breached {pct(c.sla_breach_rate)}",
    )


# ---------------------------------------------------------------- what calls for more humans


def harm_signs(c: Counts, o: Oversight) -> list[str]:
    """Why this type needs more human involvement (empty: no harm seen).

    A rate narrows autonomy only when even its 95% Wilson lower bound is past the limit."""
    harm: list[str] = []
    err = error_rate(c)
    if err.low is not None and c.judged >= o.min_rated and err.low > o.tighten_error_rate:
        harm.append(
            f"error rate {err.text()}: even the lower bound {pct1(err.low)} is above "
            f"{pct(o.tighten_error_rate)}"
        )
    qa = qa_pass(c)
    if qa.high is not None and c.qa_rated >= o.min_rated and qa.high < o.tighten_min_qa_pass_rate:
        harm.append(
            f"auto-sent replies pass QA {qa.text()}: even the upper bound {pct1(qa.high)} is below "
            f"{pct(o.tighten_min_qa_pass_rate)}"
        )
    if c.qa_severe > o.expand_max_severe_defects:
        harm.append(f"{c.qa_severe} auto-sent repl{'y' if c.qa_severe == 1 else 'ies'} had a severe defect")
    return harm


# ---------------------------------------------------------------- what stands in the way of expanding


def _evidence_blockers(c: Counts, o: Oversight) -> list[str]:
    """Too little known: too few decisions, judgements or QA ratings."""
    blockers: list[str] = []
    if c.decided < o.min_volume:
        blockers.append(f"only {plural(c.decided, 'decision')} (at least {o.min_volume} needed)")
    if c.judged < o.min_rated:
        blockers.append(f"only {plural(c.judged, 'draft')} judged by humans (at least {o.min_rated} needed)")
    if c.auto_send and c.qa_rated < o.min_qa_ratings:
        blockers.append(
            f"only {c.qa_rated} of its {c.auto_send} auto-sent replies QA-rated "
            f"(at least {o.min_qa_ratings} needed)"
        )
    return blockers


def _quality_blockers(c: Counts, o: Oversight) -> list[str]:
    """Not shown good enough: the 95% Wilson lower bounds of approval and QA pass must clear the bars."""
    blockers: list[str] = []
    appr = approved_rate(c)
    if appr.low is not None and appr.low < o.expand_min_approve_rate:
        blockers.append(
            f"approved without edit {appr.text()}: the lower bound {pct1(appr.low)} does not clear "
            f"{pct(o.expand_min_approve_rate)}"
        )
    if c.severe_defects > o.expand_max_severe_defects:
        blockers.append(f"{c.severe_defects} severe defect(s), at most {o.expand_max_severe_defects} allowed")
    qa = qa_pass(c)
    if qa.low is not None and qa.low < o.expand_min_qa_pass_rate:
        blockers.append(
            f"QA pass {qa.text()}: the lower bound {pct1(qa.low)} does not clear "
            f"{pct(o.expand_min_qa_pass_rate)}"
        )
    return blockers


def _sustained_blockers(previous: Sequence[Counts], o: Oversight, span: str) -> list[str]:
    """The evidence must hold in each of the `sustained_periods - 1` periods before this one too."""
    needed = o.sustained_periods - 1
    blockers: list[str] = []
    for i in range(needed):
        if i >= len(previous):
            blockers.append(f"not sustained: no data for the {span} period {i + 1} back")
            continue
        missing = _evidence_blockers(previous[i], o) + _quality_blockers(previous[i], o)
        if missing:
            when = f"the {span} before" if i == 0 else f"the {span} period {i + 1} back"
            blockers.append(f"not sustained: in {when}, " + "; ".join(missing))
    return blockers


def _whatif_blockers(whatif: WhatIf | None, o: Oversight) -> list[str]:
    """The replay of a lower threshold shows too many drafts humans had to fix."""
    if (
        whatif is not None
        and whatif.proposed < whatif.current
        and whatif.error_share is not None
        and whatif.error_share > 1 - o.expand_min_approve_rate
    ):
        fixed = Rate(whatif.errors, whatif.newly_auto_sent)
        return [
            f"what-if: humans rejected or heavily edited {fixed.text()} of the drafts the lower threshold "
            f"would have auto-sent, more than the {pct(1 - o.expand_min_approve_rate)} the approval bar allows"
        ]
    return []


def expand_blockers(
    itype: str,
    c: Counts,
    policy: Policy,
    whatif: WhatIf | None,
    previous: Sequence[Counts] = (),
    span: str = "period",
) -> list[str]:
    """Every expand criterion this type misses (empty: expand)."""
    o = policy.oversight
    blockers: list[str] = []
    if itype not in policy.interaction_types:
        blockers.append("not in the policy (defaults and the unknown_type trigger apply): add it first")
    blockers += _evidence_blockers(c, o) + _quality_blockers(c, o)
    cur, new = proposal(itype, "expand", policy)
    if new >= cur:
        blockers.append(f"auto-send threshold {cur:.2f} is already at the review threshold")
    if not blockers:  # only a type that qualifies now is checked against the periods before
        blockers += _sustained_blockers(previous, o, span)
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


def recommend(
    itype: str,
    c: Counts,
    policy: Policy,
    whatif: WhatIf | None = None,
    previous: Sequence[Counts] = (),
    span: str = "period",
) -> Recommendation:
    """Expand, keep or increase human involvement for one type, from the policy's oversight criteria.

    `previous` holds the type's counts in the periods before this one, most recent first (`span` names
    their length): EXPAND needs the evidence to hold in `sustained_periods - 1` of them too."""
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
    blockers = expand_blockers(itype, c, policy, whatif, previous, span)
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
        (
            "every expand criterion in policy.oversight is met, on the 95% Wilson lower bounds, "
            f"for {policy.oversight.sustained_periods} periods in a row",
        ),
        cur,
        new,
        whatif,
    )
