"""The demo's last act: what a manager sees on a phone of everything the demo just did.

`/hitl stats 24h`, `/hitl review 24h` and `/hitl queue` go to the service as signed slash commands; each
answer is read back from the Slack stand-in and printed as a phone would lay it out (40 columns, the
summary first). Without the stand-in the same blocks are built locally.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.reporting.format import PHONE_WIDTH
from bot.reporting.manager import answer, parse_command
from sandbox.demo.context import SIGNING_SECRET, DemoContext
from sandbox.slack_sim import SlackSim, slash_command_form

if TYPE_CHECKING:
    from bot.reporting.manager import Reply

MANAGER = "U0MANAGER"
CHANNEL = "#support-managers"
SURFACES = (("stats 24h", "hitl stats"), ("review 24h", "Oversight review"), ("queue", "Queue"))
PREVIEW_LINES = 18  # of each answer: enough to show the summary, the fields and the folded line
_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_ITALIC = re.compile(r"(?<!\w)_|_(?!\w)")  # mrkdwn italics, not the underscores in order_status
_EMOJI = {
    ":arrow_up:": "↑",
    ":warning:": "⚠",
    ":red_circle:": "●",
    ":large_orange_circle:": "◐",
    ":white_circle:": "○",
    ":white_check_mark:": "✓",
}


def act_stats(ctx: DemoContext) -> None:
    """The three reports as Slack answers, previewed at a phone's width."""
    ctx.heading("Managers: /hitl stats, review and queue, as a phone shows them")
    slack = ctx.standins.get("slack")
    for words, marker in SURFACES:
        message = _ask_in_slack(ctx, slack, words, marker) if slack is not None else None
        if message is None:
            message = _local(ctx, words)
        _preview(ctx, f"/hitl {words}", message)
    ctx.say(
        ctx.style.dim(
            "  The weekly digest posts the review in this shape to "
            f"{ctx.runtime.settings.managers_channel or 'HITL_MANAGERS_CHANNEL'}; "
            "each Accept button asks to confirm first."
        )
    )


def _ask_in_slack(ctx: DemoContext, slack: Any, words: str, marker: str) -> dict[str, Any] | None:
    """A manager types `/hitl <words>`: the ack time, and the ephemeral answer once it arrived."""
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        seen = len(slack.ephemerals(MANAGER))
        t0 = time.monotonic()
        resp = sim.post_command(slash_command_form(text=words, user_id=MANAGER, channel_id=CHANNEL))
        acked = time.monotonic() - t0
        found = _wait(
            lambda: next((e for e in slack.ephemerals(MANAGER)[seen:] if marker in e["text"]), None)
        )
    arrived = f"answered {time.monotonic() - t0:.1f} s after asking" if found else "no answer (see the log)"
    ctx.say(f"  /hitl {words} → HTTP {resp.status_code} acked in {acked * 1000:.0f} ms; {arrived}")
    return found


def _wait(check: Callable[[], dict[str, Any] | None], timeout: float = 15.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    found = check()
    while found is None and time.monotonic() < deadline:
        time.sleep(0.05)
        found = check()
    return found


def _local(ctx: DemoContext, words: str) -> dict[str, Any]:
    """The same answer built here, when no Slack stand-in runs."""
    reply: Reply = answer(ctx.runtime, parse_command(words))
    return {"text": reply.text, "blocks": [b.to_dict() for b in reply.blocks]}


def phone_lines(message: dict[str, Any], width: int = PHONE_WIDTH) -> list[str]:
    """The blocks as a phone lays them out: each text wrapped to `width`, links shown by their label."""
    out: list[str] = []
    for block in message.get("blocks") or []:
        out += _block_lines(block, width)
    return out


def _block_texts(block: dict[str, Any]) -> list[str]:
    """The mrkdwn a block shows: its text, its fields, its context elements."""
    texts = [block["text"]["text"]] if isinstance(block.get("text"), dict) else []
    texts += [f["text"] for f in block.get("fields") or []]
    return texts + [e["text"] for e in block.get("elements") or [] if isinstance(e.get("text"), str)]


def _block_lines(block: dict[str, Any], width: int) -> list[str]:
    if block.get("type") == "divider":
        return ["─" * width]
    lines: list[str] = []
    for text in _block_texts(block):
        for raw in _plain(text).splitlines():
            lines += textwrap.wrap(raw, width, subsequent_indent="  ") or [""]
    accessory = block.get("accessory") or {}
    if accessory.get("type") == "button":
        lines.append(f"[ {accessory['text']['text']} ]")
    return lines


def _plain(mrkdwn: str) -> str:
    text = _LINK.sub(r"\2", mrkdwn)
    for code, symbol in _EMOJI.items():
        text = text.replace(code, symbol)
    text = _ITALIC.sub("", text.replace("*", "").replace("`", ""))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _preview(ctx: DemoContext, title: str, message: dict[str, Any]) -> None:
    lines = phone_lines(message)
    ctx.say(ctx.style.dim(f"  ┌ {title} " + "─" * max(PHONE_WIDTH - len(title) - 1, 0)))
    for line in lines[:PREVIEW_LINES]:
        ctx.say("  │ " + line)
    if len(lines) > PREVIEW_LINES:
        ctx.say(ctx.style.dim(f"  │ … {len(lines) - PREVIEW_LINES} more lines (scroll)"))
    ctx.say(ctx.style.dim("  └" + "─" * (PHONE_WIDTH + 2)))
    ctx.say(ctx.style.dim("  notification: ") + textwrap.shorten(message.get("text") or "", 110))
    ctx.say()
