"""The oversight review in words: the summary, calibration lines and the terminal rendering (`hitl review`)."""

from __future__ import annotations

from collections import Counter

from bot.reporting.format import DATE_FORMAT, format_table, pct, plural, span_label
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview
from bot.reporting.stats.model import BAND_EDGES, band_label
from bot.reporting.stats.text import qa_human_line

NOTHING_TO_RECOMMEND = "No decisions in this period: nothing to recommend yet."


def verdict_counts(review: OversightReview) -> Counter[str]:
    return Counter(r.verdict for r in review.recommendations)


def verdict_summary(review: OversightReview) -> str:
    """`2 types can take more autonomy, 1 needs more oversight, 9 keep as is`."""
    if not review.recommendations:
        return NOTHING_TO_RECOMMEND
    n = verdict_counts(review)
    expand, increase = n["expand"], n["increase"]
    return (
        f"{plural(expand, 'type')} can take more autonomy, "
        f"{increase} need{'s' if increase == 1 else ''} more oversight, {n['keep']} keep as is"
    )


def needs_action(review: OversightReview) -> list[Recommendation]:
    """The verdicts a manager can act on (expand or increase), more human involvement first."""
    return [r for r in review.recommendations if r.verdict != "keep"]


def kept(review: OversightReview) -> list[Recommendation]:
    return [r for r in review.recommendations if r.verdict == "keep"]


def calibration_rows(review: OversightReview) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(columns, rows): approved without edit / human decisions, per type and confidence band."""
    cols = ("type", *(band_label(i) for i in range(len(BAND_EDGES) + 1)))
    rows = []
    for itype, (bands, _) in review.calibration.items():
        cells = [itype]
        for i in range(len(BAND_EDGES) + 1):
            b = bands.get(i)
            cells.append("·" if b is None or not b.human else f"{pct(b.approve_rate)}/{b.human}")
        rows.append(tuple(cells))
    return cols, rows


def calibration_lines(review: OversightReview) -> list[tuple[str, str, str]]:
    """(type, note, bands) per type: `0.60–0.70 0% of 2 · 0.80–0.90 100% of 2` (only bands with decisions)."""
    out = []
    for itype, (bands, note) in review.calibration.items():
        cells = [f"{b.label} {pct(b.approve_rate)} of {b.human}" for _, b in sorted(bands.items()) if b.human]
        out.append((itype, note, " · ".join(cells)))
    return out


def why_label(rec: Recommendation) -> str:
    return "why" if rec.verdict == "increase" else "why not expand"


def headline_rest(rec: Recommendation) -> str:
    """The headline without its verdict (`auto-send at 0.85 instead of 0.90`)."""
    return rec.headline.split(": ", 1)[-1]


def type_lines(review: OversightReview, rec: Recommendation) -> list[str]:
    """Lines other features and the QA of human-approved replies add under one type's verdict."""
    out: list[str] = []
    c = review.stats.by_type.get(rec.interaction_type)
    if c is not None and (line := qa_human_line(c)) is not None:
        out.append(line)
    for section in review.sections:
        out += [f"{section.title}: {line}" for line in section.per_type.get(rec.interaction_type, ())]
    return out


def _recommendation_lines(review: OversightReview, rec: Recommendation) -> list[str]:
    pad = f"  {'':<18}   "
    out = [f"  {rec.interaction_type:<18} {rec.label.upper()}: {headline_rest(rec)}"]
    out.append(pad + "evidence: " + " · ".join(rec.evidence))
    if rec.verdict != "expand":
        out.append(f"{pad}{why_label(rec)}: " + "; ".join(rec.reasons))
    if rec.whatif is not None:
        out.append(f"{pad}what-if: {rec.whatif.sentence()}")
    if rec.customer:
        out.append(pad + "customers: " + " · ".join(rec.customer))
    out += [pad + line for line in type_lines(review, rec)]
    return out


def _calibration_lines(review: OversightReview) -> list[str]:
    if not review.calibration:
        return []
    cols, rows = calibration_rows(review)
    out = ["", "  Confidence calibration (approved without edit / human decisions, by confidence band):"]
    out += ["    " + line for line in format_table(cols, rows)]
    out += [f"    {t}: {note}" for t, (_, note) in review.calibration.items()]
    return out


def _section_lines(review: OversightReview) -> list[str]:
    out: list[str] = []
    for section in review.sections:
        if section.lines:
            out += ["", f"  {section.title}:"] + [f"    {line}" for line in section.lines]
    return out


def render_review_text(review: OversightReview) -> str:
    """Plain text for the terminal (`hitl review`, the demo): the summary first, then every type."""
    span = span_label(review.period)
    out = [
        (
            f"Oversight review — last {span} ({review.since:{DATE_FORMAT}} → {review.until:{DATE_FORMAT}} UTC), "
            f"compared with the {span} before"
        ),
        "  " + verdict_summary(review),
    ]
    for rec in review.recommendations:
        out += _recommendation_lines(review, rec)
    if review.no_data:
        out.append(f"  No decisions for: {', '.join(review.no_data)}")
    out += _section_lines(review)
    if review.overall and review.recommendations:
        out += ["", "  Customers and cost, all types:"] + [f"    {line}" for line in review.overall]
    out += _calibration_lines(review)
    out += ["", "  Warning signs:" if review.warnings else "  Warning signs: none"]
    out += [f"    ⚠ {w.interaction_type or 'all'}: {w.message}" for w in review.warnings]
    return "\n".join(out)
