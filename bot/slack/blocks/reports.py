"""Block Kit for the managers' reports: `/hitl stats`, the oversight review (and weekly digest)."""

from __future__ import annotations

from collections import Counter

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.reporting.format import DATE_FORMAT, code_table, pct, span_label
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview
from bot.reporting.oversight.text import NOTHING_TO_RECOMMEND, calibration_rows, headline_rest, why_label
from bot.reporting.stats.model import Stats
from bot.reporting.stats.text import (
    NO_DATA,
    TABLE_COLUMNS,
    period_label,
    stats_dates,
    summary_lines,
    type_rows,
)


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


def render_stats_blocks(stats: Stats) -> tuple[str, list[Block]]:
    """(fallback text, Block Kit blocks) for Slack, built from slack_sdk models so limits are checked."""
    lines = summary_lines(stats)
    blocks: list[Block] = [
        HeaderBlock(text=f"hitl stats · {period_label(stats)}"[:150]),
        _context(stats_dates(stats)),
        SectionBlock(fields=[MarkdownTextObject(text=f"*{k}*\n{v}"[:2000]) for k, v in lines[:10]]),
    ]
    if stats.by_type:
        blocks.append(DividerBlock())
        blocks.append(
            _section(
                "*By interaction type*  _error = rejects + heavy edits per judged draft_\n"
                + code_table(TABLE_COLUMNS, type_rows(stats))
            )
        )
    elif stats.total.volume == 0:
        blocks.append(_context(NO_DATA))
    t = stats.total
    text = (
        f"hitl stats ({period_label(stats)}): {t.volume} drafts, {t.human} human decisions, "
        f"approve {pct(t.approve_rate)}, error rate {pct(t.error_rate)}, SLA breached {t.sla_breached}"
    )
    return text, blocks


# ---------------------------------------------------------------- the oversight review

VERDICT_EMOJI: dict[str, str] = {"expand": ":arrow_up:", "keep": ":pause_button:", "increase": ":arrow_down:"}
REVIEW_BUDGET = 9000  # keep the whole message well under Slack's ~12k block-text ceiling
MAX_RECOMMENDATIONS = 30


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _recommendation_body(rec: Recommendation) -> str:
    lines = [
        f"{VERDICT_EMOJI[rec.verdict]} *{rec.interaction_type}* — *{rec.label}*: {headline_rest(rec)}",
        "• " + " · ".join(rec.evidence),
    ]
    if rec.verdict != "expand":
        lines.append(f"• {why_label(rec)}: " + "; ".join(rec.reasons))
    if rec.whatif is not None:
        lines.append(f"• what-if: {rec.whatif.sentence()}")
    return _cut("\n".join(lines), 1200)


def _recommendation_blocks(review: OversightReview) -> list[Block]:
    """One section per type while the budget lasts, then a pointer to the rest."""
    blocks: list[Block] = []
    budget = REVIEW_BUDGET
    for rec in review.recommendations[:MAX_RECOMMENDATIONS]:
        body = _recommendation_body(rec)
        if budget - len(body) < 0:
            break
        budget -= len(body)
        blocks.append(_section(body))
    hidden = len(review.recommendations) - len(blocks)
    if hidden > 0:
        blocks.append(_context(f"{hidden} more types: `hitl review` on the command line"))
    if not review.recommendations:
        blocks.append(_section(NOTHING_TO_RECOMMEND))
    return blocks


def _calibration_blocks(review: OversightReview) -> list[Block]:
    if not review.calibration:
        return []
    cols, rows = calibration_rows(review)
    table = code_table(cols, rows, limit=2000)
    text = "*Confidence calibration* _approved without edit / human decisions, by band_\n" + table
    return [DividerBlock(), _section(_cut(text, 2900))]


def render_review_blocks(
    review: OversightReview, *, title: str = "Oversight review"
) -> tuple[str, list[Block]]:
    """(fallback text, blocks) for Slack: one section per type, calibration, warning signs."""
    span = span_label(review.period)
    blocks: list[Block] = [
        HeaderBlock(text=f"{title} · last {span}"[:150]),
        _context(
            f"{review.since:{DATE_FORMAT}} → {review.until:{DATE_FORMAT}} UTC, compared with the {span} before · "
            "criteria: `policy.oversight`"
        ),
        *_recommendation_blocks(review),
        *_calibration_blocks(review),
    ]
    warn = "\n".join(f"⚠ *{w.interaction_type or 'all'}*: {w.message}" for w in review.warnings[:15])
    blocks.append(_section(_cut("*Warning signs*\n" + (warn or "none"), 2900)))
    counts = Counter(r.verdict for r in review.recommendations)
    text = (
        f"{title} (last {span}): {counts['expand']} type(s) to expand, {counts['keep']} to keep, "
        f"{counts['increase']} to give more human involvement; {len(review.warnings)} warning sign(s)"
    )
    return text, blocks
