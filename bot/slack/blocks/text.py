"""Text shared by the Block Kit builders: escaping, clipping, dates, durations and decision phrases.

Text from outside (customer, AI draft, names, links) is escaped, so it can never mention `@channel` or
fake a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    Block,
    MarkdownTextObject,
)

from bot.ai.pii import mask_pii
from bot.app.settings import Settings
from storage.models import DecisionKind, DefectCategory, Review

SECTION_MAX = 3000
HEADER_MAX = 150

ELLIPSIS = "…"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

DECISION_DONE = {
    DecisionKind.APPROVE: "approved",
    DecisionKind.EDIT: "edited",
    DecisionKind.TAKE_OVER: "taken over",
    DecisionKind.REJECT: "rejected",
    DecisionKind.AUTO_SEND: "auto-sent",
}
DECISION_ICON = {
    DecisionKind.APPROVE: "✅",
    DecisionKind.EDIT: "✏️",
    DecisionKind.TAKE_OVER: "🙋",
    DecisionKind.REJECT: "⛔",
    DecisionKind.AUTO_SEND: "🤖",
}
DEFECT_LABELS = {
    DefectCategory.HALLUCINATION: "Hallucination",
    DefectCategory.TONE_MISMATCH: "Tone mismatch",
    DefectCategory.POLICY_MISAPPLICATION: "Policy misapplication",
    DefectCategory.INCOMPLETE_RESOLUTION: "Incomplete resolution",
    DefectCategory.OTHER: "Other",
}


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` (all Slack asks), making mentions and links in the text inert."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def clip(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters with "…" when trimmed; (text, trimmed)."""
    if len(text) <= limit:
        return text, False
    return text[: limit - 1].rstrip() + ELLIPSIS, True


def clip_escaped(raw: str, limit: int) -> tuple[str, bool]:
    """Escape `raw` and trim it to `limit` characters without splitting an entity; (text, trimmed)."""
    escaped = escape(raw)
    if len(escaped) <= limit:
        return escaped, False
    out: list[str] = []
    size = 0
    for ch in raw:
        piece = _ESCAPES.get(ch, ch)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + ELLIPSIS, True


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A date Slack shows in each reader's time zone, with a UTC fallback."""
    return f"<!date^{int(at.timestamp())}^{fmt}|{at:%Y-%m-%d %H:%M} UTC>"


def span(delta: timedelta) -> str:
    """A short duration: "<1m", "12m", "1h 5m", "2d 3h"."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def link(url: str, label: str) -> str:
    """A mrkdwn link whose URL and label cannot break out of the `<url|label>` syntax."""
    safe_url = escape(url).replace("|", "%7C")
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"


def channel_ref(channel: str) -> str:
    """A channel as Slack shows it: `<#C123>` for ids, the escaped name otherwise."""
    if channel[:1] in ("C", "G") and channel.isalnum():
        return f"<#{channel}>"
    return escape(channel)


def customer_text(review: Review, settings: Settings | None) -> str:
    """The customer's message as reviewers see it: PII masked unless the settings turn masking off."""
    masked = settings is None or settings.mask_pii
    return mask_pii(review.customer_message) if masked else review.customer_message


def decision_of(review: Review) -> DecisionKind | None:
    """The review's decision as the enum, None while pending."""
    return DecisionKind(review.decision) if review.decision else None


def validated(blocks: Sequence[Block]) -> list[Block]:
    """The blocks, each checked against Slack's limits by slack_sdk (SlackObjectFormationError when over)."""
    for block in blocks:
        block.to_dict()  # slack_sdk checks its limits here and raises SlackObjectFormationError
    return list(blocks)


def md(text: str) -> MarkdownTextObject:
    """A mrkdwn text object."""
    return MarkdownTextObject(text=text)


def decision_line(review: Review) -> str:
    """Who decided what and when, e.g. "✅ *Approved* by <@U1> · <date>"."""
    kind = decision_of(review)
    if kind is None or review.decided_at is None:
        return ""
    who = f"<@{review.decided_by}>" if review.decided_by and review.decided_by != "hitl" else "hitl"
    line = f"{DECISION_ICON[kind]} *{DECISION_DONE[kind].capitalize()}* by {who} · {slack_date(review.decided_at)}"
    if kind == DecisionKind.TAKE_OVER:
        line += " — the ticket is assigned to them"
    return line


def reject_reason(review: Review, comment_budget: int) -> str:
    """A rejected review's defect category and comment, escaped."""
    extra = review.extra or {}
    label = DEFECT_LABELS.get(DefectCategory(extra.get("reject_category") or "other"), "Other")
    comment = extra.get("reject_comment")
    return label + (f": “{clip_escaped(str(comment), comment_budget)[0]}”" if comment else "")
