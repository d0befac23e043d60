"""The oversight review: where the AI can be trusted with more, and where it needs more humans.

Pure rules over aggregated numbers (`recommend`, `what_if`, `warning_signs`, `calibration_note`),
fed by `build_review`, which runs the queries: this period's stats, the previous equal period's,
the last N human decisions per type (what-if replays) and a few warning-sign counts.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from sqlalchemy import bindparam, distinct, func, select, text
from sqlmodel import Session

from bot.reporting.stats import (
    BAND_EDGES,
    HUMAN_KINDS,
    Band,
    Counts,
    Stats,
    band_label,
    code_table,
    columns,
    compute_stats,
    format_table,
    pct,
    plural,
    span_label,
)
from bot.review.policy import Oversight, Policy
from storage.models import REPEAT_CONTACT, Decision, DecisionKind, Review, SlaPing, UTCDateTime

Verdict = Literal["expand", "keep", "increase"]
VERDICT_LABEL: dict[str, str] = {
    "expand": "expand AI autonomy",
    "keep": "keep as is",
    "increase": "increase human involvement",
}
VERDICT_EMOJI: dict[str, str] = {"expand": ":arrow_up:", "keep": ":pause_button:", "increase": ":arrow_down:"}
CONFIDENCE_CODES = frozenset({"confidence_high", "confidence_medium", "confidence_low"})
MIN_BAND = 5  # decisions a confidence band needs before its approval rate is compared


# ---------------------------------------------------------------- what-if


@dataclass(frozen=True)
class WhatIfRow:
    """One recent decision of a type, as the what-if replays it."""

    confidence: float
    decision: str
    edit_distance: float | None = None
    triggered: bool = (
        False  # a trigger (keyword, VIP, repeat contact...) sent it to humans whatever the confidence
    )


@dataclass(frozen=True)
class WhatIf:
    """What an auto-send threshold would have done to the last N decisions of a type."""

    interaction_type: str
    current: float
    proposed: float
    considered: int
    would_auto_send: int = 0  # by confidence alone, at or above the proposed threshold
    newly_auto_sent: int = 0  # ...of which a human actually decided
    approved: int = 0
    edited: int = 0
    heavily_edited: int = 0
    rejected: int = 0
    taken_over: int = 0
    to_humans: int = 0  # auto-sent replies that a higher threshold would have sent to a human

    @property
    def errors(self) -> int:
        return self.rejected + self.heavily_edited

    @property
    def error_share(self) -> float | None:
        return self.errors / self.newly_auto_sent if self.newly_auto_sent else None

    def sentence(self) -> str:
        """One line a manager can read."""
        if self.considered == 0:
            kind = "auto-sent replies" if self.proposed > self.current else "human decisions"
            return f"no recent {kind} of this type to replay against {self.proposed:.2f}"
        if self.proposed < self.current:
            if self.newly_auto_sent == 0:
                return (
                    f"at {self.proposed:.2f} instead of {self.current:.2f}, none of the last {self.considered} "
                    "decisions would have been auto-sent in addition"
                )
            return (
                f"at {self.proposed:.2f} instead of {self.current:.2f}, {self.newly_auto_sent} of the last "
                f"{self.considered} human-decided drafts would have been auto-sent; humans had edited "
                f"{self.edited} of them ({self.heavily_edited} heavily), rejected {self.rejected} and taken over "
                f"{self.taken_over}"
            )
        if self.proposed > self.current:
            return (
                f"at {self.proposed:.2f} instead of {self.current:.2f}, {self.to_humans} of the last "
                f"{self.considered} auto-sent replies would have gone to a human first"
            )
        return f"at {self.proposed:.2f} (unchanged), {self.would_auto_send} of the last {self.considered} auto-sent"


def what_if(
    interaction_type: str,
    rows: list[WhatIfRow],
    *,
    current: float,
    proposed: float,
    heavy_edit_distance: float,
) -> WhatIf:
    """Replay recent decisions against `proposed`: lower it to see what more auto-sending would have
    sent unseen, raise it to see how many auto-sent replies humans would have checked first."""
    counts: Counter[str] = Counter()
    for r in rows:
        auto_now = r.decision == DecisionKind.AUTO_SEND
        if auto_now:
            if r.confidence < proposed:
                counts["to_humans"] += 1
            else:
                counts["would_auto_send"] += 1
            continue
        if r.triggered or r.confidence < proposed or r.decision not in HUMAN_KINDS:
            continue
        counts["would_auto_send"] += 1
        counts["newly_auto_sent"] += 1
        counts[
            {"approve": "approved", "edit": "edited", "reject": "rejected", "take_over": "taken_over"}[
                r.decision
            ]
        ] += 1
        if r.decision == DecisionKind.EDIT and (
            r.edit_distance is None or r.edit_distance >= heavy_edit_distance
        ):
            counts["heavily_edited"] += 1
    raising = proposed > current
    considered = sum(1 for r in rows if (r.decision == DecisionKind.AUTO_SEND) == raising)
    return WhatIf(
        interaction_type=interaction_type, current=current, proposed=proposed, considered=considered, **counts
    )


# ---------------------------------------------------------------- recommendations


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


def recommend(itype: str, c: Counts, policy: Policy, whatif: WhatIf | None = None) -> Recommendation:
    """Expand, keep or increase human involvement for one type, from the policy's oversight criteria."""
    o = policy.oversight
    evidence = evidence_of(c)
    current, _ = thresholds_for(itype, policy)
    if itype in policy.human_only:
        return Recommendation(
            itype,
            "keep",
            "keep: human only by policy",
            evidence,
            ("the policy lists this type under human_only",),
        )

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
    if harm:
        cur, new = proposal(itype, "increase", policy)
        head = (
            f"increase human involvement: auto-send at {new:.2f} instead of {cur:.2f}"
            if new <= 1
            else f"increase human involvement: stop auto-sending (now at {cur:.2f})"
        )
        return Recommendation(itype, "increase", head, evidence, tuple(harm), cur, new, whatif)

    blockers: list[str] = []
    if itype not in policy.interaction_types:
        blockers.append("not in the policy (defaults and the unknown_type trigger apply): add it first")
    if c.decided < o.min_volume:
        blockers.append(f"only {plural(c.decided, 'decision')} (at least {o.min_volume} needed)")
    if c.judged < o.min_rated:
        blockers.append(f"only {plural(c.judged, 'draft')} judged by humans (at least {o.min_rated} needed)")
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
    cur, new = proposal(itype, "expand", policy)
    if new >= cur:
        blockers.append(f"auto-send threshold {cur:.2f} is already at the review threshold")
    if (
        whatif is not None
        and whatif.proposed < whatif.current
        and whatif.error_share is not None
        and whatif.error_share > 1 - o.expand_min_approve_rate
    ):
        blockers.append(
            f"what-if: humans rejected or heavily edited {whatif.errors} of the {whatif.newly_auto_sent} "
            "drafts the lower threshold would have auto-sent"
        )
    if blockers:
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


