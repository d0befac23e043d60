"""Snooze on SLA pings, Retry and Open card on dead-letter alerts (issue 13): one short listener each.

Claim and Reassign on the pings are handled in handlers/slack/claims.py, and Approve / Take over /
Reject by handlers/slack/review.py: the pings carry the card's own buttons, and `check_click` accepts a
click from any message recorded for the review (review_messages).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, BoltContext

from bot.app.runtime import Runtime
from bot.outbox.alerts import RetryClick, retry_from_alert
from bot.review.decisions import ClickRefused
from bot.sla.messages import snooze_level
from bot.slack.ids import ActionId, DeadLetterRef, SnoozeRef
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import Container, Interaction, click_from_action


def _interaction(body: dict[str, Any]) -> Interaction:
    try:
        return Interaction.model_validate(body)
    except ValidationError as exc:
        raise ClickRefused(None, "This click could not be read (it is not one Slack sends).") from exc


def _value(body: dict[str, Any]) -> str:
    payload = _interaction(body)
    return payload.actions[0].value or ""


@answers_refusals
def snooze(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Postpone the next ping of this escalation level, once; the ping says so in place."""
    ack()
    try:
        ref = SnoozeRef.model_validate_json(_value(body))
    except ValidationError as exc:
        raise ClickRefused(None, "This button is not one of this app's Snooze buttons.") from exc
    snooze_level(runtime_of(context), click_from_action(body), level=ref.level, round_=ref.round)


def _retry_click(body: dict[str, Any]) -> RetryClick:
    payload = _interaction(body)
    try:
        ref = DeadLetterRef.model_validate_json(payload.actions[0].value or "")
    except ValidationError as exc:
        raise ClickRefused(None, "This button is not one of this app's Retry buttons.") from exc
    container = payload.container or Container()
    team = payload.team.id if payload.team else payload.user.team_id
    return RetryClick(
        outbox_id=ref.outbox_id,
        user_id=payload.user.id,
        team_id=team,
        channel=container.channel_id or (payload.channel.id if payload.channel else ""),
        ts=container.message_ts or (payload.message.ts if payload.message else ""),
    )


@answers_refusals
def dead_letter_retry(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Put the dead row back in line, for the people the policy names; the alert says who retried."""
    ack()
    retry_from_alert(runtime_of(context), _retry_click(body))


def open_card(ack: Ack) -> None:
    """A link button: Slack opens the card itself; the click only needs its acknowledgement."""
    ack()


def register(app: App, runtime: Runtime) -> None:
    """Register Snooze, Retry and Open card."""
    app.action(ActionId.SNOOZE)(snooze)
    app.action(ActionId.DEAD_LETTER_RETRY)(dead_letter_retry)
    app.action(ActionId.OPEN_CARD)(open_card)
