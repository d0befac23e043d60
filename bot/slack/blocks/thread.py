"""Thread replies and ephemerals: a decision recorded, already decided, not allowed."""

from __future__ import annotations

from datetime import datetime

from bot.app.settings import Settings
from bot.slack.blocks import limits
from bot.slack.blocks.text import (
    DECISION_DONE,
    DECISION_ICON,
    channel_ref,
    clip,
    clip_escaped,
    decision_line,
    decision_of,
    escape,
    link,
    masked,
    mention,
    reject_reason,
    slack_date,
)
from storage.models import DecisionKind, Review

THREAD_DRAFT_BUDGET = 3500
THREAD_TEXT = 8000  # a thread reply is plain `text`: far below Slack's 40,000, readable in a thread


def decision_thread_text(review: Review, settings: Settings | None = None) -> str:
    """The thread reply recording a decision (a take over also gets the draft and context to start from)."""
    return limits.fit(_thread_text(review, settings), THREAD_TEXT)


def _thread_text(review: Review, settings: Settings | None) -> str:
    line = decision_line(review)
    kind = decision_of(review)
    if kind == DecisionKind.APPROVE:
        return f"{line}. The draft goes to the customer as written."
    if kind == DecisionKind.EDIT:
        size = (review.extra or {}).get("edit_distance")
        changed = f" ({size:.0%} of the draft changed)" if isinstance(size, (int, float)) else ""
        return f"{line}{changed}. The edited reply goes to the customer."
    if kind == DecisionKind.REJECT:
        return f"{line} — {reject_reason(review, 1000, settings)}. Nothing was sent to the customer."
    if kind == DecisionKind.TAKE_OVER:
        return take_over_text(review, line, settings)
    return line


def take_over_text(review: Review, line: str, settings: Settings | None = None) -> str:
    """A take over's thread reply: the AI draft (masked) and the context, as a starting point."""
    draft, _ = clip_escaped(masked(review.draft, settings), THREAD_DRAFT_BUDGET)
    parts = [f"{line}.", "*Starting point — the AI draft:*", f"```{draft}```"]
    reasons = "; ".join(escape(str(r.get("message", ""))) for r in review.reasons[:30])
    if reasons:
        parts.append(f"*Why it needed a human:* {clip(reasons, 1000)[0]}")
    if review.kb_sources:
        parts.append(
            "*Sources the AI used:* "
            + clip(", ".join(escape(str(s)) for s in review.kb_sources[:50]), 1000)[0]
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
    who = mention(actor_id)
    return f"{DECISION_ICON[kind]} Already {DECISION_DONE[kind]} by {who}{when}. Nothing changed."


def not_allowed_text(why: str) -> str:
    """The ephemeral for a click by someone the policy does not let decide."""
    return limits.fit(f"🚫 {why} Nothing changed, and the attempt is in the audit log.", limits.FALLBACK_TEXT)


# ---------------------------------------------------------------- claims (bot.review.claims)


def _ticket(review: Review) -> str:
    return f"ticket #{escape(review.ticket_id)}"


def claim_held_text(*, holder: str, since: datetime | None, owner: bool = False) -> str:
    """The ephemeral for a claim refused because someone else holds the review (or owns the ticket)."""
    when = f" since {slack_date(since, '{time}')}" if since else ""
    if owner:
        return f"🙋 {mention(holder)} already owns this ticket{when}. Nothing changed."
    return (
        f"🙋 {mention(holder)} has claimed this review{when} and is working on it. Ask them, or a "
        "supervisor (Unclaim / Reassign), before you take it. Nothing changed."
    )


def not_claimed_text() -> str:
    """The ephemeral for Unclaim on a review nobody holds."""
    return "Nobody has claimed this review, so there is nothing to unclaim. Nothing changed."


_CLAIMED = {
    ("claim", True): "🙋 You claimed {ticket}: the card says so, so nobody else works it.",
    ("claim", False): "🙋 You already hold {ticket}. Nothing changed.",
    ("reassign", True): "📌 {holder} holds {ticket} now; they were told by DM.",
    ("reassign", False): "📌 {holder} already holds {ticket}. Nothing changed.",
    ("take_ownership", True): "🙋 You own {ticket} now; the card's thread says so.",
    ("take_ownership", False): "🙋 You already own {ticket}. Nothing changed.",
}


def claimed_text(review: Review, action: str, *, holder: str | None, changed: bool) -> str:
    """What the clicker is told after Claim, Reassign or Take over (after a Reject) from a ping, DM or thread."""
    template = _CLAIMED.get((action, changed), "{ticket}: done.")
    return template.format(ticket=_ticket(review), holder=mention(holder))


def unclaimed_text(review: Review, *, previous: str | None) -> str:
    """What the clicker is told after Unclaim from a ping, DM or thread."""
    return f"↩️ {_ticket(review).capitalize()} is unclaimed now (it was {mention(previous)}'s)."


def reassigned_dm_text(review: Review, *, by: str) -> str:
    """The DM to the person a supervisor reassigned a review to."""
    where = f" in {channel_ref(review.slack_channel)}" if review.slack_channel else ""
    kind = escape(review.interaction_type.replace("_", " "))
    link_text = f" ({link(review.ticket_url, 'open ticket')})" if review.ticket_url else ""
    return limits.fit(
        f"📌 {mention(by)} assigned you {_ticket(review)} ({kind}, tier {escape(review.tier)}){link_text}: "
        f"it waits for your decision{where}.",
        limits.FALLBACK_TEXT,
    )


def ownership_thread_text(review: Review, *, user_id: str) -> str:
    """The thread note when someone takes a rejected review's ticket over (not a second decision)."""
    return (
        f"🙋 {mention(user_id)} took {_ticket(review)} over after the rejection and owns it now. "
        "The review stays rejected; nothing was sent to the customer."
    )