# ---------------------------------------------------------------- calibration


def calibration_note(bands: dict[int, Band]) -> str:
    """Does approval rise with confidence? Bands with fewer than MIN_BAND human decisions are ignored."""
    rates = [
        b.approve_rate for _, b in sorted(bands.items()) if b.human >= MIN_BAND and b.approve_rate is not None
    ]
    if len(rates) < 2:
        return "too few human decisions per confidence band to judge calibration"
    drops = [a - b for a, b in pairwise(rates) if a - b > 0.05]
    if drops:
        return "approval does not rise with confidence: confidence is a weak signal here"
    return "approval rises with confidence: thresholds can be trusted"


# ---------------------------------------------------------------- warning signs


@dataclass(frozen=True)
class Signals:
    """Counts for warning signs that are not part of the stats."""

    repeat_contacts: dict[str, int] = field(default_factory=dict)
    sla_escalations: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WarningSign:
    code: str
    interaction_type: str | None
    message: str


def rising(cur: int, cur_base: int, prev: int, prev_base: int, o: Oversight) -> bool:
    """A share that grew by `rising_ratio` on the previous period, with at least `rising_min_count` cases."""
    if cur < o.rising_min_count or cur_base == 0 or prev_base == 0:
        return False
    return cur / cur_base >= (prev / prev_base) * o.rising_ratio


