"""The demo's App Home act: a reviewer opens the app's Home tab, sees their desk, and approves from it."""

from __future__ import annotations

import secrets
import time
from typing import Any

from bot.slack.home import home_publisher
from bot.slack.ids import ActionId, BlockId
from sandbox.demo.context import SIGNING_SECRET, DemoContext
from sandbox.demo.slack import card_as_text
from sandbox.slack_sim import SlackSim, app_home_opened, event_callback, home_action_payload
from storage.db import session_scope
from storage.models import Review, ReviewStatus

READER = "U0PRIYA"
SHOWN_LINES = 24
HOME_REQUESTER_ID = 930_000_001


def act_home(ctx: DemoContext) -> None:
    """Open the Home tab (app_home_opened → views.publish), print it, approve from it, see it republished."""
    ctx.act_heading("App Home: each reviewer's own desk (my claims, waiting longest, breached now)")
    slack = ctx.standins["slack"]
    fresh = [_post_draft(ctx, n) for n in range(2)]
    _wait(lambda: all(_review(ctx, rid).slack_ts for rid in fresh), "the new cards")
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        t0 = time.monotonic()
        sim.post_event(event_callback(app_home_opened(READER)))
        home = _settled_home(ctx, slack)
        ctx.say(f"  Priya opens the app's Home tab: published in {1000 * (time.monotonic() - t0):.0f} ms")
        for line in card_as_text(home["blocks"])[:SHOWN_LINES]:
            ctx.say("    " + line)
        _approve_from_home(ctx, slack, sim, home)


def _approvable_line(home: dict[str, Any]) -> dict[str, Any] | None:
    """The first Home line that offers the reader Approve."""
    prefix = f"{BlockId.HOME_LINE_ACTIONS}:"
    for block in home["blocks"]:
        if not str(block.get("block_id", "")).startswith(prefix):
            continue
        if any(e["action_id"] == ActionId.APPROVE for e in block["elements"]):
            return dict(block)
    return None


def _approve_from_home(ctx: DemoContext, slack: Any, sim: SlackSim, home: dict[str, Any]) -> None:
    """Click Approve on the first line that offers it, as Slack sends a Home click (no channel)."""
    line = _approvable_line(home)
    if line is None:
        ctx.say("  Nothing on Priya's Home she may approve.")
        return
    review_id = str(line["block_id"]).rsplit(":", 1)[1]
    payload = home_action_payload(
        view=home, action_id=ActionId.APPROVE, user_id=READER, block_id=line["block_id"]
    )
    t0 = time.monotonic()
    sim.post_action(payload)
    review = _wait(
        lambda: (r := _review(ctx, review_id)).status != ReviewStatus.PENDING and r, "the decision"
    )
    ms = 1000 * (time.monotonic() - t0)
    sim.post_action(payload)  # Slack redelivers the click: nothing more happens
    _wait(lambda: (slack.home(READER) or {}).get("hash") != home["hash"], "the Home to be published again")
    again = _settled_home(ctx, slack)
    listed = any(str(b.get("block_id", "")).endswith(f":{review_id}") for b in again["blocks"])
    ctx.say(
        f"  Priya clicks Approve on #{review.ticket_id} from Home: {review.status} in {ms:.0f} ms; the card in "
        f"{review.slack_channel} is updated and her Home published again ({'still listed' if listed else 'gone from it'})."
    )
    _publish_figures(ctx)


def _publish_figures(ctx: DemoContext) -> None:
    publisher = home_publisher(ctx.runtime)
    ctx.say(
        ctx.style.dim(
            f"  views.publish calls: {publisher.published} (an unchanged Home is not sent again: "
            f"{publisher.skipped} skipped); the redelivered click did nothing."
        )
    )


def _post_draft(ctx: DemoContext, n: int) -> str:
    ticket = 880_000 + 10 * secrets.randbelow(10**4) + n  # Zendesk ticket ids are numbers
    subject, message = f"Order #{4100 + n}", f"Hi, where is my order #{4100 + n}? It was due yesterday."
    body: dict[str, Any] = {
        "ticket_id": str(ticket),
        "interaction_type": "order_status",
        "confidence": 0.72,
        "customer_message": message,
        "draft": f"Hi! Your order #{4100 + n} left our warehouse this morning and arrives tomorrow.",
        "subject": subject,
        "customer": {"id": f"cus_home_{n}", "name": "Lee Chen", "tier": "standard", "account_value": 310.0},
    }
    zendesk = ctx.standins.get("zendesk")
    if zendesk is not None:  # the ticket exists in the helpdesk, so the approved reply is written back
        requester = HOME_REQUESTER_ID + n
        zendesk.add_user(requester, f"lee.chen+{n}@example.com", "Lee Chen", role="end-user")
        zendesk.add_ticket(ticket, subject=subject, requester_id=requester, description=message)
    resp = ctx.api.post("/v1/drafts", json=body)
    resp.raise_for_status()
    return str(resp.json()["id"])


def _review(ctx: DemoContext, review_id: str) -> Review:
    with session_scope(ctx.runtime.engine, readonly=True) as session:
        review = session.get(Review, review_id)
    if review is None:
        raise RuntimeError(f"review {review_id} is not in the store")
    return review


def _settled_home(ctx: DemoContext, slack: Any) -> dict[str, Any]:
    publisher = home_publisher(ctx.runtime)
    home: dict[str, Any] = _wait(lambda: publisher.idle() and slack.home(READER), "the Home tab")
    return home


def _wait(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo timed out waiting for {what}")
        time.sleep(0.05)
    return value
