"""Block Kit for the managers' reports: `/hitl stats`, `/hitl review` (and the weekly digest), `/hitl queue`.

Every report is built for a phone first: the first block is a two- or three-line summary of what to
look at, details follow as section fields and top-N lines ("and 3 more"), nothing is laid out as a
monospace table, and every emoji has words beside it. The fallback `text` (what a phone notification
shows) is the same summary in one line. Blocks are slack_sdk models, so Slack's limits are checked as
they are built.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.common.durations import format_duration
from bot.reporting.format import DATE_FORMAT, money, plural, span_label, top_n
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview
from bot.reporting.oversight.text import (
    NOTHING_TO_RECOMMEND,
    calibration_lines,
    headline_rest,
    kept,
    needs_action,
    type_lines,
    verdict_summary,
    why_label,
)
from bot.reporting.queue import Queue, QueueItem
from bot.reporting.stats.model import Stats
from bot.reporting.stats.text import (
    has_data,
    headline,
    look_at_line,
    period_label,
    stats_dates,
    stats_fields,
    type_summary,
)
from bot.slack.blocks import limits
from bot.slack.blocks.mentions import escape_keeping_mentions
from bot.slack.blocks.text import channel_ref, escape, link
from bot.slack.ids import ActionId
from bot.slack.permalinks import message_permalink

TYPES_TOP = 8  # interaction types listed by name in a report; the rest are counted
WARNINGS_TOP = 5
LINES_TOP = 10  # lines of a section another feature adds
KEEP_NAMES_TOP = 15  # names in the folded "Keep as is" line
REVIEW_BUDGET = 9000  # keep the whole message well under Slack's ~12k block-text ceiling
MAX_MESSAGE_BLOCKS = 50


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=limits.fit(text, limits.CONTEXT_TEXT))])


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=limits.fit(text, limits.SECTION_TEXT)))


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


def text_blocks(text: str) -> list[Block]:
    """A plain mrkdwn answer (usage, the digest schedule) as one section."""
    return [_section(text)]


def hint_block(text: str) -> Block:
    """A small note under an answer (an interaction type the policy does not know)."""
    return _context(text)


def mrkdwn_word(word: str) -> str:
    """A word the user typed (or a ticket id), safe to show in mrkdwn and cut to 80 characters."""
    return escape(word).replace("`", "'")[:80]


# ---------------------------------------------------------------- /hitl stats


def _type_lines(stats: Stats) -> str:
    by_volume = sorted(stats.by_type.items(), key=lambda kv: (-kv[1].volume, kv[0]))
    lines = [f"*{escape(itype)}* {type_summary(c)}" for itype, c in by_volume]
    shown = top_n(lines, TYPES_TOP, more="more types: `/hitl stats <period> <type>`")
    return "*By interaction type* _error = rejects + heavy edits per judged draft_\n" + _bullets(shown)


def render_stats_blocks(stats: Stats) -> tuple[str, list[Block]]:
    """(fallback text, blocks): the summary, the dates, the figures as fields, the types as top-N lines."""
    summary, look = escape(headline(stats)), escape(look_at_line(stats))
    blocks: list[Block] = [
        _section(f"*{summary}*\n{look}"),
        _context(f"hitl stats · {escape(period_label(stats))} · {stats_dates(stats)}"),
    ]
    if has_data(stats):
        fields = [
            MarkdownTextObject(text=limits.fit(f"*{k}*\n{escape(v)}", limits.SECTION_FIELD))
            for k, v in stats_fields(stats)[:10]
        ]
        blocks.append(SectionBlock(fields=fields))
    if stats.by_type:
        blocks += [DividerBlock(), _section(_type_lines(stats))]
    text = f"hitl stats ({period_label(stats)}): {headline(stats)}. {look_at_line(stats)}"
    return limits.fit(text, limits.FALLBACK_TEXT), blocks


# ---------------------------------------------------------------- the oversight review

VERDICT_SIGNAL: dict[str, str] = {
    "expand": ":arrow_up: Expand autonomy",
    "increase": ":warning: More oversight",
    "keep": "Keep as is",
}
VERDICT_WORDS = {"expand": "Expand AI autonomy", "increase": "More human oversight", "keep": "Keep as is"}
_SHORTCODE = re.compile(r":[a-z0-9_+-]+: ")


class AcceptValue(BaseModel):
    """The value of an Accept button (ActionId.OVERSIGHT_ACCEPT) on a review's non-keep verdict.

    Compact JSON with exactly these keys, read by `handlers/slack/oversight.py`:
    `t` the interaction type, `v` the verdict ("expand" or "increase"), `c` the auto-send threshold now
    and `p` the one the verdict proposes (each a number, or null when the verdict names none; 1.01 means
    stop auto-sending), `d` the review's period in days (a whole number, or a fraction for a period
    shorter than a day or not whole days).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    t: str = Field(min_length=1, max_length=64)
    v: str = Field(pattern=r"^(expand|increase)$")
    c: float | None = None
    p: float | None = None
    d: int | float = Field(gt=0)

    def to_json(self) -> str:
        return self.model_dump_json()


