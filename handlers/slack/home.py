"""The App Home tab: app_home_opened → views.publish, Refresh, and the managers' oversight review (issue 13).

Publishing happens off the listener thread (bot.slack.home): a listener only records the event id (so
Slack's retries of one open publish once) and asks for the user's Home. Decision and claim buttons on
Home are the card's own listeners (handlers/slack/review.py, claims.py); `@answers_refusals` asks for
the clicker's Home again after any click on it (handlers/slack/errors.py).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.app.runtime import Runtime
from bot.outbox.kinds import SlackDm, enqueue_slack_dm
from bot.reporting.manager import Asker, Command, answer, refusal
from bot.slack.dedupe import first_delivery
from bot.slack.home import home_publisher, request_home
from bot.slack.ids import ActionId
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import home_interaction
from storage.db import session_scope


def home_opened(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
    """A user opened the app's Home tab: publish it (once per event id, whatever Slack retries)."""
    if event.get("tab") != "home" or not isinstance(event.get("user"), str):
        return  # the Messages tab, or an event without a user: nothing to publish
    runtime = runtime_of(context)
    key = f"event:{body.get('event_id') or event.get('event_ts')}"
    if not first_delivery(engine=runtime.engine, key=key, now=runtime.clock.now()):
        return
    request_home(runtime, event["user"])


@answers_refusals
def refresh(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Refresh on Home: `@answers_refusals` publishes the clicker's Home again after the ack."""
    ack()
    home_interaction(body)


@answers_refusals
def open_review(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """A manager asks for the oversight review from Home: it arrives as a DM (what `/hitl review` shows)."""
    ack()
    runtime = runtime_of(context)
    payload = home_interaction(body)
    user_id = payload.user.id
    action_ts = payload.actions[0].action_ts or ""
    if not first_delivery(
        engine=runtime.engine, key=f"home_review:{user_id}:{action_ts}", now=runtime.clock.now()
    ):
        return
    cmd = Command("review")
    reply = refusal(runtime, cmd, Asker(user_id=user_id, channel_id=None, text="review")) or answer(
        runtime, cmd
    )
    dm = SlackDm(user=user_id, text=reply.text, blocks=[b.to_dict() for b in reply.blocks] or None)
    with session_scope(runtime.engine) as session:
        enqueue_slack_dm(session, now=runtime.clock.now(), dm=dm, order_key=f"dm:{user_id}")
    runtime.services.wake_outbox()


def register(app: App, runtime: Runtime) -> None:
    """Listen to Home opens and the Home's own buttons; the publisher stops with the service."""
    home_publisher(runtime)
    app.event("app_home_opened")(home_opened)
    app.action(ActionId.HOME_REFRESH)(refresh)
    app.action(ActionId.HOME_OPEN_REVIEW)(open_review)
