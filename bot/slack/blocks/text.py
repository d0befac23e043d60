"""Text shared by the Block Kit builders: escaping, clipping, dates, durations and decision phrases.

Text from outside (customer, AI draft, names, links) is escaped, so it can never mention `@channel` or
fake a link.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    Block,
    MarkdownTextObject,
)

from bot.ai.pii import mask_pii
from bot.app.settings import Settings
from bot.slack.blocks import limits
from storage.models import DecisionKind, DefectCategory, Review

SECTION_MAX = limits.SECTION_TEXT
HEADER_MAX = limits.HEADER_TEXT
ELLIPSIS = limits.ELLIPSIS
_USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,30}")

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


escape = limits.escape


def clip(text: str, limit: int) -> tuple[str, bool]:
    """Composed (already escaped) mrkdwn cut to `limit` with "…", never inside an entity or token; (text, trimmed)."""
    return limits.trimmed(text, limit)


def clip_escaped(raw: str, limit: int) -> tuple[str, bool]:
    """Escape outside text first, then trim it to `limit` without splitting an entity; (text, trimmed)."""
    return limits.mrkdwn_trimmed(raw, limit)


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


def masking(settings: Settings | None) -> bool:
    """Whether PII is masked in what Slack shows: always, unless the settings turn it off."""
    return settings is None or settings.mask_pii


def masked(text: str, settings: Settings | None) -> str:
    """Outside text (customer, subject, AI draft or summary, reviewer text) as Slack may show it."""
    return mask_pii(text, enabled=masking(settings))


def customer_text(review: Review, settings: Settings | None) -> str:
    """The customer's message as reviewers see it: PII masked unless the settings turn masking off."""
    return masked(review.customer_message, settings)


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
    who = mention(review.decided_by)
    line = f"{DECISION_ICON[kind]} *{DECISION_DONE[kind].capitalize()}* by {who} · {slack_date(review.decided_at)}"
    if kind == DecisionKind.TAKE_OVER:
        line += " — the ticket is assigned to them"
    return line


def mention(user_id: str | None) -> str:
    """A Slack user id as a mention; "hitl" (the service) and anything that is not an id, escaped as text."""
    if user_id and _USER_ID_RE.fullmatch(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "hitl")


def reject_reason(review: Review, comment_budget: int, settings: Settings | None = None) -> str:
    """A rejected review's defect category and comment, masked and escaped."""
    extra = review.extra or {}
    label = DEFECT_LABELS.get(DefectCategory(extra.get("reject_category") or "other"), "Other")
    comment = extra.get("reject_comment")
    return label + (
        f": “{clip_escaped(masked(str(comment), settings), comment_budget)[0]}”" if comment else ""
    )


def money(value: float, currency: str) -> str:
    """An amount with its currency code: `12,500.00 EUR`."""
    return f"{value:,.2f} {escape(currency)}"


def quoted(body: str) -> str:
    """Escaped mrkdwn as a block quote: each line starts with Slack's `>` (the text's own `>` are `&gt;`)."""
    return "\n".join(f">{line}" if line else ">" for line in body.split("\n"))


# What the helpdesk made of a decision (Review.helpdesk_state, set by bot.helpdesk.delivery).
DELIVERY_STATE = {
    "sent": "📨 Delivered to the helpdesk",
    "assigned": "📌 Assigned in the helpdesk",
    "noted": "📝 Noted on the ticket",
    "conflict": "⚠️ *Not sent*: the ticket changed in the helpdesk meanwhile, nothing was overwritten (see thread)",
    "failed": "❌ *Not delivered*: the helpdesk write failed (see thread)",
    "rejected": "❌ *Not delivered*: the helpdesk refused the write (see thread)",
    "closed": "❌ *Not delivered*: the ticket is closed in the helpdesk",
}
DELIVERY_PENDING = "⏳ Writing to the helpdesk…"


REPLY_SENT = "📨 Reply sent to the customer"


def delivery_text(state: str | None, *, reply: bool, helpdesk: bool = True) -> str | None:
    """The delivery state of a decided review as the card shows it (`reply`: the decision sends a reply);
    None when no helpdesk is configured, so nothing is written anywhere."""
    if state is None:
        return DELIVERY_PENDING if helpdesk else None
    if state == "sent" and reply:
        return REPLY_SENT
    return DELIVERY_STATE.get(state, f"Helpdesk: {escape(state)}")
