"""Claim, Unclaim, Reassign and Take over (after a Reject) from any surface: the card, its thread, SLA pings,
DMs and the App Home tab (issue 13). Each listener acks, reads the click, and calls bot.review.claims.

Reassign is a users_select: Slack sends the chosen person as `selected_user` and no `value`, so the review
rides in the block id ("<block>:<review id>", as the card, the pings and the Home lines build it).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, BoltContext

from bot.app.runtime import Runtime
from bot.review import claims
from bot.review.decisions import Click, ClickRefused
from bot.slack.ids import ActionId, ReviewRef
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import Interaction, click_from_action


@answers_refusals
def claim_clicked(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The clicker holds the review now; it does not decide anything."""
    ack()
    claims.claim(runtime_of(context), click_from_action(body))


@answers_refusals
def unclaim_clicked(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The holder (or a supervisor) lets go of the review."""
    ack()
    claims.unclaim(runtime_of(context), click_from_action(body))


@answers_refusals
def reassign_chosen(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """A supervisor picked someone in the Reassign menu."""
    ack()
    click, to_user = reassign_click(body)
    claims.reassign(runtime_of(context), click, to_user)


@answers_refusals
def take_ownership_clicked(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """After a Reject: the clicker owns the ticket (not a second decision)."""
    ack()
    claims.take_ownership(runtime_of(context), click_from_action(body))


def reassign_click(body: dict[str, Any]) -> tuple[Click, str]:
    """The click and the chosen user of a Reassign users_select (ClickRefused when either is missing)."""
    try:
        action = Interaction.model_validate(body).actions[0]
    except (ValidationError, IndexError) as exc:
        raise ClickRefused(None, "This click could not be read (it is not one Slack sends).") from exc
    chosen = (action.model_extra or {}).get("selected_user")
    value = action.value or _ref_from_block_id(action.block_id or "")
    raw = dict(body["actions"][0], value=value)
    click = click_from_action({**body, "actions": [raw, *body["actions"][1:]]})
    if not isinstance(chosen, str) or not chosen:
        raise ClickRefused(click.review_id, "Choose a person in the Reassign menu.")
    return click, chosen


def _ref_from_block_id(block_id: str) -> str:
    """The ReviewRef JSON of a block id ending in ":<review id>" ("" when it names none)."""
    _, sep, review_id = block_id.rpartition(":")
    if not sep:
        return ""
    try:
        return ReviewRef(review_id=review_id).model_dump_json()
    except ValidationError:
        return ""


def register(app: App, runtime: Runtime) -> None:
    """Register Claim, Unclaim, Reassign and Take over after a Reject."""
    app.action(ActionId.CLAIM)(claim_clicked)
    app.action(ActionId.UNCLAIM)(unclaim_clicked)
    app.action(ActionId.REASSIGN)(reassign_chosen)
    app.action(ActionId.TAKE_OWNERSHIP)(take_ownership_clicked)
