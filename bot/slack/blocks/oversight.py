"""Accepting an oversight verdict in Slack: the "why" modal and the recorded change with its diff (pure builders)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.reporting.format import span_label
from bot.reporting.oversight.accept import Accepted, VerdictRef
from bot.reporting.oversight.recommend import VERDICT_LABEL
from bot.slack.blocks import limits
from bot.slack.ids import ActionId, BlockId, CallbackId

MAX_REASON = 2000
MAX_DIFF_PARTS = 8  # code blocks of the diff in one message (the rest: `hitl audit export`)
FENCE = "```"


class AcceptMeta(VerdictRef):
    """The accept modal's private_metadata: the verdict on the button, and where the review message was."""

    channel: str | None = Field(None, max_length=255, pattern=r"^[^\x00-\x1f]*$")


def _threshold(value: float | None) -> str:
    if value is None:
        return "—"
    return "never auto-send" if value > 1 else f"{value:.2f}"


def verdict_line(ref: VerdictRef) -> str:
    """`*refund*: increase human involvement — auto_send_at 0.95 → 1.00 (evidence of the last 30d)`."""
    return (
        f"*{limits.escape(ref.t)}*: {VERDICT_LABEL[ref.v]} — auto_send_at {_threshold(ref.c)} → "
        f"{_threshold(ref.p)} (evidence of the last {span_label(timedelta(days=ref.d))})"
    )


def accept_modal(ref: VerdictRef, *, channel: str | None) -> View:
    """Ask why the verdict is accepted (required); the verdict rides in private_metadata."""
    meta = AcceptMeta(**ref.model_dump(), channel=channel).model_dump_json(exclude_none=True)
    return View(
        type="modal",
        callback_id=CallbackId.OVERSIGHT_ACCEPT_MODAL,
        title=PlainTextObject(text="Accept the verdict"),
        submit=PlainTextObject(text="Record it"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=meta,
        blocks=[
            SectionBlock(
                block_id=BlockId.OVERSIGHT_VERDICT,
                text=MarkdownTextObject(
                    text=limits.fit(
                        verdict_line(ref) + "\nThe evidence is checked again when you record it. The policy "
                        "file is not changed: you get the change as a diff to apply and deploy.",
                        limits.SECTION_TEXT,
                    )
                ),
            ),
            InputBlock(
                block_id=BlockId.OVERSIGHT_REASON,
                label=PlainTextObject(text="Why do you accept it?"),
                hint=PlainTextObject(text="Recorded with the change in the audit log."),
                element=PlainTextInputElement(
                    action_id=ActionId.OVERSIGHT_REASON, multiline=True, max_length=MAX_REASON
                ),
            ),
        ],
    )


def reason_of(values: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The reason typed into the modal, stripped ("" when none)."""
    value = ((values.get(BlockId.OVERSIGHT_REASON) or {}).get(ActionId.OVERSIGHT_REASON) or {}).get("value")
    return value.strip() if isinstance(value, str) else ""


def _diff_parts(diff: str) -> tuple[list[str], bool]:
    """The diff escaped for mrkdwn in code blocks of at most a section's text; True when cut short."""
    room = limits.SECTION_TEXT - 2 * len(FENCE) - 2
    parts: list[str] = []
    current = ""
    for line in diff.splitlines():
        escaped = limits.escape(line)[: room - 1]
        if current and len(current) + len(escaped) + 1 > room:
            parts.append(current)
            current = ""
        current += escaped + "\n"
    if current:
        parts.append(current)
    return parts[:MAX_DIFF_PARTS], len(parts) > MAX_DIFF_PARTS


def accepted_message(accepted: Accepted) -> tuple[str, list[Block]]:
    """(fallback text, blocks) telling the manager what was recorded, the diff, and how to apply it."""
    change = accepted.change
    text = (
        f"Recorded oversight change #{change.id} for {change.interaction_type}: auto_send_at "
        f"{_threshold(change.before.get('auto_send_at'))} → {_threshold(change.after.get('auto_send_at'))}"
    )
    parts, cut = _diff_parts(accepted.diff)
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.OVERSIGHT_RECORDED,
            text=MarkdownTextObject(
                text=limits.fit(
                    f":memo: *{limits.escape(text)}*. Reason: “{limits.escape(change.reason)}”. "
                    f"The change to `{limits.escape(accepted.policy_path.name)}`:",
                    limits.SECTION_TEXT,
                )
            ),
        )
    ]
    blocks += [
        SectionBlock(
            block_id=f"{BlockId.OVERSIGHT_DIFF}:{i}", text=MarkdownTextObject(text=f"{FENCE}\n{p}{FENCE}")
        )
        for i, p in enumerate(parts)
    ]
    howto = limits.escape(accepted.instructions())
    if cut:
        howto = f"The diff is longer than Slack shows here: `hitl audit export --action oversight_accepted` has it all. {howto}"
    blocks.append(
        ContextBlock(
            block_id=BlockId.OVERSIGHT_HOWTO,
            elements=[MarkdownTextObject(text=limits.fit(howto, limits.CONTEXT_TEXT))],
        )
    )
    return limits.plain(text, limits.FALLBACK_TEXT), blocks
