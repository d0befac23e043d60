"""The demo's Slack act: review cards reach their tier channels, and reviewers click through signed requests."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bot.slack.ids import ActionId, BlockId
from sandbox.demo.context import SIGNING_SECRET, DemoContext
from sandbox.slack_sim import SlackSim, block_action_payload, view_submission_payload
from storage.db import session_scope
from storage.models import AuditEvent, Decision, OutboxItem, OutboxStatus, Review

AGENTS = {"U0ALEX": "Alex", "U0PRIYA": "Priya", "U0JORDAN": "Jordan"}
SUPERVISOR, OUTSIDER = "U0SUPERVISOR", "U0RILEY"
NAMES = {
    **AGENTS,
    SUPERVISOR: "Sam",
    OUTSIDER: "Riley",
    "S0AGENTS": "support-agents",
    "S0SUPERVISORS": "support-supervisors",
}


def act_slack(ctx: DemoContext) -> None:
    """Show the posted cards, then approve, edit, take over, reject, click late, and be refused."""
    ctx.act_heading("Slack: cards in the tier channels, and reviewers deciding")
    slack = ctx.standins["slack"]
    _register_people(slack)
    _show_posting(ctx, slack)
    ctx.say(
        ctx.style.dim("\n  Reviewers click (signed requests to POST /slack/events, as Slack sends them):")
    )
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        _clicks(ctx, slack, sim)


def _register_people(slack: Any) -> None:
    for user, name in NAMES.items():
        if user.startswith("U"):
            slack.add_user(user, name, f"{name.lower()}@northwind.example")
    slack.add_usergroup("S0AGENTS", list(AGENTS))
    slack.add_usergroup("S0SUPERVISORS", [SUPERVISOR])


def _show_posting(ctx: DemoContext, slack: Any) -> None:
    started = time.monotonic()
    ctx.say(
        ctx.style.dim(
            "  Every review and take over is queued in the outbox with its draft; delivering them at "
            "Slack's pace (about 1 message/s per channel)…"
        )
    )
    _wait(lambda: _pending_posts(ctx) == 0, 120)
    cards = _posted_cards(ctx)
    limited = [c for c in slack.calls("chat.postMessage") if c["status"] == 429]
    ctx.say(
        f"  {len(cards)} cards posted, the last after {time.monotonic() - started:.1f}s more; {len(limited)} "
        f"HTTP 429s were waited out as Retry-After said, and none was lost or posted twice."
    )
    per_channel = Counter(channel for channel, _ in cards)
    ctx.say("  " + "   ".join(f"{ch} {n}" for ch, n in per_channel.most_common()))
    channel, ts = next(card for card in cards if card[0] == "#support-review")
    sample = slack.message(channel, ts)
    ctx.say(ctx.style.dim("\n  One card, as a reviewer sees it:"))
    for line in card_as_text(sample["blocks"]):
        ctx.say("  │ " + line)


def _clicks(ctx: DemoContext, slack: Any, sim: SlackSim) -> None:
    standard, handoff, refund = _picked_reviews(ctx)
    approved = _approve(ctx, slack, sim, standard[0]["id"])
    if len(standard) > 3:
        _claim(ctx, slack, sim, standard[3]["id"])
    _edit(ctx, slack, sim, standard[1])
    _take_over(ctx, slack, sim, handoff["id"])
    _reject(ctx, slack, sim, standard[2]["id"])
    ms, note = _click_and_hear(sim, slack, approved, ActionId.APPROVE, "U0PRIYA")
    ctx.say(
        f"  🔁 Priya clicks Approve on #{_review(ctx, standard[0]['id']).ticket_id} a moment too late "
        f"(HTTP 200 in {ms:.0f} ms). Only she sees: “{plain_text(note)}”"
    )
    _refund_over_limit(ctx, slack, sim, refund["id"])
    ctx.say(
        ctx.style.dim(
            f"\n  {_decisions(ctx)} decisions: each one conditional UPDATE (first click wins) with, in "
            "the same transaction, a feedback row, the card refresh, the thread reply and the "
            "helpdesk write."
        )
    )


def _picked_reviews(ctx: DemoContext) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The drafts the reviewers act on: standard-tier reviews, a take over, and a refund over the limit."""
    standard = [r for r in ctx.results if r["tier"] == "standard" and r["route"] == "review"]
    handoff = next(r for r in ctx.results if r["route"] == "take_over")
    refund = next(r for r in ctx.results if _is_refund_over_limit(r))
    return standard, handoff, refund


