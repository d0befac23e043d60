"""Calibration sessions: Good and the Defect menu on each calibration card (issue 12).

`/hitl calibrate` itself is parsed with the other `/hitl` words (bot.reporting.manager); these listeners
take the votes. Each click is checked against the session's own card (workspace, session, review,
message) before it counts; a redelivered click counts once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, BoltContext

from bot.app.runtime import Runtime
from bot.qa.calibration import Verdict
from bot.qa.calibration_service import VoteClick, vote
from bot.review.decisions import ClickRefused
from bot.slack.blocks.calibration import CalibrationChoice, CalibrationRef
from bot.slack.ids import ActionId
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import Action, Interaction


def vote_from_action(body: dict[str, Any]) -> VoteClick:
    """A Good click (button value) or a Defect pick (the chosen option's value) as a typed vote."""
    try:
        payload = Interaction.model_validate(body)
        action = payload.actions[0]
        ref = _ref_of(action)
    except (ValidationError, IndexError) as exc:
        raise ClickRefused(None, "This click is not one of this app's calibration buttons.") from exc
    channel, ts = _origin(payload)
    choice = ref if isinstance(ref, CalibrationChoice) else None
    return VoteClick(
        session_id=ref.session_id,
        review_id=ref.review_id,
        verdict=Verdict.DEFECT if choice else Verdict.GOOD,
        category=choice.category if choice else None,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        team_id=payload.team.id if payload.team else payload.user.team_id,
        channel=channel,
        message_ts=ts,
        delivery_key=f"calibrate:{channel}:{ts}:{action.action_id}:{payload.user.id}:{action.action_ts or ''}",
    )


def _ref_of(action: Action) -> CalibrationRef:
    """The card a click names: the Defect menu's chosen option, or the Good button's value."""
    if action.action_id == ActionId.CALIBRATE_DEFECT:
        chosen = (action.selected_option or {}).get("value")
        return CalibrationChoice.model_validate_json(str(chosen or ""))
    return CalibrationRef.model_validate_json(action.value or "")


def _origin(payload: Interaction) -> tuple[str, str]:
    """(channel, message ts) of the card clicked ("" when Slack did not say)."""
    container = payload.container
    channel = (container.channel_id if container else None) or (payload.channel.id if payload.channel else "")
    ts = (container.message_ts if container else None) or (payload.message.ts if payload.message else "")
    return channel, ts


@answers_refusals
def good(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The draft was right."""
    ack()
    vote(runtime_of(context), vote_from_action(body))


@answers_refusals
def defect(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The draft had a defect of the chosen category."""
    ack()
    vote(runtime_of(context), vote_from_action(body))


def register(app: App, runtime: Runtime) -> None:
    """Register the calibration card's listeners."""
    app.action(ActionId.CALIBRATE_GOOD)(good)
    app.action(ActionId.CALIBRATE_DEFECT)(defect)
