"""AI Regenerate in the Edit modal: rewrite the reply to the reviewer's instruction, or say quietly it cannot."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.ai.assist import REGENERATING, regenerate_for_modal
from bot.app.runtime import Runtime
from bot.review.decisions import pending_review
from bot.slack.blocks.modals import edit_modal, edited_text
from bot.slack.ids import ActionId, BlockId, ModalMeta
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals

log = logging.getLogger("hitl.slack.ai")


def instruction(values: dict[str, Any]) -> str:
    """What the reviewer typed into the Instruction field ("" when nothing)."""
    return str(
        (values.get(BlockId.AI_INSTRUCTION, {}).get(ActionId.AI_INSTRUCTION) or {}).get("value") or ""
    ).strip()


def next_revision(values: dict[str, Any]) -> int:
    """One more than the revision of the reply inputs now shown (block ids "edit_text:0:r2" → 3)."""
    shown = [int(k.rsplit(":r", 1)[1]) for k in values if k.startswith(f"{BlockId.EDIT_TEXT}:") and ":r" in k]
    return max(shown, default=0) + 1


@answers_refusals
def regenerate(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Show "Regenerating…", ask the model, then show its text (or the reviewer's, with a note)."""
    ack()
    runtime = runtime_of(context)
    view = body["view"]
    meta = ModalMeta.model_validate_json(view["private_metadata"])
    values = view.get("state", {}).get("values", {})
    review = pending_review(runtime, meta.review_id)
    current = edited_text(values) or review.draft
    revision = next_revision(values)
    try:
        shown = client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
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
            actor=body["user"]["id"],
        )
        client.views_update(
            view_id=view["id"],
            hash=shown["view"]["hash"],
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