def _is_refund_over_limit(result: dict[str, Any]) -> bool:
    return (
        result["tier"] == "billing"
        and result["route"] == "review"
        and "refund_over_limit" in {x["code"] for x in result["reasons"]}
    )


def _approve(ctx: DemoContext, slack: Any, sim: SlackSim, review_id: str) -> dict[str, Any]:
    """Alex approves: the card loses its buttons. Returns the card as it was, for a late click on it."""
    approved = _card(ctx, slack, review_id)
    ms = _click(sim, approved, ActionId.APPROVE, "U0ALEX")
    review = _decided(ctx, slack, review_id)
    ctx.say(
        f"  ✅ Alex approves #{review.ticket_id}: HTTP 200 in {ms:.0f} ms; the card collapses in place to two "
        "lines and a Details button (the texts are one click away, in a modal):"
    )
    _wait(lambda: _delivery_known(slack, approved), 10)  # the helpdesk write refreshes the card once it lands
    for line in card_as_text(slack.message(approved["channel"], approved["ts"])["blocks"]):
        ctx.say("  │ " + line)
    return approved


def _delivery_known(slack: Any, card: dict[str, Any]) -> bool:
    """The collapsed card says what the helpdesk made of the decision (not "Writing to the helpdesk…")."""
    return "Writing to the helpdesk" not in _decision_line(slack, card)


def _claim(ctx: DemoContext, slack: Any, sim: SlackSim, review_id: str) -> None:
    """Priya claims a card, so nobody else works it; Jordan, a moment later, is told she has it."""
    card = _card(ctx, slack, review_id)
    _click(sim, card, ActionId.CLAIM, "U0PRIYA")
    _wait(lambda: _review(ctx, review_id).claimed_by == "U0PRIYA")
    claimed = _wait(lambda: _claim_line(slack, card))
    ticket = _review(ctx, review_id).ticket_id
    ctx.say(
        f"  🙋 Priya clicks Claim on #{ticket} (claiming decides nothing). The card now says: “{claimed}”"
    )
    _, note = _click_and_hear(sim, slack, card, ActionId.CLAIM, "U0JORDAN")
    ctx.say(f"     Jordan clicks Claim too, a moment later. Only he sees: “{plain_text(note)}”")


def _claim_line(slack: Any, card: dict[str, Any]) -> str | None:
    blocks = slack.message(card["channel"], card["ts"])["blocks"]
    line = next((b["text"]["text"] for b in blocks if b.get("block_id") == BlockId.REVIEW_CLAIM), None)
    return plain_text(line) if line else None


