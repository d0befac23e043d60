"""Block Kit for the managers' reports: `/hitl stats`, the oversight review (and weekly digest)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.common.durations import format_duration
from bot.reporting.format import DATE_FORMAT, code_table, pct, span_label
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview
from bot.reporting.oversight.text import NOTHING_TO_RECOMMEND, calibration_rows, headline_rest, why_label
from bot.reporting.queue import Queue, QueueItem
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


def text_blocks(text: str) -> list[Block]:
    """A plain mrkdwn answer (usage, the digest schedule) as one section."""
    return [_section(text)]


def hint_block(text: str) -> Block:
    """A small note under an answer (an interaction type the policy does not know)."""
    return _context(text)


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
    if rec.customer:
        lines.append("• customers: " + " · ".join(rec.customer))
    return _cut("\n".join(lines), 2000)


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


def _overall_blocks(review: OversightReview) -> list[Block]:
    if not review.overall or not review.recommendations:
        return []
    body = "*Customers and cost, all types*\n" + "\n".join(f"• {line}" for line in review.overall)
    return [_section(_cut(body, 2900))]


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
        *_overall_blocks(review),
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


# ---------------------------------------------------------------- the queue


def mrkdwn_word(word: str) -> str:
    """A word the user typed (or a ticket id), safe to show in mrkdwn and cut to 80 characters."""
    return word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")[:80]


def queue_sla_label(item: QueueItem, now: datetime) -> str:
    """`:red_circle: 12m past SLA`, `:large_orange_circle: due in 4m`, `:white_circle: due in 25m`."""
    if item.sla_due_at is None:
        return "no SLA"
    if now >= item.sla_due_at:
        return f":red_circle: {format_duration(now - item.sla_due_at)} past SLA"
    left = format_duration(item.sla_due_at - now)
    if item.sla_warn_at is not None and now >= item.sla_warn_at:
        return f":large_orange_circle: due in {left}"
    return f":white_circle: due in {left}"


def _queue_line(it: QueueItem, now: datetime) -> str:
    ticket = f"#{mrkdwn_word(it.ticket_id)}"
    if it.ticket_url and not any(ch in it.ticket_url for ch in "|<> "):
        ticket = f"<{it.ticket_url}|{ticket}>"
    return (
        f"• {ticket} {it.interaction_type} · {it.route.replace('_', ' ')} · waiting "
        f"{format_duration(now - it.created_at)} · {queue_sla_label(it, now)}"
    )


def _tier_section(queue: Queue, tier: str, channel: str) -> SectionBlock:
    n, od = queue.counts[tier]
    shown = queue.items.get(tier, [])
    lines = [f"*{tier}* ({channel}) — {n} pending, {od} past SLA"]
    lines += [_queue_line(it, queue.now) for it in shown]
    if n > len(shown):
        lines.append(f"_… and {n - len(shown)} more_")
    return _section("\n".join(lines)[:2900])


def render_queue_blocks(queue: Queue, tier_channels: dict[str, str]) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the queue; `tier_channels` in the policy's tier order."""
    title = f"Queue · {queue.total} pending" + (f" in {queue.tier}" if queue.tier else "")
    blocks: list[Block] = [
        HeaderBlock(text=title[:150]),
        _context(f"{queue.overdue} past their SLA · as of {queue.now:%Y-%m-%d %H:%M} UTC · oldest first"),
    ]
    order = list(tier_channels)
    for t in sorted(queue.counts, key=lambda x: (-(order.index(x) if x in order else -1), x)):
        blocks.append(_tier_section(queue, t, tier_channels.get(t, "?")))
    if not queue.counts:
        unknown = queue.tier and queue.tier not in tier_channels
        note = "Nothing is waiting for a human." + (
            f" (Tiers: {', '.join(tier_channels)}.)" if unknown else ""
        )
        blocks.append(_section(note))
    return f"{title}, {queue.overdue} past their SLA", blocks[:50]