def period_days(period: timedelta) -> int | float:
    """A period in days, as the Accept button carries it: 30 for 30d, 0.5 for 12h."""
    days = period / timedelta(days=1)
    return int(days) if days == int(days) else round(days, 3)


def accept_button(rec: Recommendation, period: timedelta) -> ButtonElement:
    """Accept one verdict, behind a confirm dialog that says what changes."""
    value = AcceptValue(
        t=rec.interaction_type, v=rec.verdict, c=rec.current, p=rec.proposed, d=period_days(period)
    )
    change = headline_rest(rec)
    return ButtonElement(
        text="Accept",
        action_id=ActionId.OVERSIGHT_ACCEPT,
        value=value.to_json(),
        style="danger" if rec.verdict == "increase" else "primary",
        confirm=ConfirmObject(
            title=limits.plain(f"Accept for {rec.interaction_type}?", 100),
            text=limits.plain(
                f"{VERDICT_WORDS[rec.verdict]}: {change}. Next you say why; the change is recorded "
                "with its policy diff and your name.",
                300,
            ),
            confirm="Accept",
            deny="Cancel",
        ),
    )


def _entry_body(review: OversightReview, rec: Recommendation) -> str:
    lines = [
        f"{VERDICT_SIGNAL[rec.verdict]} · *{escape(rec.interaction_type)}*",
        escape(headline_rest(rec)),
    ]
    details: list[str] = []
    if rec.verdict != "expand":
        details.append(f"{why_label(rec)}: " + "; ".join(rec.reasons))
    details.append(" · ".join(rec.evidence))
    if rec.whatif is not None:
        details.append(f"what-if: {rec.whatif.sentence()}")
    if rec.customer:
        details.append("customers: " + " · ".join(rec.customer))
    details += type_lines(review, rec)
    body = "\n".join(lines) + "\n" + _bullets([escape_keeping_mentions(d) for d in details])
    return limits.fit(body, limits.SECTION_TEXT)


def _entry_block(review: OversightReview, rec: Recommendation) -> SectionBlock:
    body = _entry_body(review, rec)
    accessory = accept_button(rec, review.period) if rec.verdict != "keep" else None
    return SectionBlock(text=MarkdownTextObject(text=body), accessory=accessory)


def _detailed(review: OversightReview) -> list[Recommendation]:
    """The verdicts shown in full: those to act on, or every one when the review is of one type."""
    if review.stats.interaction_type or len(review.recommendations) == 1:
        return list(review.recommendations)
    return needs_action(review)


def _verdict_blocks(review: OversightReview) -> list[Block]:
    """One section per verdict to act on while the budget lasts, then a pointer to the rest."""
    blocks: list[Block] = []
    budget = REVIEW_BUDGET
    detailed = _detailed(review)
    for rec in detailed:
        block = _entry_block(review, rec)
        budget -= len(block.text.text if block.text else "")
        if budget < 0 or len(blocks) >= 25:
            break
        blocks.append(block)
    hidden = len(detailed) - len(blocks)
    if hidden > 0:
        blocks.append(_context(f"{plural(hidden, 'more type')} to act on: `hitl review` on the command line"))
    if not review.recommendations:
        blocks.append(_section(NOTHING_TO_RECOMMEND))
    return blocks