def _edit(ctx: DemoContext, slack: Any, sim: SlackSim, result: dict[str, Any]) -> None:
    """Priya edits the draft in the modal and sends her version."""
    review_id = result["id"]
    edited = _card(ctx, slack, review_id)
    trigger = slack.issue_trigger_id()
    _click(sim, edited, ActionId.EDIT, "U0PRIYA", trigger_id=trigger)
    view = _modal_for(slack, review_id)
    final = result["ticket"]["draft"].replace("Thanks", "Thank you").replace("Best,", "Kind regards,")
    field = f"{BlockId.EDIT_TEXT}:0"
    sim.post_view_submission(
        view_submission_payload(
            view=view,
            user_id="U0PRIYA",
            values={field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": final}}},
        )
    )
    review = _decided(ctx, slack, review_id)
    ctx.say(
        f"  ✏️  Priya clicks Edit on #{review.ticket_id}: a modal opens prefilled with the draft; she changes the "
        f"sign-off and sends ({review.extra['edit_distance']:.0%} of the text changed)"
    )


def _take_over(ctx: DemoContext, slack: Any, sim: SlackSim, review_id: str) -> None:
    handed = _card(ctx, slack, review_id)
    _click(sim, handed, ActionId.TAKE_OVER, "U0JORDAN")
    review = _decided(ctx, slack, review_id)
    ctx.say(
        f"  🙋 Jordan takes over #{review.ticket_id} ({review.tier}): the ticket is assigned to him, and the draft "
        f"and its context are posted in the thread as a starting point"
    )


def _reject(ctx: DemoContext, slack: Any, sim: SlackSim, review_id: str) -> None:
    """Alex rejects the draft as a hallucination, with a comment, in the reject modal."""
    rejected = _card(ctx, slack, review_id)
    _click(sim, rejected, ActionId.REJECT, "U0ALEX", trigger_id=slack.issue_trigger_id())
    view = _modal_for(slack, review_id)
    sim.post_view_submission(
        view_submission_payload(
            view=view,
            user_id="U0ALEX",
            values={
                BlockId.REJECT_CATEGORY: {
                    ActionId.REJECT_CATEGORY: {
                        "type": "static_select",
                        "selected_option": {"value": "hallucination"},
                    }
                },
                BlockId.REJECT_COMMENT: {
                    ActionId.REJECT_COMMENT: {
                        "type": "plain_text_input",
                        "value": "That order number does not exist.",
                    }
                },
            },
        )
    )
    review = _decided(ctx, slack, review_id)
    ctx.say(
        f"  ⛔ Alex rejects #{review.ticket_id} as a hallucination; nothing goes to the customer, the reason goes "
        f"to the feedback store"
    )


def _refund_over_limit(ctx: DemoContext, slack: Any, sim: SlackSim, review_id: str) -> None:
    """An outsider and an agent are refused on a refund over the limit; a supervisor approves it."""
    card = _card(ctx, slack, review_id)
    approve = next(
        e
        for b in card["blocks"]
        if b.get("block_id") == BlockId.REVIEW_ACTIONS
        for e in b["elements"]
        if e["action_id"] == ActionId.APPROVE
    )
    asks = f" and asks “{approve['confirm']['title']['text']}” first" if approve.get("confirm") else ""
    ctx.say(
        f"  🔒 On refund #{_review(ctx, review_id).ticket_id} the button says “{approve['text']['text']}”, is not "
        f"green{asks}; the supervisor group is not @-mentioned on the card."
    )
    _, note = _click_and_hear(sim, slack, card, ActionId.APPROVE, OUTSIDER)
    ticket = _review(ctx, review_id).ticket_id
    ctx.say(
        f"  🚫 Riley, not in @support-agents, clicks Approve on refund #{ticket}. Only he sees: “{plain_text(note)}”"
    )
    _, note = _click_and_hear(sim, slack, card, ActionId.APPROVE, "U0ALEX")
    ctx.say(f"     Alex is an agent, but this refund is over the limit: “{plain_text(note)}”")
    _click(sim, card, ActionId.APPROVE, SUPERVISOR)
    _decided(ctx, slack, review_id)
    ctx.say(
        f"     Sam (@support-supervisors) approves it. Refused attempts in the audit log: {_refusals(ctx)}"
    )


def _modal_for(slack: Any, review_id: str) -> dict[str, Any]:
    """The modal the stand-in opened for this review's click."""
    view: dict[str, Any] = _wait(
        lambda: next((v for v in slack.views() if v["private_metadata"].find(review_id) >= 0), None)
    )
    return view


def _header_as_text(block: dict[str, Any]) -> list[str]:
    return [block["text"]["text"]]


def _section_as_text(block: dict[str, Any]) -> list[str]:
    if block.get("fields"):
        return [" · ".join(plain_text(f["text"]).replace("\n", " ") for f in block["fields"])]
    text = plain_text(block["text"]["text"])
    head, _, body = text.partition("\n")
    return [head, *(f"  {line}" for line in _shorten(body, 4))]


def _context_as_text(block: dict[str, Any]) -> list[str]:
    return [plain_text(e.get("text", "")) for e in block["elements"]]


def _actions_as_text(block: dict[str, Any]) -> list[str]:
    return [
        "  ".join(
            f"[{(e.get('text') or e.get('placeholder') or {}).get('text', '')}]" for e in block["elements"]
        )
    ]


# How each block type reads in the terminal; other types are left out.
_BLOCK_AS_TEXT: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "header": _header_as_text,
    "section": _section_as_text,
    "context": _context_as_text,
    "actions": _actions_as_text,
}


def card_as_text(blocks: list[dict[str, Any]]) -> list[str]:
    """A card's blocks as terminal lines (what Slack would render, roughly)."""
    lines: list[str] = []
    for block in blocks:
        render = _BLOCK_AS_TEXT.get(block["type"])
        if render is not None:
            lines += render(block)
    return lines


