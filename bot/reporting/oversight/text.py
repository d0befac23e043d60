"""The oversight review in words: the calibration table and the terminal rendering (`hitl review`, the demo)."""

from __future__ import annotations

from bot.reporting.format import DATE_FORMAT, format_table, pct, span_label
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview
from bot.reporting.stats.model import BAND_EDGES, band_label

NOTHING_TO_RECOMMEND = "No decisions in this period: nothing to recommend yet."


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


def why_label(rec: Recommendation) -> str:
    return "why" if rec.verdict == "increase" else "why not expand"


def headline_rest(rec: Recommendation) -> str:
    """The headline without its verdict (`auto-send at 0.85 instead of 0.90`)."""
    return rec.headline.split(": ", 1)[-1]


def _recommendation_lines(rec: Recommendation) -> list[str]:
    pad = f"  {'':<18}   "
    out = [f"  {rec.interaction_type:<18} {rec.label.upper()}: {headline_rest(rec)}"]
    out.append(pad + "evidence: " + " · ".join(rec.evidence))
    if rec.verdict != "expand":
        out.append(f"{pad}{why_label(rec)}: " + "; ".join(rec.reasons))
    if rec.whatif is not None:
        out.append(f"{pad}what-if: {rec.whatif.sentence()}")
    if rec.customer:
        out.append(pad + "customers: " + " · ".join(rec.customer))
    return out


def _calibration_lines(review: OversightReview) -> list[str]:
    if not review.calibration:
        return []
    cols, rows = calibration_rows(review)
    out = ["", "  Confidence calibration (approved without edit / human decisions, by confidence band):"]
    out += ["    " + line for line in format_table(cols, rows)]
    out += [f"    {t}: {note}" for t, (_, note) in review.calibration.items()]
    return out


def render_review_text(review: OversightReview) -> str:
    """Plain text for the terminal (`hitl review`, the demo)."""
    span = span_label(review.period)
    out = [
        (
            f"Oversight review — last {span} ({review.since:{DATE_FORMAT}} → {review.until:{DATE_FORMAT}} UTC), "
            f"compared with the {span} before"
        )
    ]
    if not review.recommendations:
        out.append("  " + NOTHING_TO_RECOMMEND)
    for rec in review.recommendations:
        out += _recommendation_lines(rec)
    if review.no_data:
        out.append(f"  No decisions for: {', '.join(review.no_data)}")
    if review.overall and review.recommendations:
        out += ["", "  Customers and cost, all types:"] + [f"    {line}" for line in review.overall]
    out += _calibration_lines(review)
    out += ["", "  Warning signs:" if review.warnings else "  Warning signs: none"]
    out += [f"    ⚠ {w.interaction_type or 'all'}: {w.message}" for w in review.warnings]
    return "\n".join(out)
