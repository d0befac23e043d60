"""The `/hitl` slash command (registered only here): ack at once, answer from a lazy listener.

Help and unknown words are answered in the ack itself (an ephemeral reply, no extra call). Anything
that reads the database is acked empty within Slack's 3 seconds, then computed in a lazy listener
and answered with `chat.postEphemeral` (falling back to the command's `response_url` where the bot
is not in the channel); `chart` uploads a PNG to the channel with `files_upload_v2`. Only the policy's
`managers` get anything but `help`; others get an ephemeral refusal (checked in the lazy listener,
since reading a user group's members is a Slack call).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.app.runtime import Runtime
from bot.reporting.manager import Asker, Reply, UsageError, answer, parse_command, refusal, usage_reply
from handlers.slack.context import runtime_of

COMMAND = "/hitl"
log = logging.getLogger("hitl.slack.commands")


def acknowledge(ack: Ack, command: dict[str, Any]) -> None:
    """Answer help and unknown words right away; everything else is acked empty and answered later."""
    try:
        cmd = parse_command(command.get("text") or "")
    except UsageError as exc:
        reply = usage_reply(str(exc))
        ack(text=reply.text, blocks=reply.blocks)
        return
    if cmd.action == "help":
        reply = usage_reply()
        ack(text=reply.text, blocks=reply.blocks)
        return
    ack()


def respond_later(command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
    """Compute the answer and show it to the person who asked."""
    try:
        cmd = parse_command(command.get("text") or "")
    except UsageError:
        return  # answered in the ack
    if cmd.action == "help":
        return
    runtime = runtime_of(context)
    asker = Asker(
        user_id=str(command.get("user_id") or ""),
        channel_id=command.get("channel_id"),
        text=str(command.get("text") or ""),
    )
    try:
        reply = refusal(runtime, cmd, asker) or answer(runtime, cmd, asker=asker)
    except Exception:  # the asker gets a sentence, the log gets the trace
        log.exception("/hitl %s failed", command.get("text"))
        reply = Reply(
            text=":warning: Sorry, that could not be computed just now; try again in a minute.", blocks=[]
        )
    show(client, respond, command, reply)
    if reply.chart is not None:
        upload_chart(client, respond, command, reply)


def register(app: App, runtime: Runtime) -> None:
    """Register `/hitl`."""
    app.command(COMMAND)(ack=acknowledge, lazy=[respond_later])


def show(client: WebClient, respond: Respond, command: dict[str, Any], reply: Reply) -> None:
    """An ephemeral message to the asker, in the channel where they asked."""
    blocks = [b.to_dict() for b in reply.blocks] or None
    try:
        client.chat_postEphemeral(
            channel=command["channel_id"], user=command["user_id"], text=reply.text, blocks=blocks
        )
    except SlackApiError as exc:
        # Not in that channel (a DM, a private channel): the response_url reaches the asker anywhere.
        log.info("chat.postEphemeral failed (%s); answering through response_url", exc.response.get("error"))
        respond(text=reply.text, blocks=blocks, response_type="ephemeral", replace_original=False)


def upload_chart(client: WebClient, respond: Respond, command: dict[str, Any], reply: Reply) -> None:
    """The stats chart as a PNG in the channel where it was asked for."""
    try:
        client.files_upload_v2(
            channel=command["channel_id"],
            content=reply.chart,
            filename=reply.chart_name,
            title=reply.chart_title,
            initial_comment=f"<@{command['user_id']}> asked for `/hitl {_escape(command)}`",
            alt_txt=reply.text[:1000],
        )
    except SlackApiError as exc:
        log.warning("chart upload failed: %s", exc.response.get("error"))
        show(
            client,
            respond,
            command,
            Reply(
                text=f":warning: The chart could not be posted here ({exc.response.get('error')}): invite the app to "
                "this channel, or ask in one it is in.",
                blocks=[],
            ),
        )


def _escape(command: dict[str, Any]) -> str:
    text = str(command.get("text") or "")[:200]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