def _shorten(text: str, max_lines: int) -> list[str]:
    wrapped: list[str] = []
    for paragraph in text.splitlines() or [""]:
        while len(paragraph) > 96:
            cut = paragraph.rfind(" ", 0, 96)
            cut = cut if cut > 0 else 96
            wrapped.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        wrapped.append(paragraph)
    wrapped = [w for w in wrapped if w.strip()]
    return wrapped[:max_lines] + (["…"] if len(wrapped) > max_lines else [])


def plain_text(text: str) -> str:
    """Slack mrkdwn as a person reads it: names for mentions, local times for dates, link labels."""
    text = re.sub(r"<[@!](?:subteam\^)?(\w+)>", lambda m: "@" + NAMES.get(m.group(1), m.group(1)), text)
    text = re.sub(
        r"<!date\^(\d+)\^[^|>]*\|[^>]*>",
        lambda m: datetime.fromtimestamp(int(m.group(1)), UTC).astimezone().strftime("%H:%M"),
        text,
    )
    text = re.sub(r"<(?:https?://[^|>]+)\|([^>]+)>", r"\1", text)
    text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", text)
    return text.replace("*", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError("the demo timed out waiting for Slack")
        time.sleep(0.05)
    return value


def _posted_cards(ctx: DemoContext) -> list[tuple[str, str]]:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        rows = s.execute(
            select(col(Review.slack_channel), col(Review.slack_ts))
            .where(col(Review.slack_ts).is_not(None))
            .order_by(col(Review.created_at))
        ).all()
    return [(str(c), str(t)) for c, t in rows]


def _pending_posts(ctx: DemoContext) -> int:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        q = (
            select(func.count())
            .select_from(OutboxItem)
            .where(
                col(OutboxItem.kind) == "slack_post_review", col(OutboxItem.status) == OutboxStatus.PENDING
            )
        )
        return int(s.execute(q).scalar_one())


def _review(ctx: DemoContext, review_id: str) -> Review:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        review = s.get(Review, review_id)
    assert review is not None
    return review


def _card(ctx: DemoContext, slack: Any, review_id: str) -> dict[str, Any]:
    review = _wait(lambda: (r := _review(ctx, review_id)).slack_ts and r)
    return dict(slack.message(review.slack_channel, review.slack_ts))


def _click(
    sim: SlackSim, card: dict[str, Any], action: str, user: str, *, trigger_id: str | None = None
) -> float:
    payload = block_action_payload(
        message=card,
        channel=card["channel"],
        action_id=action,
        user_id=user,
        user_name=NAMES[user].lower(),
        trigger_id=trigger_id,
    )
    started = time.perf_counter()
    resp = sim.post_action(payload)
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _decided(ctx: DemoContext, slack: Any, review_id: str) -> Review:
    """Wait until the click is recorded, the card updated and the thread reply posted."""
    review: Review = _wait(lambda: (r := _review(ctx, review_id)).status != "pending" and r)
    channel, ts = review.slack_channel, review.slack_ts
    _wait(lambda: slack.message(channel, ts).get("edited") and slack.thread(channel, ts))
    return review


def _click_and_hear(
    sim: SlackSim, slack: Any, card: dict[str, Any], action: str, user: str
) -> tuple[float, str]:
    """Click, and return the ack time and the ephemeral message the click got."""
    seen = len(slack.ephemerals(user))
    ms = _click(sim, card, action, user)
    return ms, str(_wait(lambda: slack.ephemerals(user)[seen:])[0]["text"])


def _decision_line(slack: Any, card: dict[str, Any]) -> str:
    blocks = slack.message(card["channel"], card["ts"])["blocks"]
    return str(next(b["text"]["text"] for b in blocks if b.get("block_id") == BlockId.REVIEW_DECISION))


def _refusals(ctx: DemoContext) -> int:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        q = select(func.count()).select_from(AuditEvent).where(col(AuditEvent.action) == "click_refused")
        return int(s.execute(q).scalar_one())


def _decisions(ctx: DemoContext) -> int:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        q = select(func.count()).select_from(Decision).where(col(Decision.actor_id).in_(list(NAMES)))
        return int(s.execute(q).scalar_one())
