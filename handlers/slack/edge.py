"""The HTTP edge of `POST /slack/events`: signature first, then the body's shape, then Bolt.

Unsigned or stale requests answer 401 before anything is parsed. A signed body that does not parse, or is
not one of Slack's shapes, answers 400 with one warning line. Bolt's "unhandled request" (an action, view
or event this app does not listen to) answers 200, so Slack neither shows an error nor retries; anything
that still escapes Bolt answers 400 with one error line. Never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from handlers.slack.payloads import envelope_problem

log = logging.getLogger("hitl.slack.edge")

MAX_AGE = 300  # seconds a signed request may be old (Slack's own rule)
Headers = dict[str, str | Sequence[str]]


class BadRequest(Exception):
    """A signed request whose body is not one Slack sends."""


def _header(headers: Headers, name: str) -> str:
    values = headers.get(name.lower()) or [""]
    return values if isinstance(values, str) else values[0]


def parse(body: str, content_type: str) -> tuple[Any, bool]:
    """(parsed body, whether it is an interactive payload), as Bolt would parse it; BadRequest if it cannot."""
    try:
        if content_type.startswith("application/json") or body.startswith("{"):
            return json.loads(body), False
        form = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
        if "payload" in form:
            return json.loads(form["payload"]), True
        return form, False
    except ValueError as exc:  # JSONDecodeError and parse_qsl's strict errors are ValueErrors
        raise BadRequest(f"the body does not parse ({type(exc).__name__}: {str(exc)[:120]})") from exc


def _answer(status: int, text: str = "") -> BoltResponse:
    return BoltResponse(status=status, body=text, headers={"content-type": "text/plain; charset=utf-8"})


def signed(secret: str, body: bytes, headers: Headers, *, now: float | None = None) -> bool:
    """Slack's signature over the raw bytes (any bytes: nothing is decoded first), at most 5 minutes old."""
    timestamp = _header(headers, "X-Slack-Request-Timestamp")
    if not timestamp.isdigit() or abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, _header(headers, "X-Slack-Signature"))


def dispatch(app: App, secret: str | None, body: bytes, headers: Headers, query: str) -> BoltResponse:
    """Check, then hand a request to Bolt: 401 unsigned, 400 malformed, 200 not ours, Bolt's answer otherwise."""
    if secret is not None and not signed(secret, body, headers):
        log.warning("Slack request refused: invalid or stale signature")
        return _answer(401, "invalid signature")
    try:
        text = body.decode("utf-8")
        parsed, interactive = parse(text, _header(headers, "Content-Type"))
        problem = envelope_problem(parsed, interactive=interactive)
        if problem:
            raise BadRequest(problem)
    except (UnicodeDecodeError, BadRequest) as exc:
        log.warning("Slack request refused (400): %s", exc)
        return _answer(400, "malformed request")
    try:
        resp = app.dispatch(BoltRequest(body=text, query=query, headers=headers))
    except Exception as exc:  # noqa: BLE001 - Bolt's own parsing of an odd but well-shaped body
        log.error("Slack request failed in Bolt (answered 400): %r", exc)
        return _answer(400, "malformed request")
    if resp.status == 404:
        return _answer(200)  # not for us (an unknown action or event): ack it so Slack does not retry
    if resp.status >= 500:
        log.error("Slack request answered %s by Bolt (answered 400 instead)", resp.status)
        return _answer(400, "malformed request")
    return resp


EVENTS_API_TYPES = frozenset({"event_callback", "url_verification", "app_rate_limited"})


def socket_mode_problem(payload: Any) -> str | None:
    """Why a Socket Mode payload is not one of Slack's shapes (they skip the HTTP edge); None when it is."""
    interactive = (
        isinstance(payload, dict) and "command" not in payload and payload.get("type") not in EVENTS_API_TYPES
    )
    return envelope_problem(payload, interactive=interactive)


class CheckedSocketModeHandler(SocketModeHandler):
    """Bolt's Socket Mode handler with the same shape check as the HTTP edge: a bad payload is acked, logged once."""

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        problem = socket_mode_problem(req.payload)
        if problem is None:
            super().handle(client, req)
            return
        log.warning("Slack Socket Mode request refused: %s", problem)
        send_response(client, req, _answer(200), time.time())  # acked, so Slack does not redeliver it