def _share(n: int, base: int) -> str:
    return pct(n / base if base else None)


def warning_signs(
    cur: Stats, prev: Stats, cur_sig: Signals, prev_sig: Signals, o: Oversight
) -> list[WarningSign]:
    """Repeat contacts and unexpected escalations rising, SLA trouble, and types whose error rate is unknown."""
    signs: list[WarningSign] = []
    empty = Counts()
    for itype, c in cur.by_type.items():
        p = prev.by_type.get(itype, empty)
        rc, prc = cur_sig.repeat_contacts.get(itype, 0), prev_sig.repeat_contacts.get(itype, 0)
        if rising(rc, c.volume, prc, p.volume, o):
            signs.append(
                WarningSign(
                    "repeat_contacts_rising",
                    itype,
                    f"repeat contacts rising: {rc} of {c.volume} drafts ({_share(rc, c.volume)}), "
                    f"was {_share(prc, p.volume)}",
                )
            )
        esc = c.take_over_on_review + cur_sig.sla_escalations.get(itype, 0)
        pesc = p.take_over_on_review + prev_sig.sla_escalations.get(itype, 0)
        if rising(esc, c.volume, pesc, p.volume, o):
            signs.append(
                WarningSign(
                    "escalations_rising",
                    itype,
                    f"unexpected escalations rising: {esc} ({c.take_over_on_review} take-overs of "
                    f"drafts routed to review, {cur_sig.sla_escalations.get(itype, 0)} SLA "
                    f"escalations) per {c.volume} drafts, was {pesc} per {p.volume}",
                )
            )
        rate = c.sla_breach_rate
        if rate is not None and rate > o.warn_sla_breach_rate and c.sla_breached >= o.rising_min_count:
            signs.append(
                WarningSign(
                    "sla_breaching",
                    itype,
                    f"{c.sla_breached} reviews breached their SLA ({pct(rate)}, warning above "
                    f"{pct(o.warn_sla_breach_rate)})",
                )
            )
        if c.decided and c.judged + c.qa_rated < o.min_rated:
            extra = f"; {c.auto_send} auto-sent, {c.qa_rated} QA-rated" if c.auto_send else ""
            signs.append(
                WarningSign(
                    "error_rate_unknown",
                    itype,
                    f"error rate unknown: {c.judged} judged + {c.qa_rated} QA-rated of "
                    f"{plural(c.decided, 'decision')} (at least {o.min_rated} needed){extra}",
                )
            )
    for itype, (pending, overdue) in sorted(cur.pending_by_type.items()):
        if overdue:
            signs.append(
                WarningSign(
                    "left_undecided",
                    itype,
                    f"{overdue} of {pending} pending reviews are past their SLA and still undecided",
                )
            )
    return signs


# ---------------------------------------------------------------- the review


@dataclass
class OversightReview:
    since: datetime
    until: datetime
    stats: Stats
    previous: Stats
    recommendations: list[Recommendation]
    warnings: list[WarningSign]
    calibration: dict[str, tuple[dict[int, Band], str]]
    no_data: list[str]

    @property
    def period(self) -> timedelta:
        return self.until - self.since


def collect_signals(
    *, session: Session, since: datetime, until: datetime, interaction_type: str | None = None
) -> Signals:
    """Repeat contacts among drafts created in the period; reviews escalated past their SLA in it."""
    # The partial index ix_reviews_repeat_contact holds only repeat-contact drafts; its predicate is
    # repeated verbatim so both databases can use it (SQLite's planner needs telling).
    hint = " INDEXED BY ix_reviews_repeat_contact" if session.get_bind().dialect.name == "sqlite" else ""
    type_filter = " AND interaction_type = :itype" if interaction_type else ""
    rq = text(
        f"SELECT interaction_type, count(*) FROM reviews{hint} WHERE {REPEAT_CONTACT} "
        f"AND created_at >= :since AND created_at < :until{type_filter} GROUP BY interaction_type"
    ).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
    params: dict[str, object] = {"since": since, "until": until}
    r, s = columns(Review), columns(SlaPing)
    eq = (
        select(r.interaction_type, func.count(distinct(s.review_id)))
        .join(Review, r.id == s.review_id)
        .where(s.status == "fired", s.kind.like("%breach:%"), s.fired_at >= since, s.fired_at < until)
    )
    if interaction_type:
        params["itype"] = interaction_type
        eq = eq.where(r.interaction_type == interaction_type)
    return Signals(
        repeat_contacts={str(t): int(n) for t, n in session.execute(rq, params)},
        sla_escalations={t: int(n) for t, n in session.execute(eq.group_by(r.interaction_type))},
    )


