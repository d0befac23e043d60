"""Thread replies and ephemerals: a decision recorded, already decided, not allowed."""

from __future__ import annotations

from datetime import datetime

from bot.slack.blocks.text import (
    DECISION_DONE,
    DECISION_ICON,
    clip,
    clip_escaped,
    decision_line,
    decision_of,
    escape,
    link,
    reject_reason,
    slack_date,
)
from storage.models import DecisionKind, Review

THREAD_DRAFT_BUDGET = 3500


def decision_thread_text(review: Review) -> str:
    """The thread reply recording a decision (a take over also gets the draft and context to start from)."""
    line = decision_line(review)
    kind = decision_of(review)
    if kind == DecisionKind.APPROVE:
        return f"{line}. The draft goes to the customer as written."
    if kind == DecisionKind.EDIT:
        size = (review.extra or {}).get("edit_distance")
        changed = f" ({size:.0%} of the draft changed)" if isinstance(size, (int, float)) else ""
        return f"{line}{changed}. The edited reply goes to the customer."
    if kind == DecisionKind.REJECT:
        return f"{line} — {reject_reason(review, 1000)}. Nothing was sent to the customer."
    if kind == DecisionKind.TAKE_OVER:
        return take_over_text(review, line)
    return line


def take_over_text(review: Review, line: str) -> str:
    """A take over's thread reply: the AI draft and the context, as a starting point."""
    draft, _ = clip_escaped(review.draft, THREAD_DRAFT_BUDGET)
    parts = [f"{line}.", "*Starting point — the AI draft:*", f"```{draft}```"]
    reasons = "; ".join(escape(r.get("message", "")) for r in review.reasons)
    if reasons:
        parts.append(f"*Why it needed a human:* {clip(reasons, 1000)[0]}")
    if review.kb_sources:
        parts.append(
            "*Sources the AI used:* " + clip(", ".join(escape(s) for s in review.kb_sources), 1000)[0]
        )
    if review.ticket_url:
        parts.append(f"*Ticket:* {link(review.ticket_url, '#' + review.ticket_id)}")
    return "\n".join(parts)


def already_decided_text(
    *, decision: str, actor_id: str | None, decided_at: datetime | None, user_id: str
) -> str:
    """The ephemeral for a click on a decided review: who decided what, and when."""
    kind = DecisionKind(decision)
    when = f" ({slack_date(decided_at)})" if decided_at else ""
    if actor_id == user_id:
        return f"{DECISION_ICON[kind]} You already {DECISION_DONE[kind]} this{when}. Nothing changed."
    who = f"<@{actor_id}>" if actor_id and actor_id != "hitl" else "hitl"
    return f"{DECISION_ICON[kind]} Already {DECISION_DONE[kind]} by {who}{when}. Nothing changed."


def not_allowed_text(why: str) -> str:
    """The ephemeral for a click by someone the policy does not let decide."""
    return f"🚫 {why} Nothing changed, and the attempt is in the audit log."
