"""The QA card of an auto-sent reply (Good / Defect, then who rated it) and the defect modal: pure builders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ai.pii import mask_pii
from bot.slack.blocks import limits
from bot.slack.blocks.text import DEFECT_LABELS as LABELS
from bot.slack.blocks.text import escape, link, mention
from bot.slack.ids import ActionId, BlockId, CallbackId, ModalMeta, ReviewRef
from storage.models import Decision, DecisionKind, Review

DEFECT_LABELS: dict[str, str] = {str(category): name for category, name in LABELS.items()}
SHOWN_CHARS = 1200  # of each text on the card: the card stays compact, the ticket has the rest


def label(category: str | None) -> str:
    """A defect category's label, or the raw value when the taxonomy does not know it."""
    return DEFECT_LABELS.get(category or "", category or "unspecified")


def _shown(title: str, text: str) -> str:
    """A titled quote of outside text: masked, escaped first, trimmed after, within a section's limit."""
    body = limits.mrkdwn(mask_pii(text).strip(), SHOWN_CHARS)
    return limits.fit(f"{title}\n" + _quote(body), limits.SECTION_TEXT)


def _quote(text: str) -> str:
    return "\n".join(f">{line}" for line in text.splitlines() or [""])


# ------------------------------------------------------------------ Block Kit (pure)


def reply_kind(review: Review) -> str:
    """What the QA card rates: an auto-sent reply, or one a human approved or edited (issue 12)."""
    return {"approved": "approved reply", "edited": "edited reply"}.get(review.status, "auto-sent reply")


def qa_text(review: Review) -> str:
    """The notification/fallback text of a QA card."""
    line = f"QA: {reply_kind(review)} to ticket {review.ticket_id} ({review.interaction_type}, {review.confidence:.2f})"
    return limits.mrkdwn(line, limits.FALLBACK_TEXT)


def qa_card(review: Review, rating: Decision | None = None) -> list[Block]:
    """The QA card: customer message, the reply that went out, confidence and type; Good / Defect until rated."""
    ticket = (
        link(review.ticket_url, f"#{review.ticket_id}")
        if review.ticket_url
        else f"#{escape(review.ticket_id)}"
    )
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.QA_HEADER, text=PlainTextObject(text=f"QA · {reply_kind(review)}", emoji=True)
        ),
        ContextBlock(
            block_id=BlockId.QA_FACTS,
            elements=[
                MarkdownTextObject(
                    text=limits.fit(
                        f"Ticket {ticket} · *{escape(review.interaction_type)}* · confidence "
                        f"*{review.confidence:.2f}* · sent {_when(review.decided_at)}",
                        limits.CONTEXT_TEXT,
                    )
                )
            ],
        ),
        SectionBlock(
            block_id=BlockId.QA_CUSTOMER,
            text=MarkdownTextObject(text=_shown("*Customer*", review.customer_message)),
        ),
        SectionBlock(
            block_id=BlockId.QA_REPLY,
            text=MarkdownTextObject(text=_shown("*Reply sent*", review.final_text or review.draft)),
        ),
    ]
    if rating is None:
        ref = ReviewRef(review_id=review.id).model_dump_json()
        blocks.append(
            ActionsBlock(
                block_id=BlockId.QA_ACTIONS,
                elements=[
                    ButtonElement(
                        action_id=ActionId.QA_GOOD,
                        text=PlainTextObject(text="Good", emoji=True),
                        value=ref,
                        style="primary",
                    ),
                    ButtonElement(
                        action_id=ActionId.QA_DEFECT,
                        text=PlainTextObject(text="Defect", emoji=True),
                        value=ref,
                        style="danger",
                    ),
                ],
            )
        )
    else:
        blocks.append(
            ContextBlock(block_id=BlockId.QA_RATING, elements=[MarkdownTextObject(text=rating_line(rating))])
        )
    return blocks


def rating_line(rating: Decision) -> str:
    """Who rated the reply, and the defect and comment when it was one."""
    who = mention(rating.actor_id) if rating.actor_id else escape(rating.actor_name or "someone")
    if rating.decision == DecisionKind.QA_GOOD:
        return f":white_check_mark: Rated *Good* by {who}"
    line = f":warning: *Defect: {label(rating.defect_category)}* — reported by {who}"
    if rating.defect_comment:
        comment = limits.mrkdwn(mask_pii(rating.defect_comment), 500).replace("\n", "\n>")
        line += f"\n>{comment}"
    return limits.fit(line, limits.CONTEXT_TEXT)


def _when(at: datetime | None) -> str:
    return (
        f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"
        if at
        else "just now"
    )


def defect_modal(*, review_id: str, channel: str, ts: str) -> View:
    """Defect details: the category (the taxonomy) and an optional comment."""
    options = [Option(value=value, label=text) for value, text in DEFECT_LABELS.items()]
    return View(
        type="modal",
        callback_id=CallbackId.QA_DEFECT_MODAL,
        title=PlainTextObject(text="Report a defect"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=ModalMeta(review_id=review_id, channel=channel, ts=ts).model_dump_json(),
        blocks=[
            InputBlock(
                block_id=BlockId.QA_DEFECT_CATEGORY,
                label=PlainTextObject(text="What went wrong?"),
                element=StaticSelectElement(
                    action_id=ActionId.QA_DEFECT_CATEGORY,
                    options=options,
                    placeholder=PlainTextObject(text="Pick a category"),
                ),
            ),
            InputBlock(
                block_id=BlockId.QA_DEFECT_COMMENT,
                label=PlainTextObject(text="Comment"),
                optional=True,
                element=PlainTextInputElement(
                    action_id=ActionId.QA_DEFECT_COMMENT, multiline=True, max_length=2000
                ),
            ),
        ],
    )


def defect_reason(values: dict[str, dict[str, dict[str, Any]]]) -> tuple[str | None, str | None]:
    """(category, comment) typed into the defect modal; category None when none (or an unknown one) was chosen."""
    chosen = ((values.get(BlockId.QA_DEFECT_CATEGORY) or {}).get(ActionId.QA_DEFECT_CATEGORY) or {}).get(
        "selected_option"
    )
    category = chosen.get("value") if isinstance(chosen, dict) else None
    comment = ((values.get(BlockId.QA_DEFECT_COMMENT) or {}).get(ActionId.QA_DEFECT_COMMENT) or {}).get(
        "value"
    )
    return (category if category in DEFECT_LABELS else None), (comment if isinstance(comment, str) else None)
