"""Accepting an oversight verdict from the review message (issue 12 item 6).

Accept (a button per non-keep verdict) opens a modal asking why; only the policy's managers may. On
submit the evidence is checked again, the policy change is recorded with its diff and audited, and the
manager gets the diff and how to apply it. The policy file is never written from Slack.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.app.runtime import Runtime
from bot.outbox.kinds import SlackDm, SlackEphemeral, enqueue_slack_dm, enqueue_slack_ephemeral
from bot.reporting.oversight.accept import (
    Acceptance,
    ChangeRefused,
    VerdictRef,
    accept,
    not_a_manager,
    ref_of,
)
from bot.review.decisions import ClickRefused, NotAllowed, tell
from bot.slack.blocks.oversight import AcceptMeta, accept_modal, accepted_message, reason_of
from bot.slack.clicks import workspace_team
from bot.slack.ids import ActionId, BlockId, CallbackId
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import trigger_of, view_of, view_values, where
from storage import repo
from storage.db import session_scope

REASON_MISSING = "Say why you accept this verdict: it is recorded with the change in the audit log."


class NotAManager(NotAllowed):
    """Someone who is not in the policy's `managers` clicked Accept (audited like the /hitl refusals)."""

    audit_action = "report_refused"


def _verdict_on_button(body: dict[str, Any]) -> VerdictRef:
    actions = body.get("actions") or [{}]
    try:
        return ref_of(str(actions[0].get("value") or ""))
    except (ValueError, ValidationError):
        raise ClickRefused(None, "This button does not carry a verdict this app made.") from None


def _meta_of_view(body: dict[str, Any]) -> AcceptMeta:
    try:
        return AcceptMeta.model_validate(json.loads(view_of(body).private_metadata or "{}"))
    except (ValueError, ValidationError):
        raise ClickRefused(None, "This window was not opened by this app.") from None


def _check_clicker(runtime: Runtime, body: dict[str, Any]) -> str:
    """The clicker's user id, once they are known to be one of our workspace's managers."""
    team = workspace_team(runtime)
    clicked_in = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    if team is None or clicked_in != team:
        raise ClickRefused(None, "This click did not come from this app's Slack workspace.")
    user_id, _ = where(body)
    why = not_a_manager(runtime, user_id or "")
    if why == "membership_unknown":
        raise NotAManager(
            None, "Your membership could not be checked with Slack just now; try again in a minute."
        )
    if why is not None:
        managers = runtime.policy.managers.mention()
        raise NotAManager(None, f"Only the policy's managers may accept an oversight verdict ({managers}).")
    return str(user_id)


@answers_refusals
def accept_clicked(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Accept: a manager is asked why (the trigger_id lives 3 s: checks first, then the modal)."""
    ack()
    runtime = runtime_of(context)
    ref = _verdict_on_button(body)
    _check_clicker(runtime, body)
    _, channel = where(body)
    client.views_open(trigger_id=trigger_of(body), view=accept_modal(ref, channel=channel))


@answers_refusals
def accept_submitted(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Record the accepted verdict (evidence checked again), then send the diff and how to apply it."""
    reason = reason_of(view_values(body))
    if not reason:
        ack(response_action="errors", errors={BlockId.OVERSIGHT_REASON: REASON_MISSING})
        return
    meta = _meta_of_view(body)
    ack()
    runtime = runtime_of(context)
    user_id = _check_clicker(runtime, body)
    acceptance = Acceptance(meta.t, reason, user_id, "slack", timedelta(days=meta.d), ref=meta)
    try:
        accepted = accept(runtime, acceptance)
    except ChangeRefused as exc:
        _not_recorded(runtime, user_id, meta, str(exc))
        return
    text, blocks = accepted_message(accepted)
    _send(runtime, user_id, meta.channel, text, [b.to_dict() for b in blocks])


def _not_recorded(runtime: Runtime, user_id: str, meta: AcceptMeta, why: str) -> None:
    tell(
        runtime, user_id=user_id, channel=meta.channel, text=f":warning: Not recorded. {why}", review_id=None
    )
    with session_scope(runtime.engine) as session:
        repo.audit(
            session=session,
            at=runtime.clock.now(),
            actor=user_id,
            action="oversight_not_recorded",
            interaction_type=meta.t,
            verdict=meta.v,
            why=why[:500],
        )


def _send(
    runtime: Runtime, user_id: str, channel: str | None, text: str, blocks: list[dict[str, Any]]
) -> None:
    """The recorded change to the manager: ephemeral where the review was, else by DM."""
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        if channel:
            message = SlackEphemeral(channel=channel, user=user_id, text=text, blocks=blocks)
            enqueue_slack_ephemeral(session, now=now, message=message)
        else:
            dm = SlackDm(user=user_id, text=text, blocks=blocks)
            enqueue_slack_dm(session, now=now, dm=dm, order_key=f"dm:{user_id}")
    runtime.services.wake_outbox()


def register(app: App, runtime: Runtime) -> None:
    """Accept on the review message, and the modal asking why."""
    app.action(ActionId.OVERSIGHT_ACCEPT)(accept_clicked)
    app.view(CallbackId.OVERSIGHT_ACCEPT_MODAL)(accept_submitted)
