"""The error handling of the Slack listeners: clicks that change nothing get an ephemeral answer and an audit row.

`answer` is the one mapping from the decision exception hierarchy to what the clicker sees. It runs from
Bolt's `@app.error` handler and from `@answers_refusals`, which wraps listeners that ack first: Bolt 1.30's
thread runner forgets an ack the listener already sent if the listener then raises before the request
thread has seen it, so the HTTP request would hang for 3 s and answer 404.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from logging import Logger
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk.errors import SlackApiError

from bot.app.runtime import Runtime
from bot.review.decisions import DecisionError, report_refusal
from handlers.slack.context import runtime_of
from handlers.slack.payloads import where

LATE_MODAL_ERRORS = frozenset({"expired_trigger_id", "invalid_trigger_id"})


def answer(runtime: Runtime, error: DecisionError, body: dict[str, Any]) -> None:
    """Tell the clicker why nothing changed (AlreadyDecided, NotAllowed, ReviewNotFound) and audit it."""
    user_id, channel = where(body)
    report_refusal(runtime, error, user_id=user_id or "unknown", channel=channel)


def answers_refusals(listener: Callable[..., None]) -> Callable[..., None]:
    """Decorate a listener (which takes `context` and `body`) so a DecisionError raised after its ack() is answered here."""

    @functools.wraps(listener)  # Bolt reads the argument names through __wrapped__
    def run(**kwargs: Any) -> None:
        try:
            listener(**kwargs)
        except DecisionError as error:
            answer(runtime_of(kwargs["context"]), error, kwargs["body"])

    return run


def on_error(error: Exception, body: dict[str, Any], context: BoltContext, logger: Logger) -> None:
    """Decision errors → ephemeral; a modal opened too late → warning; anything else → error log."""
    if isinstance(error, DecisionError):
        answer(runtime_of(context), error, body)
    elif isinstance(error, SlackApiError) and error.response.get("error") in LATE_MODAL_ERRORS:
        logger.warning(
            "modal not opened: %s (Slack's 3-second trigger_id had run out)", error.response["error"]
        )
    else:
        logger.error("Slack listener failed: %s", error, exc_info=error)


def register(app: App, runtime: Runtime) -> None:
    """The app's one error handler."""
    app.error(on_error)
