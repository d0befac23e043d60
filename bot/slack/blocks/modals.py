"""The Edit, Reject and full-text modals, and reading what was typed into them."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ai.pii import placeholders_in, unmask_from
from bot.app.settings import Settings, secret
from bot.slack.blocks import limits
from bot.slack.blocks.text import (
    DEFECT_LABELS,
    customer_text,
    masked,
    masking,
    md,
    reject_reason,
    validated,
)
from bot.slack.ids import ActionId, BlockId, CallbackId, ModalMeta, ReviewRef
from storage.models import DecisionKind, DefectCategory, Review

INPUT_MAX = limits.INPUT_VALUE
VIEW_MAX_BLOCKS = 100


def _parts(text: str, size: int = INPUT_MAX) -> list[str]:
    """`text` in pieces of at most `size` characters, cut after whitespace where possible ("".join restores it)."""
    parts: list[str] = []
    while len(text) > size:
        cut = max(text.rfind("\n", size // 2, size), text.rfind(" ", size // 2, size))
        cut = cut + 1 if cut > 0 else size
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


def edit_modal(
    review: Review,
    meta: ModalMeta,
    *,
    settings: Settings | None = None,
    text: str | None = None,
    revision: int = 0,
    ai_note: str | None = None,
) -> View:
    """The Edit modal, prefilled with the draft (in 3,000-character parts when it is longer).

    With a model configured it also offers AI Regenerate (handlers/slack/ai.py), which rebuilds the modal
    with `text` under new block ids (`revision`), since Slack keeps typed input over a new initial_value.
    """
    customer = limits.plain(" ".join(customer_text(review, settings).split()), 600)
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.REVIEW_CUSTOMER,
            text=PlainTextObject(text=f"The customer wrote: {customer}", emoji=False),
        )
    ]
    # The reply is shown masked too; edit_submitted puts the draft's own details back (unmasked_reply).
    parts = _parts(limits.clean(masked(review.draft if text is None else text, settings)))
    for i, part in enumerate(parts[: VIEW_MAX_BLOCKS - 4]):
        label = "Reply to the customer" if len(parts) == 1 else f"Reply, part {i + 1} of {len(parts)}"
        blocks.append(
            InputBlock(
                block_id=f"{BlockId.EDIT_TEXT}:{i}" + (f":r{revision}" if revision else ""),
                label=label,
                optional=i > 0,
                element=PlainTextInputElement(
                    action_id=ActionId.EDIT_TEXT, multiline=True, max_length=INPUT_MAX, initial_value=part
                ),
            )
        )
    if settings is not None and secret(settings.openai_api_key):
        blocks += _ai_blocks(review, ai_note, settings)
    return View(
        type="modal",
        callback_id=CallbackId.EDIT_MODAL,
        title="Edit reply",
        submit="Send reply",
        close="Cancel",
        private_metadata=meta.model_dump_json(),
        blocks=validated(blocks),
    )


def _ai_blocks(review: Review, note: str | None, settings: Settings | None) -> list[Block]:
    """AI Regenerate in the Edit modal: an optional instruction and the button (and a quiet note after a try)."""
    blocks: list[Block] = [
        InputBlock(
            block_id=BlockId.AI_INSTRUCTION,
            label="Instruction for AI",
            optional=True,
            hint="Regenerate rewrites the reply above from the knowledge base; you still review it.",
            element=PlainTextInputElement(
                action_id=ActionId.AI_INSTRUCTION,
                max_length=500,
                placeholder="e.g. shorter, apologise for the delay",
            ),
        ),
        ActionsBlock(
            block_id=BlockId.AI_ACTIONS,
            elements=[
                ButtonElement(
                    text="Regenerate with AI",
                    action_id=ActionId.AI_REGENERATE,
                    value=ReviewRef(review_id=review.id).model_dump_json(),
                )
            ],
        ),
    ]
    if note:
        blocks.append(
            ContextBlock(
                block_id=BlockId.AI_NOTE,
                elements=[md(limits.mrkdwn(masked(note, settings), limits.CONTEXT_TEXT))],
            )
        )
    return blocks


def _value(values: dict[str, dict[str, dict[str, Any]]], block_id: str, action_id: str) -> Any:
    element = (values.get(block_id) or {}).get(action_id)
    return element if isinstance(element, dict) else {}


def _typed(element: dict[str, Any]) -> str:
    value = element.get("value")
    return limits.clean(value) if isinstance(value, str) else ""


def _edit_part(block_id: str) -> int:
    index = block_id.split(":")[1]
    return int(index) if index.isdigit() else 0


def edit_blocks(values: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The Edit modal's reply inputs now shown (block ids "edit_text:0", "edit_text:1:r2", ...), in order."""
    return sorted((k for k in values if k.startswith(f"{BlockId.EDIT_TEXT}:")), key=_edit_part)


