"""The demo's SLA act: a draft nobody touches is warned about, pinged up the chain, and acted on from the ping."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from bot.common.durations import format_duration
from bot.review.decisions import record_decision
from bot.sla.engine import SlaEngine
from bot.sla.plan import sla_state
from bot.slack.ids import ActionId
from sandbox.demo.context import SIGNING_SECRET, DemoContext
from sandbox.slack_sim import SlackSim, block_action_payload
from storage.db import session_scope
from storage.models import OutboxItem, Review, SlaPing

if TYPE_CHECKING:
    from bot.review.policy import Tier

TIER = "demo_fast"
NAMES = {
    "S0SUPERVISORS": "@support-supervisors",
    "U0MANAGER": "@Morgan (manager)",
    "U0SUPERVISOR": "@Sam",
    "U0AGENT": "@Dana (agent)",
}
EMOJI = {
    ":hourglass_flowing_sand:": "⏳",
    ":rotating_light:": "🚨",
    ":sos:": "🆘",
    ":arrow_right:": "➡️",
    ":bust_in_silhouette:": "👤",
    ":zzz:": "💤",
    ":white_check_mark:": "✅",
}
DRAFT: dict[str, Any] = {
    "ticket_id": "48999",
    "interaction_type": "demo_sla",
    "confidence": 0.82,
    "subject": "Wrong size delivered",
    "customer_message": "You sent me a medium instead of the large I ordered (NW-318777). Can you swap it before Friday?",
    "draft": "Hi Lena,\n\nSorry about the mix-up! I've started a free exchange for the large: a prepaid return label is "
    "on its way by email, and the large ships as soon as the carrier scans the medium.\n\nBest,\nNorthwind",
    "customer": {"id": "cus_1077", "name": "Lena Fischer", "tier": "standard", "account_value": 310.0},
    "ticket_url": "https://northwind.zendesk.com/agent/tickets/48999",
    "idempotency_key": "demo-sla-48999",
}


def as_in_slack(text: str) -> str:
    """Slack mrkdwn as a person sees it: mentions by name, dates in local time, emoji."""
    text = re.sub(r"<!subteam\^(\w+)>", lambda m: NAMES.get(m.group(1), "@" + m.group(1)), text)
    text = re.sub(r"<@(\w+)>", lambda m: NAMES.get(m.group(1), "@" + m.group(1)), text)
    text = re.sub(
        r"<!date\^(\d+)\^[^|>]*\|[^>]*>",
        lambda m: datetime.fromtimestamp(int(m.group(1)), UTC).astimezone().strftime("%H:%M:%S"),
        text,
    )
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2", text)
    for code, char in EMOJI.items():
        text = text.replace(code, char)
    return text.replace("*", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _steps(ctx: DemoContext, rid: str) -> list[SlaPing]:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        return list(
            s.execute(
                select(SlaPing)
                .where(SlaPing.review_id == rid, SlaPing.status == "fired")
                .order_by(col(SlaPing.due_at))
            ).scalars()
        )


def _messages(ctx: DemoContext, rid: str, kind: str) -> list[OutboxItem]:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        q = select(OutboxItem).where(
            col(OutboxItem.dedupe_key).startswith(f"sla:{rid}:{kind}:"),
            col(OutboxItem.kind).in_(["slack_post", "slack_dm", "slack_sla_ping"]),
        )
        return list(s.execute(q.order_by(col(OutboxItem.id))).scalars())


def _review(ctx: DemoContext, rid: str) -> Review:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        review = s.get(Review, rid)
        assert review is not None
        return review


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _card_sla_line(ctx: DemoContext, review: Review) -> str | None:
    """The SLA line of the card as the Slack stand-in holds it now, if the card is there."""
    slack = ctx.standins.get("slack")
    if slack is None or not review.slack_ts or not review.slack_channel:
        return None
    try:
        card = slack.message(review.slack_channel, review.slack_ts)
    except KeyError:
        return None
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and "SLA" in node and not found:
            found.append(node)

    walk(card.get("blocks") or [])
    return as_in_slack(found[0]) if found else None


def _show_step(ctx: DemoContext, rid: str, step: SlaPing, created: datetime) -> None:
    s = ctx.style
    late = (step.fired_at or step.due_at) - step.due_at
    ctx.say(
        f"  {s.bold(f'+{(step.due_at - created).total_seconds():4.1f}s')} {step.kind:<12} "
        + s.dim(
            f"(due +{(step.due_at - created).total_seconds():.1f}s, claimed {late.total_seconds() * 1000:.0f} ms "
            f"after, by {step.claimed_by})"
        )
    )
    for item in _messages(ctx, rid, step.kind):
        p = item.payload
        where = _where(p)
        state = {"done": "", "dead": s.dim("  (not delivered)")}.get(item.status, s.dim("  (queued)"))
        ctx.say(f"        {where:<26} {as_in_slack(_text_of(ctx, item))}{state}")


def _where(p: dict[str, Any]) -> str:
    if p.get("place") == "dm" or ("user" in p and "place" not in p):
        return f"DM to {NAMES.get(p['user'], p['user'])}"
    if p.get("place") == "thread" or p.get("in_review_thread"):
        return "card › thread"
    return str(p.get("channel"))


def _posted(ctx: DemoContext, item: OutboxItem) -> dict[str, Any] | None:
    """The message an outbox row posted, as the Slack stand-in holds it now."""
    slack, result = ctx.standins.get("slack"), item.result or {}
    if slack is None or not result.get("channel") or not result.get("ts"):
        return None
    try:
        return dict(slack.message(result["channel"], result["ts"]))
    except KeyError:
        return None


def _text_of(ctx: DemoContext, item: OutboxItem) -> str:
    if "text" in item.payload:
        return str(item.payload["text"])
    message = _posted(ctx, item)
    return str(message["text"]) if message else "(not posted yet)"


def _section_lines(block: dict[str, Any]) -> list[str]:
    lines = as_in_slack((block.get("text") or {}).get("text", "")).splitlines()
    fields = [as_in_slack(f["text"]).replace("\n", ": ", 1) for f in block.get("fields") or []]
    return lines + (["   ".join(fields)] if fields else [])


def _button_label(element: dict[str, Any]) -> str:
    return f"[{element['text']['text']}]" if element.get("text") else "[Reassign to… ▾]"


def _block_lines(ctx: DemoContext, block: dict[str, Any]) -> list[str]:
    """One block as the lines a reader sees."""
    if block["type"] == "section":
        return _section_lines(block)
    if block["type"] == "context":
        return [ctx.style.dim(" ".join(as_in_slack(e.get("text", "")) for e in block["elements"]))]
    if block["type"] == "actions":
        return [" ".join(_button_label(e) for e in block["elements"])]
    return []


def _show_message(ctx: DemoContext, message: dict[str, Any], indent: str = "        │ ") -> None:
    """A Slack message as its reader sees it: sections, fields, notes, then its buttons."""
    for block in message.get("blocks") or []:
        for line in _block_lines(ctx, block):
            ctx.say(indent + line)


def act_sla(ctx: DemoContext) -> None:
    """A draft in a 6-second-SLA tier: the warning at 3 s, the breach ping at 6 s (acted on: Snooze), then a late approval."""
    ctx.act_heading("SLA timers: a draft nobody touches is warned about, then escalated")
    tier = ctx.runtime.policy.tiers.get(TIER)
    if tier is None:
        ctx.say(f"  (the demo policy has no {TIER} tier; skipped)")
        return
    _prepare_standins(ctx)
    _show_tier(ctx, tier)
    resp = ctx.api.post("/v1/drafts", json=DRAFT)
    if resp.status_code not in (200, 201):
        ctx.say(f"  ticket {DRAFT['ticket_id']}: HTTP {resp.status_code} {resp.text[:200]}")
        return
    rid = resp.json()["id"]
    created = _review(ctx, rid).created_at
    ctx.say(
        f"  #{DRAFT['ticket_id']} arrives ({DRAFT['subject']}) and goes to {tier.channel}. Nobody looks at it…"
    )
    if not _show_escalation(ctx, tier, rid, created):
        ctx.say("  (no SLA step fired: is the scheduler enabled?)")
        return
    ping = _show_breach_ping(ctx, rid, tier)
    if ping is not None:
        _snooze_from(ctx, rid, ping)
    time.sleep(1.5)  # an agent finally opens it
    _show_late_approval(ctx, rid, created)
    if ping is not None:
        _show_handled_ping(ctx, ping)
    _show_chain_stopped(ctx, rid, created)


def _breach_item(ctx: DemoContext, rid: str, tier: Tier) -> OutboxItem | None:
    """The first breach ping posted in the escalation channel (else in the card's thread)."""
    breach = f"breach:L{tier.escalation.levels[0].level if tier.escalation.levels else 1}:0"
    items = [i for i in _messages(ctx, rid, breach) if i.kind == "slack_sla_ping" and i.status == "done"]
    return next((i for i in items if i.payload.get("place") == "channel"), items[0] if items else None)


def _show_breach_ping(ctx: DemoContext, rid: str, tier: Tier) -> dict[str, Any] | None:
    item = _breach_item(ctx, rid, tier)
    message = _posted(ctx, item) if item is not None else None
    if item is None or message is None:
        return None
    ctx.say(f"  The breach ping in {_where(item.payload)}, as the supervisors see it (they act from it):")
    _show_message(ctx, message)
    return message


def _snooze_from(ctx: DemoContext, rid: str, ping: dict[str, Any]) -> None:
    """Sam snoozes the ping (a signed click, as Slack sends it); it says so in place."""
    slack = ctx.standins.get("slack")
    if slack is None:
        return
    payload = block_action_payload(
        message=ping,
        channel=ping["channel"],
        action_id=ActionId.SNOOZE,
        user_id="U0SUPERVISOR",
        user_name="sam",
    )
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        sim.post_action(payload).raise_for_status()
    ctx.runtime.services.wake_outbox()
    _wait(lambda: bool(slack.message(ping["channel"], ping["ts"]).get("history")), 5)
    edited = slack.message(ping["channel"], ping["ts"])
    note = next((b for b in edited.get("blocks") or [] if b.get("block_id") == "sla_ping_note"), None)
    said = as_in_slack(note["elements"][0]["text"]) if note else "(not edited)"
    ctx.say(f"  Sam presses Snooze: {ctx.style.bold(said)}")


def _show_handled_ping(ctx: DemoContext, ping: dict[str, Any]) -> None:
    """Once decided, the ping says who handled it, and its buttons are gone."""
    slack = ctx.standins.get("slack")
    if slack is None:
        return
    _wait(
        lambda: (
            "by" in str(slack.message(ping["channel"], ping["ts"]).get("text", "")).lower()
            and "approved" in str(slack.message(ping["channel"], ping["ts"]).get("text", "")).lower()
        ),
        5,
    )
    ctx.say(f"  The ping in {ping['channel']} now reads:")
    _show_message(ctx, slack.message(ping["channel"], ping["ts"]))


def _prepare_standins(ctx: DemoContext) -> None:
    """The supervisor the escalation pings, and the ticket the approved reply is written back to."""
    slack = ctx.standins.get("slack")
    if slack is not None:
        slack.add_user("U0SUPERVISOR", "Sam", "sam@northwind.example")
        slack.add_usergroup("S0SUPERVISORS", ["U0SUPERVISOR"])
    zendesk = ctx.standins.get("zendesk")
    if zendesk is not None:
        with contextlib.suppress(ValueError):  # already there
            zendesk.add_ticket(
                int(DRAFT["ticket_id"]), subject=DRAFT["subject"], description=DRAFT["customer_message"]
            )


def _show_tier(ctx: DemoContext, tier: Tier) -> None:
    levels = ", ".join(
        f"level {lv.level} after +{format_duration(lv.after)} in {lv.channel}"
        + (f" every {format_duration(lv.repeat_every)}" if lv.repeat_every else "")
        for lv in tier.escalation.levels
    )
    ctx.say(
        f"  Tier {TIER}: {tier.channel}, SLA {format_duration(tier.sla)}, warning at {tier.warn_at:.0%}; "
        f"escalation: {levels}."
    )


def _show_escalation(ctx: DemoContext, tier: Tier, rid: str, created: datetime) -> bool:
    """Wait for the warning and the first breach ping, and show each step; False when none fired."""
    breach = f"breach:L{tier.escalation.levels[0].level if tier.escalation.levels else 1}:0"
    _wait(lambda: breach in [p.kind for p in _steps(ctx, rid)], tier.sla.total_seconds() + 6)
    _wait(lambda: all(m.status != "pending" for k in ("warn", breach) for m in _messages(ctx, rid, k)), 5)
    steps = _steps(ctx, rid)
    for step in steps:
        _show_step(ctx, rid, step, created)
    if not steps:
        return False
    review = _review(ctx, rid)
    line = _card_sla_line(ctx, review) or sla_state(review, ctx.runtime.clock.now()).text
    ctx.say(f"  The card in {tier.channel} now reads: {ctx.style.bold(line)}")
    return True


def _show_late_approval(ctx: DemoContext, rid: str, created: datetime) -> None:
    s = ctx.style
    _approve(ctx, rid)
    decided = _review(ctx, rid)
    ctx.say(
        f"  Dana approves it at +{((decided.decided_at or created) - created).total_seconds():.1f}s: "
        f"{s.bold(sla_state(decided, ctx.runtime.clock.now()).text)}."
    )
    _wait(lambda: (_card_sla_line(ctx, _review(ctx, rid)) or "").find("breached by") >= 0, 5)
    card_line = _card_sla_line(ctx, _review(ctx, rid))
    if card_line:
        ctx.say(f"  The card now reads: {s.bold(card_line)}")


def _show_chain_stopped(ctx: DemoContext, rid: str, created: datetime) -> None:
    """What the review's next timer does when it comes up: it finds the review decided."""
    engine: SlaEngine | None = ctx.runtime.services.sla
    if engine is None:
        return
    upcoming = engine.next_due(rid)
    nexts = engine.settle([rid])
    when = f" due at +{(upcoming - created).total_seconds():.0f}s" if upcoming else ""
    ctx.say(
        ctx.style.dim(
            f"  The decision stops the chain: the next step{when} finds the review decided and does nothing "
            f"(steps left: {'none' if nexts.get(rid) is None else 'some'}; SLA steps sent: "
            f"{len(_steps(ctx, rid))}, each claimed once in the database)."
        )
    )


def _approve(ctx: DemoContext, rid: str) -> None:
    runtime = ctx.runtime
    with session_scope(runtime.engine) as session:
        record_decision(
            session=session,
            review_id=rid,
            decision="approve",
            actor_id="U0AGENT",
            actor_name="Dana (agent)",
            now=runtime.clock.now(),
            policy=runtime.policy,
        )
    runtime.services.wake_outbox()
