"""QA card listeners: Good, Defect (opens the defect modal), and the modal's submission.

Each click is checked against the review it names first (same workspace, its QA card or modal).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.app.runtime import Runtime
from bot.qa.rating import ensure_unrated, rate
from bot.review.decisions import checked_review
from bot.slack.blocks.qa import defect_modal, defect_reason
from bot.slack.ids import ActionId, BlockId, CallbackId
from handlers.slack.context import runtime_of
from handlers.slack.errors import answers_refusals
from handlers.slack.payloads import click_from_action, click_from_view, trigger_of, view_values


@answers_refusals
def good(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The auto-sent reply was right."""
    ack()
    runtime = runtime_of(context)
    click = click_from_action(body)
    checked_review(runtime, click)
    rate(runtime, click, good=True)


@answers_refusals
def defect(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Ask what went wrong (the trigger_id lives 3 s: open the modal first)."""
    ack()
    runtime = runtime_of(context)
    click = click_from_action(body)
    checked_review(runtime, click)
    ensure_unrated(runtime, click.review_id)
    client.views_open(
        trigger_id=trigger_of(body),
        view=defect_modal(review_id=click.review_id, channel=click.channel, ts=click.message_ts),
    )


@answers_refusals
def defect_submitted(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Record the defect with its category and comment."""
    click = click_from_view(body)
    category, comment = defect_reason(view_values(body))
    if category is None:
        ack(response_action="errors", errors={BlockId.QA_DEFECT_CATEGORY: "Choose what went wrong."})
        return
    ack()
    runtime = runtime_of(context)
    checked_review(runtime, click)
    rate(runtime, click, good=False, category=category, comment=comment)


def register(app: App, runtime: Runtime) -> None:
    """Register the QA card's listeners."""
    app.action(ActionId.QA_GOOD)(good)
    app.action(ActionId.QA_DEFECT)(defect)
    app.view(CallbackId.QA_DEFECT_MODAL)(defect_submitted)
