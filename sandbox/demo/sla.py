"""The demo's SLA act: a draft nobody touches is warned about, then pinged up the escalation chain."""

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
from sandbox.demo.context import DemoContext
from storage.db import session_scope
from storage.models import OutboxItem, Review, SlaPing

if TYPE_CHECKING:
    from bot.review.policy import Tier

TIER = "demo_fast"
NAMES = {"S0SUPERVISORS": "@support-supervisors", "U0MANAGER": "@Morgan (manager)", "U0SUPERVISOR": "@Sam"}
EMOJI = {
    ":hourglass_flowing_sand:": "⏳",
    ":rotating_light:": "🚨",
    ":sos:": "🆘",
    ":arrow_right:": "➡️",
    ":bust_in_silhouette:": "👤",
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
            col(OutboxItem.kind).in_(["slack_post", "slack_dm"]),
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
        if item.kind == "slack_dm":
            where = f"DM to {NAMES.get(p['user'], p['user'])}"
        elif p.get("in_review_thread"):
            where = f"{p['channel']} › thread"
        else:
            where = p["channel"]
        state = {"done": "", "dead": s.dim("  (not delivered)")}.get(item.status, s.dim("  (queued)"))
        ctx.say(f"        {where:<26} {as_in_slack(p['text'])}{state}")


def act_sla(ctx: DemoContext) -> None:
    """A draft in a 6-second-SLA tier: the warning at 3 s, the breach ping at 6 s, then a late approval."""
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
    time.sleep(1.5)  # an agent finally opens it
    _show_late_approval(ctx, rid, created)
    _show_chain_stopped(ctx, rid, created)


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
