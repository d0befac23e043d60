"""AI Regenerate in the Edit modal: rewrite the reply to the reviewer's instruction, or say quietly it cannot."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.ai.assist import REGENERATING, regenerate_for_modal
from bot.ai.pii import unmask_from
from bot.app.runtime import Runtime
from bot.review.decisions import pending_click
from bot.slack.blocks.modals import edit_modal, edited_text
from bot.slack.blocks.text import masking
from bot.slack.ids import ActionId, BlockId, ModalMeta
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import click_from_action, view_of

log = logging.getLogger("hitl.slack.ai")


def instruction(values: dict[str, Any]) -> str:
    """What the reviewer typed into the Instruction field ("" when nothing)."""
    value = ((values.get(BlockId.AI_INSTRUCTION) or {}).get(ActionId.AI_INSTRUCTION) or {}).get("value")
    return value.strip() if isinstance(value, str) else ""


def next_revision(values: dict[str, Any]) -> int:
    """One more than the revision of the reply inputs now shown (block ids "edit_text:0:r2" → 3)."""
    shown = [k.rsplit(":r", 1)[1] for k in values if k.startswith(f"{BlockId.EDIT_TEXT}:") and ":r" in k]
    return max((int(r) for r in shown if r.isdigit()), default=0) + 1


@answers_refusals
def regenerate(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Show "Regenerating…", ask the model, then show its text (or the reviewer's, with a note)."""
    ack()
    runtime = runtime_of(context)
    click = click_from_action(body)
    review = pending_click(runtime, click)
    view = view_of(body)
    meta = ModalMeta(review_id=review.id, channel=click.channel, ts=click.message_ts)
    values = view.state.values
    # The modal shows the reply masked: the model gets the draft's own details back (it masks them itself).
    shown = edited_text(values)
    current = unmask_from(shown, review.draft, enabled=masking(runtime.settings)) if shown else review.draft
    revision = next_revision(values)
    try:
        waiting = client.views_update(
            view_id=view.id,
            hash=view.hash,
            view=edit_modal(
                review,
                meta,
                settings=runtime.settings,
                text=current,
                revision=revision - 1,
                ai_note=REGENERATING,
            ),
        )
        text, note = regenerate_for_modal(
            runtime,
            review_id=review.id,
            instruction=instruction(values),
            current_text=current,
            actor=click.user_id,
        )
        client.views_update(
            view_id=view.id,
            hash=waiting["view"]["hash"],
            view=edit_modal(
                review, meta, settings=runtime.settings, text=text, revision=revision, ai_note=note
            ),
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in ("hash_conflict", "not_found"):
            raise
        log.info("Edit modal changed or closed while regenerating (%s)", exc.response.get("error"))


def register(app: App, runtime: Runtime) -> None:
    """Register the Regenerate button of the Edit modal."""
    app.action(ActionId.AI_REGENERATE)(regenerate)
