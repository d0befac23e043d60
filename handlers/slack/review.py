"""Review card listeners: Approve, Edit, Take over, Reject, Show full message, Details (one short function each).

Every click is read into a typed `Click` and checked against the review it names (bot.review.decisions:
same workspace, same card or modal) before anything happens; refusals are answered by `@answers_refusals`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.app.runtime import Runtime
from bot.review.decisions import checked_review, decide, load_review, pending_click
from bot.slack.blocks.card import outcome_line, status_line
from bot.slack.blocks.modals import (
    details_modal,
    edit_blocks,
    edit_modal,
    full_text_modal,
    reject_modal,
    rejected_reason,
    submitted_reply,
)
from bot.slack.ids import ActionId, BlockId, CallbackId
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals, record_after_ack
from handlers.slack.payloads import click_from_action, click_from_view, modal_meta, trigger_of, view_values
from storage.models import DecisionKind


@answers_refusals
def approve(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The draft goes out as written."""
    ack()
    click = click_from_action(body)
    record_after_ack(
        context, body, "approve", lambda: decide(runtime_of(context), click, DecisionKind.APPROVE)
    )


@answers_refusals
def take_over(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The clicker owns the ticket; the draft is posted in the thread as a starting point."""
    ack()
    click = click_from_action(body)
    record_after_ack(
        context, body, "take_over", lambda: decide(runtime_of(context), click, DecisionKind.TAKE_OVER)
    )


@answers_refusals
def edit(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Open the Edit modal, prefilled, before anything slow (the trigger_id lives 3 s)."""
    ack()
    runtime = runtime_of(context)
    click = click_from_action(body)
    review = pending_click(runtime, click)
    client.views_open(
        trigger_id=trigger_of(body),
        view=edit_modal(review, modal_meta(click), settings=runtime.settings),
    )


@answers_refusals
def edit_submitted(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Send the edited reply (the draft's masked details put back); empty or unresolved ones get a field error."""
    runtime = runtime_of(context)
    click = click_from_view(body)
    review = load_review(runtime, click.review_id)  # a database read only: the ack is due within 3 s
    values = view_values(body)
    text, left = submitted_reply(values, review, runtime.settings)
    field = next(iter(edit_blocks(values)), f"{BlockId.EDIT_TEXT}:0")
    if not text.strip():
        ack(response_action="errors", errors={field: "Write the reply to send, or Cancel."})
        return
    if left:
        why = f"Replace {', '.join(left)} with the real detail (the draft held more than one)."
        ack(response_action="errors", errors={field: why})
        return
    ack()
    # Checks the click, then records it.
    record_after_ack(
        context, body, "edit_submitted", lambda: decide(runtime, click, DecisionKind.EDIT, final_text=text)
    )


@answers_refusals
def reject(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Open the Reject modal (a reason is required)."""
    ack()
    click = click_from_action(body)
    review = pending_click(runtime_of(context), click)
    client.views_open(trigger_id=trigger_of(body), view=reject_modal(review, modal_meta(click)))


@answers_refusals
def reject_submitted(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Reject with a defect category and an optional comment; nothing goes to the customer."""
    click = click_from_view(body)
    category, comment = rejected_reason(view_values(body))
    if category is None:
        ack(
            response_action="errors",
            errors={BlockId.REJECT_CATEGORY: "Choose what is wrong with the draft."},
        )
        return
    ack()
    runtime = runtime_of(context)
    record_after_ack(
        context,
        body,
        "reject_submitted",
        lambda: decide(runtime, click, DecisionKind.REJECT, reason=category, comment=comment),
    )


@answers_refusals
def show_full(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Everything the card trimmed, in a modal."""
    ack()
    runtime = runtime_of(context)
    review = checked_review(runtime, click_from_action(body))
    client.views_open(trigger_id=trigger_of(body), view=full_text_modal(review, settings=runtime.settings))


@answers_refusals
def show_details(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """A decided card's details: the decision, and the customer's message, draft and sent text in full."""
    ack()
    runtime = runtime_of(context)
    review = checked_review(runtime, click_from_action(body))
    settings = runtime.settings
    lines = f"{outcome_line(review)}\n{status_line(review, runtime.clock.now(), settings=settings)}"
    client.views_open(trigger_id=trigger_of(body), view=details_modal(review, lines, settings=settings))


def register(app: App, runtime: Runtime) -> None:
    """Register the review card's listeners."""
    app.action(ActionId.APPROVE)(approve)
    app.action(ActionId.TAKE_OVER)(take_over)
    app.action(ActionId.EDIT)(edit)
    app.view(CallbackId.EDIT_MODAL)(edit_submitted)
    app.action(ActionId.REJECT)(reject)
    app.view(CallbackId.REJECT_MODAL)(reject_submitted)
    app.action(ActionId.SHOW_FULL)(show_full)
    app.action(ActionId.SHOW_DETAILS)(show_details)