def edited_text(values: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The reply typed into the Edit modal, its parts joined in order."""
    return "".join(_typed(_value(values, k, ActionId.EDIT_TEXT)) for k in edit_blocks(values))


def submitted_reply(
    values: dict[str, dict[str, dict[str, Any]]], review: Review, settings: Settings | None
) -> tuple[str, list[str]]:
    """The reply from the Edit modal with the draft's own masked details put back; (reply, placeholders left).

    The modal shows the draft masked, so an untouched `[card ••••4242]` goes to the customer as the card
    number the draft held; a placeholder that stands for two different details cannot be put back.
    """
    typed = edited_text(values)
    if not masking(settings):
        return typed, []
    reply = unmask_from(typed, review.draft)
    return reply, [p for p in placeholders_in(reply) if p not in review.draft]


def rejected_reason(values: dict[str, dict[str, dict[str, Any]]]) -> tuple[str | None, str | None]:
    """(defect category, comment) chosen in the Reject modal; category None when missing or unknown."""
    selected = _value(values, BlockId.REJECT_CATEGORY, ActionId.REJECT_CATEGORY).get("selected_option")
    category = selected.get("value") if isinstance(selected, dict) else None
    comment = _typed(_value(values, BlockId.REJECT_COMMENT, ActionId.REJECT_COMMENT)).strip()
    valid = category in {c.value for c in DefectCategory}
    return (category if valid else None), (comment or None)


def reject_modal(review: Review, meta: ModalMeta) -> View:
    """The Reject modal: a defect category (required) and a comment."""
    options = [Option(value=c.value, text=label) for c, label in DEFECT_LABELS.items()]
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.REVIEW_HEADER,
            text=md(
                f"Reject the AI draft for ticket {limits.mrkdwn('#' + review.ticket_id, 200)}? Nothing is sent to the customer; "
                "the reason goes to the feedback store."
            ),
        ),
        InputBlock(
            block_id=BlockId.REJECT_CATEGORY,
            label="What is wrong with it?",
            element=StaticSelectElement(
                action_id=ActionId.REJECT_CATEGORY, placeholder="Choose a reason", options=options
            ),
        ),
        InputBlock(
            block_id=BlockId.REJECT_COMMENT,
            label="Details",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.REJECT_COMMENT,
                multiline=True,
                max_length=INPUT_MAX,
                placeholder="What should it have said?",
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.REJECT_MODAL,
        title="Reject draft",
        submit="Reject",
        close="Cancel",
        private_metadata=meta.model_dump_json(),
        blocks=validated(blocks),
    )


def _text_parts(key: str, name: str, text: str) -> list[Block]:
    """One text as a header and plain-text sections of at most 3,000 characters ("full_text:<key>:<i>")."""
    blocks: list[Block] = [HeaderBlock(block_id=f"{BlockId.FULL_TEXT}:{key}", text=name)]
    for i, part in enumerate(_parts(limits.clean(text))):
        blocks.append(
            SectionBlock(
                block_id=f"{BlockId.FULL_TEXT}:{key}:{i}",
                text=PlainTextObject(text=part or " ", emoji=False),
            )
        )
    return blocks


def _within_view(blocks: list[Block]) -> list[Block]:
    """At most Slack's 100 blocks a view: the end is cut with a note that the rest is in the ticket."""
    if len(blocks) <= VIEW_MAX_BLOCKS:
        return blocks
    more = SectionBlock(
        block_id=f"{BlockId.FULL_TEXT}:more", text=md("(longer still: the rest is in the ticket)")
    )
    return [*blocks[: VIEW_MAX_BLOCKS - 1], more]


def _texts(review: Review, settings: Settings | None) -> list[tuple[str, str, str]]:
    """(key, name, text) of the customer's message, the draft and, when it differs, the text sent."""
    texts = [
        ("customer", "Customer wrote", customer_text(review, settings)),
        ("draft", "AI draft", masked(review.draft, settings)),
    ]
    if review.final_text and review.final_text != review.draft:
        texts.append(("sent", "Sent", masked(review.final_text, settings)))
    return texts


def full_text_modal(review: Review, *, settings: Settings | None = None) -> View:
    """Everything the card had to trim: the customer's message, the draft and the text sent, in full."""
    blocks: list[Block] = []
    for key, name, text in _texts(review, settings):
        blocks += _text_parts(key, name, text)
    title = limits.plain(f"Ticket {review.ticket_id}", limits.MODAL_TITLE)
    return View(
        type="modal",
        callback_id=CallbackId.FULL_TEXT_MODAL,
        title=title,
        close="Close",
        blocks=validated(_within_view(blocks)),
    )


def details_modal(review: Review, decision: str, *, settings: Settings | None = None) -> View:
    """A decided card's details: the decision (who, when, SLA, delivery, reason) and every text in full.

    `decision` is the card's two lines (bot.slack.blocks.card), so the modal says what the card says."""
    lines = [decision]
    if review.decision == DecisionKind.REJECT:
        lines.append(f"*Reason:* {reject_reason(review, 1000, settings)}")
    elif review.final_text and review.final_text == review.draft:
        lines.append("*Sent:* the AI draft, as written")
    blocks: list[Block] = [
        SectionBlock(
            block_id=f"{BlockId.DETAILS}:decision", text=md(limits.fit("\n".join(lines), limits.SECTION_TEXT))
        )
    ]
    for key, name, text in _texts(review, settings):
        blocks += _text_parts(key, name, text)
    title = limits.plain(f"Ticket {review.ticket_id}", limits.MODAL_TITLE)
    return View(
        type="modal",
        callback_id=CallbackId.DETAILS_MODAL,
        title=title,
        close="Close",
        blocks=validated(_within_view(blocks)),
    )
