"""The error handling of the Slack listeners: no click ever ends in Slack's error screen.

`answer` is the one mapping from the decision exception hierarchy to what the clicker sees (an ephemeral
message, or a DM where there is no channel: a modal, the App Home tab) plus an audit row. A listener
clicked on the App Home tab has that Home published again once it is done (`republish_home`).
`@answers_refusals` wraps every listener that acks first: a DecisionError raised after `ack()` is
answered; any other exception is logged once with the review id and the clicker is told it failed.
(Bolt 1.30's thread runner forgets an ack the listener already sent if the listener then raises, so
the request would hang for 3 s and answer 404.)
`on_error` is Bolt's `@app.error` handler for what happens before an ack or outside listeners: one log
line each, never a traceback for a request Slack (or a forger with our secret) got wrong.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from logging import Logger
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.error import BoltUnhandledRequestError
from slack_sdk.errors import SlackApiError

from bot.app.runtime import Runtime
from bot.review.decisions import DecisionError, report_refusal, tell
from bot.slack.home import request_home
from handlers.slack.context import RUNTIME_KEY, runtime_of
from handlers.slack.payloads import home_user, review_id_of, where

LATE_MODAL_ERRORS = frozenset({"expired_trigger_id", "invalid_trigger_id"})
FAILED_TEXT = (
    ":warning: Sorry, that click could not be handled ({what}). If the card has not changed, "
    "nothing was recorded: try again, or decide in the helpdesk. The error is in the service log."
)
log = logging.getLogger("hitl.slack")


def answer(runtime: Runtime, error: DecisionError, body: dict[str, Any]) -> None:
    """Tell the clicker why nothing changed (AlreadyDecided, NotAllowed, ClickRefused, ...) and audit it."""
    user_id, channel = where(body)
    report_refusal(runtime, error, user_id=user_id or "unknown", channel=channel)


def failed(runtime: Runtime | None, error: Exception, body: dict[str, Any], listener: str) -> None:
    """A listener failed after its ack: one error line (with the review id), and the clicker is told."""
    review_id = review_id_of(body)
    log.error("Slack listener %s failed for review %s: %r", listener, review_id, error, exc_info=error)
    user_id, channel = where(body)
    if runtime is None or not user_id:
        return
    what = type(error).__name__
    try:
        tell(
            runtime, user_id=user_id, channel=channel, text=FAILED_TEXT.format(what=what), review_id=review_id
        )
    except Exception as exc:  # noqa: BLE001 - the database is down too: the log line above is all we can do
        log.error("could not tell %s that review %s failed: %r", user_id, review_id, exc)


def answers_refusals(listener: Callable[..., None]) -> Callable[..., None]:
    """Decorate a listener (taking `context` and `body`) so nothing it raises after ack() goes unanswered."""

    @functools.wraps(listener)  # Bolt reads the argument names through __wrapped__
    def run(**kwargs: Any) -> None:
        body: dict[str, Any] = kwargs["body"]
        context: BoltContext = kwargs["context"]
        runtime = _runtime(context)

        def listen() -> None:
            try:
                listener(**kwargs)
            finally:
                _ack_once(kwargs.get("ack"))

        _answered(runtime, body, listener.__name__, listen)
        if not context.get(HANDED_OFF):
            republish_home(runtime, body)

    return run


HANDED_OFF = "hitl_handed_off"  # in the Bolt context: the listener's work goes on in the decision pool


def record_after_ack(
    context: BoltContext, body: dict[str, Any], name: str, work: Callable[[], object]
) -> None:
    """Record a click's decision on the runtime's decision pool, so the listener thread is free at once.

    Bolt runs listeners, and so the acks of new clicks, on a pool of 32 threads. A decision waits for the
    database's writer (SQLite's single writer slot, PostgreSQL's row lock): done on that pool, 32 clicks
    waiting to be written left every new click's ack waiting for a free thread, past Slack's 3 seconds
    under a long enough wait (and Slack then delivers the click again). The decision pool has a few
    threads, enough to keep the writer busy; a click waits there in line, in memory, exactly as it
    waited on the listener pool before (acked either way). Its failures are answered as
    `@answers_refusals` answers them, and the App Home is published again once it is recorded.
    A graceful stop finishes the clicks in line (bot.app.runtime: the pool's stop waits for them).
    """
    runtime = _runtime(context)
    pool = runtime.services.decisions if runtime is not None else None
    if pool is None:
        work()  # no pool (a runtime that has not installed one): record in this thread
        return

    def recorded() -> None:
        _answered(runtime, body, name, work)
        republish_home(runtime, body)

    context[HANDED_OFF] = True
    pool.submit(recorded)


def _answered(runtime: Runtime | None, body: dict[str, Any], name: str, work: Callable[[], object]) -> None:
    """Run `work`; whatever it raises is answered (a refusal, a late modal, a failure), never re-raised."""
    try:
        work()
    except DecisionError as error:
        _refuse(runtime, error, body)
    except SlackApiError as error:
        if error.response.get("error") in LATE_MODAL_ERRORS:
            _late_modal(runtime, error, body)
        else:
            failed(runtime, error, body, name)
    except Exception as error:  # noqa: BLE001 - the one place a listener's failure is answered
        failed(runtime, error, body, name)


def republish_home(runtime: Runtime | None, body: dict[str, Any]) -> None:
    """After a click on the App Home tab (or a modal opened from it), publish the clicker's Home again."""
    user_id = home_user(body)
    if runtime is None or user_id is None:
        return
    try:
        request_home(runtime, user_id)
    except Exception as exc:  # noqa: BLE001 - the click itself was answered; the Home catches up on the next open
        log.error("could not ask for the App Home of %s: %r", user_id, exc)


def _refuse(runtime: Runtime | None, error: DecisionError, body: dict[str, Any]) -> None:
    if runtime is None:
        return
    try:
        answer(runtime, error, body)
    except Exception as exc:  # noqa: BLE001 - the database is down: the clicker saw no change, the log says why
        log.error("could not answer a refused click on review %s (%s): %r", error.review_id, error, exc)


def _ack_once(ack: Ack | None) -> None:
    """Ack if the listener did not (it raised while reading the payload): Slack still gets its 200."""
    if ack is not None and ack.response is None:
        ack()


def _late_modal(runtime: Runtime | None, error: SlackApiError, body: dict[str, Any]) -> None:
    log.warning("modal not opened: %s (Slack's 3-second trigger_id had run out)", error.response.get("error"))
    user_id, channel = where(body)
    if runtime is not None and user_id:
        text = ":hourglass: Slack took too long to open that window; click the button again."
        tell(runtime, user_id=user_id, channel=channel, text=text, review_id=review_id_of(body))


def _runtime(context: BoltContext) -> Runtime | None:
    try:
        return runtime_of(context) if RUNTIME_KEY in context else None
    except TypeError:
        return None


def on_error(error: Exception, body: Any, context: BoltContext, logger: Logger) -> None:
    """Decision errors → ephemeral; unhandled requests and late modals → one line; the rest → error log."""
    payload: dict[str, Any] = body if isinstance(body, dict) else {}
    runtime = _runtime(context)
    if isinstance(error, DecisionError) and runtime is not None:
        answer(runtime, error, payload)
    elif isinstance(error, BoltUnhandledRequestError):
        log.info("Slack request not for this app: %s", _kind(payload))
    elif isinstance(error, SlackApiError) and error.response.get("error") in LATE_MODAL_ERRORS:
        _late_modal(runtime, error, payload)
    else:
        failed(runtime, error, payload, "before ack")


def _kind(body: dict[str, Any]) -> str:
    """A short description of a request for the log: its type and action, callback, event or command."""
    parts = [str(body.get("type") or body.get("command") or "unknown")[:40]]
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        parts.append(str(actions[0].get("action_id"))[:80])
    for key in ("view", "event"):
        if isinstance(body.get(key), dict):
            parts.append(str(body[key].get("callback_id") or body[key].get("type"))[:80])
    return " ".join(parts)


def register(app: App, runtime: Runtime) -> None:
    """The app's one error handler."""
    app.error(on_error)