def _kept_lines(review: OversightReview) -> list[str]:
    """`*Keep as is* (9): a, b, c` and what other features said about those types."""
    detailed = _detailed(review)
    rest = [r for r in kept(review) if r not in detailed]
    if not rest:
        return []
    names = top_n([escape(r.interaction_type) for r in rest], KEEP_NAMES_TOP)
    notes = [
        f"_{escape(r.interaction_type)}_: {escape(line)}" for r in rest for line in type_lines(review, r)
    ]
    return [f"*Keep as is* ({len(rest)}): " + ", ".join(names), *(f"• {n}" for n in top_n(notes, LINES_TOP))]


def _kept_blocks(review: OversightReview) -> list[Block]:
    """Every kept type on one folded line, and the types without decisions."""
    lines = _kept_lines(review)
    if review.no_data:
        names = top_n([escape(t) for t in review.no_data], KEEP_NAMES_TOP)
        lines.append("No decisions in this period: " + ", ".join(names))
    return [_section("\n".join(lines))] if lines else []


def _feature_sections(review: OversightReview) -> list[Block]:
    """`OversightReview.sections` other features add: a title and its top lines."""
    blocks: list[Block] = []
    for s in review.sections:
        if s.lines:
            shown = top_n([escape(line) for line in s.lines], LINES_TOP)
            blocks.append(_section(f"*{escape(s.title)}*\n" + _bullets(shown)))
    return blocks


def _overall_blocks(review: OversightReview) -> list[Block]:
    if not review.overall or not review.recommendations:
        return []
    return [_section("*Customers and cost, all types*\n" + _bullets([escape(x) for x in review.overall]))]


def _calibration_blocks(review: OversightReview) -> list[Block]:
    rows = calibration_lines(review)
    if not rows:
        return []
    lines = [
        f"*{escape(t)}*: {escape(note)}" + (f"\n   {escape(bands)}" if bands else "")
        for t, note, bands in rows
    ]
    text = "*Confidence calibration* _approved without edit, of human decisions, by band_\n" + _bullets(
        top_n(lines, TYPES_TOP, more="more types")
    )
    return [_section(text)]


def _warning_blocks(review: OversightReview) -> list[Block]:
    if not review.warnings:
        return [_context("Warning signs: none")]
    lines = [
        f":warning: *{escape(w.interaction_type or 'all types')}*: {escape_keeping_mentions(w.message)}"
        for w in review.warnings
    ]
    shown = top_n(lines, WARNINGS_TOP, more="more warning signs: `hitl review`")
    return [_section(f"*Warning signs* ({len(review.warnings)})\n" + "\n".join(shown))]


def _review_todo(review: OversightReview) -> str:
    todo = needs_action(review)
    act = (
        f"To do: accept or leave the {plural(len(todo), 'proposal')} below"
        if todo
        else "Nothing to change this time"
    )
    return f"{act} · {plural(len(review.warnings), 'warning sign')}"


def render_review_blocks(
    review: OversightReview, *, title: str = "Oversight review"
) -> tuple[str, list[Block]]:
    """(fallback text, blocks): the verdict counts first, the types to act on, the kept ones folded, the rest."""
    span = span_label(review.period)
    summary = f"*{escape(title)} · last {span}*\n{verdict_summary(review)}\n{_review_todo(review)}"
    blocks: list[Block] = [
        _section(summary),
        _context(
            f"{escape(headline(review.stats))} · {review.since:{DATE_FORMAT}} → {review.until:{DATE_FORMAT}} UTC, "
            f"compared with the {span} before · criteria: `policy.oversight`"
        ),
        *_verdict_blocks(review),
        *_kept_blocks(review),
        *_feature_sections(review),
        *_overall_blocks(review),
        *_calibration_blocks(review),
        *_warning_blocks(review),
    ]
    text = f"{title} (last {span}): {verdict_summary(review)}. {_review_todo(review)}"
    return limits.fit(text, limits.FALLBACK_TEXT), blocks[:MAX_MESSAGE_BLOCKS]


# ---------------------------------------------------------------- /hitl queue


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