def recent_rows(*, session: Session, interaction_type: str, limit: int) -> list[WhatIfRow]:
    """The last `limit` review-stage decisions of a type (index ix_decisions_type_stage_decided)."""
    d = columns(Decision)
    q = (
        select(d.confidence, d.decision, d.edit_distance, d.reasons)
        .where(d.interaction_type == interaction_type, d.stage == "review")
        .order_by(d.decided_at.desc())
        .limit(limit)
    )
    rows = []
    for conf, kind, dist, reasons in session.execute(q):
        codes = {r.get("code") for r in reasons or [] if isinstance(r, dict)}
        rows.append(WhatIfRow(float(conf), kind, dist, bool(codes - CONFIDENCE_CODES)))
    return rows


def build_review(
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    period: timedelta,
    interaction_type: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> OversightReview:
    """The oversight review of [now - period, now), compared with the period before it."""
    o = policy.oversight
    since = now - period
    cur = compute_stats(
        session=session,
        since=since,
        until=now,
        interaction_type=interaction_type,
        oversight=o,
        now=now,
        calibration=True,
    )
    prev = compute_stats(
        session=session,
        since=since - period,
        until=since,
        interaction_type=interaction_type,
        oversight=o,
        now=now,
    )
    cur_sig = collect_signals(session=session, since=since, until=now, interaction_type=interaction_type)
    prev_sig = collect_signals(
        session=session, since=since - period, until=since, interaction_type=interaction_type
    )
    recs: list[Recommendation] = []
    for itype, c in cur.by_type.items():
        if c.decided == 0 and c.volume == 0:
            continue
        rec = recommend(itype, c, policy)
        if itype not in policy.human_only:
            current, proposed = (
                (rec.current, rec.proposed) if rec.proposed is not None else proposal(itype, "expand", policy)
            )
            current = current if current is not None else thresholds_for(itype, policy)[0]
            if thresholds and itype in thresholds:
                proposed = thresholds[itype]
            if proposed != current:
                wi = what_if(
                    itype,
                    recent_rows(session=session, interaction_type=itype, limit=o.whatif_last),
                    current=current,
                    proposed=proposed,
                    heavy_edit_distance=o.heavy_edit_distance,
                )
                rec = recommend(itype, c, policy, wi)
                if rec.whatif is None:
                    rec = dataclasses.replace(rec, whatif=wi)
        recs.append(rec)
    order = {"increase": 0, "expand": 1, "keep": 2}
    recs.sort(key=lambda r: (order[r.verdict], r.interaction_type))
    known = list(policy.interaction_types) + [
        t for t in policy.human_only if t not in policy.interaction_types
    ]
    no_data = [t for t in known if t not in cur.by_type and (interaction_type in (None, t))]
    calibration = {
        t: (bands, calibration_note(bands))
        for t, bands in sorted(cur.calibration.items())
        if sum(b.human for b in bands.values())
    }
    return OversightReview(
        since=since,
        until=now,
        stats=cur,
        previous=prev,
        recommendations=recs,
        warnings=warning_signs(cur, prev, cur_sig, prev_sig, o),
        calibration=calibration,
        no_data=no_data,
    )


# ---------------------------------------------------------------- rendering


def _span(review: OversightReview) -> str:
    return span_label(review.period)


def calibration_rows(review: OversightReview) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    cols = ("type", *(band_label(i) for i in range(len(BAND_EDGES) + 1)))
    rows = []
    for itype, (bands, _) in review.calibration.items():
        cells = [itype]
        for i in range(len(BAND_EDGES) + 1):
            b = bands.get(i)
            cells.append("·" if b is None or not b.human else f"{pct(b.approve_rate)}/{b.human}")
        rows.append(tuple(cells))
    return cols, rows


def render_review_text(review: OversightReview) -> str:
    """Plain text for the terminal (`hitl review`, the demo)."""
    fmt = "%Y-%m-%d %H:%M"
    out = [
        (
            f"Oversight review — last {_span(review)} ({review.since:{fmt}} → {review.until:{fmt}} UTC), "
            f"compared with the {_span(review)} before"
        )
    ]
    if not review.recommendations:
        out.append("  No decisions in this period: nothing to recommend yet.")
    for rec in review.recommendations:
        out.append(f"  {rec.interaction_type:<18} {rec.label.upper()}: {rec.headline.split(': ', 1)[-1]}")
        out.append(f"  {'':<18}   evidence: " + " · ".join(rec.evidence))
        if rec.verdict != "expand":
            out.append(
                f"  {'':<18}   {'why' if rec.verdict == 'increase' else 'why not expand'}: "
                + "; ".join(rec.reasons)
            )
        if rec.whatif is not None:
            out.append(f"  {'':<18}   what-if: {rec.whatif.sentence()}")
    if review.no_data:
        out.append(f"  No decisions for: {', '.join(review.no_data)}")
    if review.calibration:
        cols, rows = calibration_rows(review)
        out += ["", "  Confidence calibration (approved without edit / human decisions, by confidence band):"]
        out += ["    " + line for line in format_table(cols, rows)]
        out += [f"    {t}: {note}" for t, (_, note) in review.calibration.items()]
    out += ["", "  Warning signs:" if review.warnings else "  Warning signs: none"]
    out += [f"    ⚠ {w.interaction_type or 'all'}: {w.message}" for w in review.warnings]
    return "\n".join(out)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_review_blocks(
    review: OversightReview, *, title: str = "Oversight review"
) -> tuple[str, list[Block]]:
    """(fallback text, blocks) for Slack: one section per type, calibration, warning signs."""
    fmt = "%Y-%m-%d %H:%M"
    blocks: list[Block] = [
        HeaderBlock(text=f"{title} · last {_span(review)}"[:150]),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{review.since:{fmt}} → {review.until:{fmt}} UTC, compared with the {_span(review)} before · "
                    "criteria: `policy.oversight`"
                )
            ]
        ),
    ]
    budget = 9000  # keep the whole message well under Slack's ~12k block-text ceiling
    shown = 0
    for rec in review.recommendations[:30]:
        lines = [
            (
                f"{VERDICT_EMOJI[rec.verdict]} *{rec.interaction_type}* — *{rec.label}*: "
                f"{rec.headline.split(': ', 1)[-1]}"
            ),
            "• " + " · ".join(rec.evidence),
        ]
        if rec.verdict != "expand":
            lines.append(
                f"• {'why' if rec.verdict == 'increase' else 'why not expand'}: " + "; ".join(rec.reasons)
            )
        if rec.whatif is not None:
            lines.append(f"• what-if: {rec.whatif.sentence()}")
        body = _cut("\n".join(lines), 1200)
        if budget - len(body) < 0:
            break
        budget -= len(body)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=body)))
        shown += 1
    if shown < len(review.recommendations):
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"{len(review.recommendations) - shown} more types: `hitl review` on the command line"
                    )
                ]
            )
        )
    if not review.recommendations:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text="No decisions in this period: nothing to recommend yet.")
            )
        )
    if review.calibration:
        cols, rows = calibration_rows(review)
        blocks.append(DividerBlock())
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=_cut(
                        "*Confidence calibration* _approved without edit / human decisions, by band_\n"
                        + code_table(cols, rows, limit=2000),
                        2900,
                    )
                )
            )
        )
    warn = "\n".join(f"⚠ *{w.interaction_type or 'all'}*: {w.message}" for w in review.warnings[:15])
    blocks.append(
        SectionBlock(text=MarkdownTextObject(text=_cut("*Warning signs*\n" + (warn or "none"), 2900)))
    )
    counts = Counter(r.verdict for r in review.recommendations)
    text = (
        f"{title} (last {_span(review)}): {counts['expand']} type(s) to expand, {counts['keep']} to keep, "
        f"{counts['increase']} to give more human involvement; {len(review.warnings)} warning sign(s)"
    )
    return text, blocks
