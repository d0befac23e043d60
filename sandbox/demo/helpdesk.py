"""The demo's helpdesk act: what Zendesk received for each decision, a 409 told in Slack, QA, and the export."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlmodel import col, select

from sandbox.demo.context import SIGNING_SECRET, DemoContext, load_sample_tickets
from sandbox.demo.slack import NAMES, plain_text
from sandbox.slack_sim import SlackSim, block_action_payload
from storage.db import session_scope
from storage.models import Decision, Review

FIRST_AGENT_ID = 910_000_001
FIRST_CUSTOMER_ID = 920_000_001
CONFLICT_TICKET = 48_198
CONFLICT_DRAFT: dict[str, Any] = {
    "ticket_id": str(CONFLICT_TICKET),
    "interaction_type": "shipping",
    "confidence": 0.78,
    "subject": "Can I change my delivery address?",
    "customer_message": "Hi, I'm moving on Friday. Can you send order NW-318877 to my new address instead?",
    "draft": "Hi Tom,\n\nYes — I've noted the new address on order NW-318877; it ships tomorrow.\n\nBest,\nNorthwind",
    "customer": {
        "id": "cus_1090",
        "name": "Tom Becker",
        "email": "tom.becker@example.com",
        "tier": "standard",
    },
    "ticket_url": f"https://northwind.zendesk.com/agent/tickets/{CONFLICT_TICKET}",
    "idempotency_key": "demo-48198",
}


def seed_zendesk(zendesk: Any) -> None:
    """Before any draft arrives: the sample tickets with their requesters, and an agent per Slack demo user."""
    for n, (_uid, name) in enumerate(
        _agents()
    ):  # the Slack demo users' emails, as the Slack act registers them
        zendesk.add_user(FIRST_AGENT_ID + n, f"{name.lower()}@northwind.example", name)
    requesters: dict[str, int] = {}
    for t in [*load_sample_tickets(), CONFLICT_DRAFT]:
        customer = t.get("customer") or {}
        email = str(customer.get("email") or f"customer-{t['ticket_id']}@example.com").lower()
        if email not in requesters:
            requesters[email] = FIRST_CUSTOMER_ID + len(requesters)
            zendesk.add_user(requesters[email], email, customer.get("name") or email, role="end-user")
        zendesk.add_ticket(
            int(t["ticket_id"]),
            subject=t.get("subject") or "",
            requester_id=requesters[email],
            description=t["customer_message"],
        )


def act_helpdesk(ctx: DemoContext) -> None:
    """Drain the outbox, then show per ticket what Zendesk received, a 409, QA cards, and the DPO export."""
    ctx.act_heading("Zendesk write-back: every decision reaches the ticket exactly once")
    zendesk = ctx.standins["zendesk"]
    _drain(ctx, 60, kinds={"helpdesk_write"})
    names = _names(zendesk)
    _show_writes(ctx, zendesk, names)
    _show_conflict(ctx, zendesk)
    _show_qa(ctx)
    _show_export(ctx)


def _drain(ctx: DemoContext, timeout: float, *, kinds: set[str] | None = None) -> None:
    outbox = ctx.runtime.services.outbox
    assert outbox is not None, "the demo runs the outbox worker"
    outbox.drain(timeout, kinds=kinds)


def _names(zendesk: Any) -> dict[int, str]:
    return {
        zendesk.api_user_id: "the API user",
        **{FIRST_AGENT_ID + n: name for n, (_, name) in enumerate(_agents())},
    }


def _agents() -> list[tuple[str, str]]:
    """The Slack demo users (id, name), in a stable order: each is a Zendesk agent too."""
    return sorted((uid, name) for uid, name in NAMES.items() if uid.startswith("U"))


def _decided_reviews(ctx: DemoContext) -> list[Review]:
    """Every review with a decision, auto-sends included, in the order they were decided."""
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        return list(
            s.execute(
                select(Review).where(col(Review.decision).is_not(None)).order_by(col(Review.decided_at))
            ).scalars()
        )


def _show_writes(ctx: DemoContext, zendesk: Any, names: dict[int, str]) -> None:
    reviews = _decided_reviews(ctx)
    _show_auto_sent(ctx, zendesk, [r for r in reviews if r.decision == "auto_send"])
    decided = [r for r in reviews if r.decision != "auto_send"]
    ctx.say(ctx.style.dim("  Decided in Slack, as each ticket shows it now:"))
    for r in decided:
        ctx.say(f"  #{r.ticket_id} {r.decision:<9} → {_what_zendesk_has(zendesk, r, names)}")
    states = Counter(r.helpdesk_state or "waiting" for r in reviews)
    ctx.say(
        ctx.style.dim("  Review helpdesk states: " + ", ".join(f"{k} {v}" for k, v in states.most_common()))
    )


def _show_auto_sent(ctx: DemoContext, zendesk: Any, auto: list[Review]) -> None:
    sent_auto = sum(1 for r in auto if _public(zendesk, r.ticket_id))
    ctx.say(
        f"  {len(auto)} auto-sent drafts: {sent_auto} public replies in Zendesk, written by the API user the "
        f"moment each draft arrived (status → {ctx.runtime.policy.helpdesk.status_after_reply})."
    )


def _public(zendesk: Any, ticket_id: str) -> list[dict[str, Any]]:
    return list(zendesk.public_replies(int(ticket_id)))


def _what_zendesk_has(zendesk: Any, review: Review, names: dict[int, str]) -> str:
    ticket = zendesk.ticket(int(review.ticket_id))
    ours = [c for c in zendesk.comments(int(review.ticket_id))[1:]]  # after the customer's message
    parts: list[str] = []
    for c in ours:
        who = names.get(c["author_id"], f"user {c['author_id']}")
        first = c["body"].strip().splitlines()[0][:60]
        parts.append(f"{'public reply' if c['public'] else 'internal note'} by {who} (“{first}…”)")
    if ticket.get("assignee_id"):
        parts.append(f"assigned to {names.get(ticket['assignee_id'], ticket['assignee_id'])}")
    parts.append(f"status {ticket['status']}")
    return "; ".join(parts) if ours else f"nothing yet ({review.helpdesk_state or 'queued'})"


def _show_conflict(ctx: DemoContext, zendesk: Any) -> None:
    ctx.say(
        ctx.style.dim(
            "\n  A conflict: the pipeline drafts a reply to #48198, sending the ticket's updated_at; "
            "before anyone approves, an agent answers in Zendesk itself."
        )
    )
    draft = {**CONFLICT_DRAFT, "ticket_updated_at": zendesk.ticket(CONFLICT_TICKET)["updated_at"]}
    review_id = ctx.api.post("/v1/drafts", json=draft).json()["id"]
    review = _wait(lambda: (r := _review(ctx, review_id)).slack_ts and r)
    zendesk.human_update(
        CONFLICT_TICKET, "Hi Tom, I've changed the address on NW-318877 for you. — Dana (in Zendesk)"
    )
    slack = ctx.standins["slack"]
    card = slack.message(review.slack_channel, review.slack_ts)
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        sim.post_action(
            block_action_payload(
                message=card,
                channel=card["channel"],
                action_id="review_approve",
                user_id="U0ALEX",
                user_name="alex",
            )
        ).raise_for_status()
    note = _wait(
        lambda: next(
            (
                m
                for m in slack.thread(review.slack_channel, review.slack_ts)
                if "changed in Zendesk" in m["text"]
            ),
            None,
        ),
        timeout=30,
    )
    replies = _public(zendesk, str(CONFLICT_TICKET))
    ctx.say(
        f"  Alex approves the draft in Slack → Zendesk answers 409 (safe_update), nothing is overwritten. "
        f"Zendesk keeps {len(replies)} public reply, Dana's."
    )
    ctx.say(f"  In the card's thread: “{plain_text(note['text'])}”")


def _show_qa(ctx: DemoContext) -> None:
    channel = ctx.runtime.policy.qa.channel
    slack = ctx.standins["slack"]
    _drain(ctx, 20)
    cards = [m for m in slack.messages(channel)] if channel else []
    rate = ctx.runtime.policy.qa.sample_rate
    ctx.say(
        f"\n  QA: {len(cards)} auto-sent repl{'y' if len(cards) == 1 else 'ies'} sampled into {channel} "
        f"(policy: {rate:.0%}, a stable draw per review), each with [Good] [Defect]."
    )
    if cards:
        with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
            sim.post_action(
                block_action_payload(
                    message=cards[0],
                    channel=cards[0]["channel"],
                    action_id="qa_good",
                    user_id="U0PRIYA",
                    user_name="priya",
                )
            ).raise_for_status()
        _wait(lambda: _qa_count(ctx) >= 1)
        ctx.say("  Priya rates the first Good: a feedback row with stage qa; the card now says who rated it.")


def _qa_count(ctx: DemoContext) -> int:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        return len(list(s.execute(select(col(Decision.id)).where(Decision.stage == "qa")).scalars()))


def _show_export(ctx: DemoContext) -> None:
    out = ctx.workdir / "dpo.jsonl"
    env = {**os.environ, "HITL_DATABASE_URL": ctx.runtime.settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "feedback", "export", "--format", "dpo", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    sft = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "feedback", "export", "--format", "sft"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    ctx.say(
        f"\n  $ hitl feedback export --format dpo -o dpo.jsonl → {len(lines)} preference pair"
        f"{'' if len(lines) == 1 else 's'} (each edited draft: the human text preferred)"
        + ("" if done.returncode == 0 else f" — failed: {done.stderr.strip()}")
    )
    ctx.say(
        f"  $ hitl feedback export --format sft → {len(sft.stdout.splitlines())} training examples "
        "(approved and edited replies, plus auto-sends rated Good)"
    )


def _review(ctx: DemoContext, review_id: str) -> Review:
    with session_scope(ctx.runtime.engine, readonly=True) as s:
        review = s.get(Review, review_id)
    assert review is not None
    return review


def _wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError("the demo timed out waiting for the helpdesk write-back")
        time.sleep(0.05)
    return value