def _customer(item: QueueItem) -> list[str]:
    """`gold`, `$12k`: the customer's tier and account value, when the draft carried them."""
    out = []
    if item.customer.get("tier"):
        out.append(escape(str(item.customer["tier"]))[:40])
    value = item.customer.get("account_value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        out.append(f"value {money(float(value))}")
    return out


def _ticket_ref(item: QueueItem, workspace_url: str | None) -> str:
    """The card's permalink (`refund #1013`); its channel while the workspace URL is unknown; the helpdesk
    ticket until the card is posted."""
    label = f"{item.interaction_type} #{item.ticket_id}"
    permalink = message_permalink(workspace_url, item.slack_channel, item.slack_ts)
    if permalink is not None:
        return link(permalink, label)
    if item.slack_channel and item.slack_ts:
        return f"{escape(label)} (card in {channel_ref(item.slack_channel)})"
    if item.ticket_url and item.ticket_url.startswith(("https://", "http://")):
        return link(item.ticket_url, label) + " (no card yet)"
    return escape(label) + " (no card yet)"


def _queue_line(item: QueueItem, now: datetime, workspace_url: str | None) -> str:
    parts = [
        queue_sla_label(item, now),
        _ticket_ref(item, workspace_url),
        escape(item.tier),
        *_customer(item),
    ]
    if item.claimed_by_name:
        parts.append(f"claimed by {escape(item.claimed_by_name)[:60]}")
    elif item.route == "take_over":
        parts.append("take over")
    return " · ".join(parts)


def _queue_summary(queue: Queue, workspace_url: str | None) -> str:
    head = f"*Queue · {queue.total} pending · {queue.overdue} past SLA*"
    if not queue.items:
        return head + "\n:white_check_mark: Nothing is waiting for a human."
    first = queue.items[0]
    ref = _ticket_ref(first, workspace_url)
    if first.sla_due_at is not None and queue.now >= first.sla_due_at:
        late = format_duration(queue.now - first.sla_due_at)
        return head + f"\n:red_circle: Start with {ref}: {late} past SLA"
    return head + f"\nNext up: {ref} · {queue_sla_label(first, queue.now)}"


def _tier_counts(queue: Queue, tier_channels: dict[str, str]) -> str:
    """`billing 2 (1 past SLA) · standard 3`, in the policy's tier order."""
    order = list(tier_channels)
    parts = []
    for t in sorted(queue.counts, key=lambda t: (order.index(t) if t in order else len(order), t)):
        n, od = queue.counts[t]
        parts.append(f"{escape(t)} {n}" + (f" ({od} past SLA)" if od else ""))
    return " · ".join(parts)


def render_queue_blocks(
    queue: Queue, tier_channels: dict[str, str], *, workspace_url: str | None = None
) -> tuple[str, list[Block]]:
    """(fallback text, blocks): pending reviews soonest to breach first, each linked to its card."""
    blocks: list[Block] = [_section(_queue_summary(queue, workspace_url))]
    if queue.counts:
        blocks.append(
            _context(
                f"By tier: {_tier_counts(queue, tier_channels)} · as of {queue.now:%H:%M} UTC · "
                "soonest to breach first"
            )
        )
        lines = [_queue_line(it, queue.now, workspace_url) for it in queue.items]
        more = queue.total - len(queue.items)
        if more > 0:
            lines.append(f"_and {more} more_" + ("" if queue.tier else ": `/hitl queue <tier>`"))
        blocks.append(_section("\n".join(lines)))
    elif queue.tier and queue.tier not in tier_channels:
        blocks.append(
            _context(f"`{mrkdwn_word(queue.tier)}` is not a tier. Tiers: {', '.join(tier_channels)}.")
        )
    text = f"Queue · {queue.total} pending" + (f" in {mrkdwn_word(queue.tier)}" if queue.tier else "")
    text += f", {queue.overdue} past their SLA"
    if queue.items:
        first = queue.items[0]
        text += f"; first: {first.interaction_type} #{first.ticket_id} ({_plain_sla(first, queue.now)})"
    return limits.fit(text, limits.FALLBACK_TEXT), blocks


def _plain_sla(item: QueueItem, now: datetime) -> str:
    """The SLA label without its emoji, for the notification text."""
    return _SHORTCODE.sub("", queue_sla_label(item, now))
