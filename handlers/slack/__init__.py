"""Slack: the Bolt app behind `POST /slack/events` (HTTP) or Socket Mode, and its listener modules.

One module per feature (review, qa, ai, commands, events, errors), each with module-level listeners and
one `register(app, runtime)` that registers them with the ids in `bot.slack.ids`; `register_all` calls
them. Listeners get the runtime from the request context (`handlers.slack.context`). Handlers stay thin:
ack, parse, call one service function, render.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from slack_bolt import App
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.authorization import AuthorizeResult

from bot.app.runtime import Runtime
from bot.app.settings import secret
from bot.slack.clicks import learn_in_background
from bot.slack.client import make_web_client
from handlers.slack import (
    ai,
    calibration,
    claims,
    commands,
    edge,
    errors,
    events,
    home,
    oversight,
    qa,
    review,
    sla_actions,
)
from handlers.slack.context import runtime_middleware

log = logging.getLogger("hitl.slack")
DECISION_THREADS = 8


def build_bolt_app(runtime: Runtime) -> App:
    """The Bolt app with every listener registered (no Slack call at start: token verification is off)."""
    settings = runtime.settings
    # Bolt's default pool has 5 threads; acks run on it, so a few slow listeners must not starve new clicks.
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hitl-slack")
    runtime.add_worker("slack-listeners", lambda: None, lambda: executor.shutdown(wait=False))
    # Decisions are recorded on a pool of their own, after the ack, so the acks of new clicks never wait
    # behind writes (handlers.slack.errors.record_after_ack). A few threads keep the writer busy; more
    # would only queue on its lock. A graceful stop records the clicks still in line before it returns.
    decisions = ThreadPoolExecutor(max_workers=DECISION_THREADS, thread_name_prefix="hitl-decide")
    runtime.services.decisions = decisions
    runtime.add_worker("decisions", lambda: None, lambda: decisions.shutdown(wait=True))
    client = make_web_client(settings)
    # The token goes through `authorize`, not the client: Bolt's default single-workspace authorization
    # calls auth.test on the first request, which would fail the first clicks during a Slack API outage.
    client.token = None
    app = App(
        name="hitl",
        signing_secret=secret(settings.slack_signing_secret) or "",
        client=client,
        authorize=single_workspace(secret(settings.slack_bot_token)),
        process_before_response=False,
        request_verification_enabled=True,
        token_verification_enabled=False,
        # Requests for listeners we do not have go to errors.on_error (one log line), answered 200 at the edge.
        raise_error_for_unhandled_request=True,
        listener_executor=executor,
        logger=log,
    )
    register_all(app, runtime)
    learn_in_background(runtime)  # clicks are checked against our workspace (bot.slack.clicks)
    return app


def single_workspace(token: str | None) -> Callable[..., AuthorizeResult]:
    """Authorize every request with the bot token, without any call to Slack."""

    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    return authorize


def register_all(app: App, runtime: Runtime) -> None:
    """Put the runtime into every request's context, then let each feature register its listeners."""
    app.use(runtime_middleware(runtime))
    errors.register(app, runtime)
    review.register(app, runtime)
    qa.register(app, runtime)
    events.register(app, runtime)
    ai.register(app, runtime)
    commands.register(app, runtime)
    claims.register(app, runtime)
    sla_actions.register(app, runtime)
    home.register(app, runtime)
    oversight.register(app, runtime)
    calibration.register(app, runtime)


def bolt_app(runtime: Runtime) -> App:
    """The runtime's Bolt app, built once (HTTP and Socket Mode share it)."""
    app = runtime.services.bolt
    if app is None:
        app = runtime.services.bolt = build_bolt_app(runtime)
    return app


class ThreadedSlackRequestHandler(SlackRequestHandler):
    """Bolt's FastAPI adapter behind the edge checks (handlers.slack.edge), with `dispatch` off the event loop."""

    def __init__(self, app: App, signing_secret: str | None) -> None:
        super().__init__(app)
        self.signing_secret = signing_secret or None

    async def handle(
        self, req: Request, addition_context_properties: dict[str, Any] | None = None
    ) -> Response:
        body = await req.body()
        headers: dict[str, list[str]] = {}
        for name, value in req.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        checked: edge.Headers = dict(headers)
        resp = await run_in_threadpool(
            edge.dispatch, self.app, self.signing_secret, body, checked, req.url.query
        )
        return to_starlette_response(resp)


def add_socket_mode(runtime: Runtime, *, retry_seconds: float = 5.0) -> None:
    """Take Slack traffic over Socket Mode too: connect when the service starts (retrying), close when it stops."""
    handler = edge.CheckedSocketModeHandler(
        bolt_app(runtime), secret(runtime.settings.slack_app_token), logger=log
    )
    stopped = threading.Event()

    def connect() -> None:
        while not stopped.is_set():
            try:
                handler.connect()  # type: ignore[no-untyped-call]
                log.info("Slack Socket Mode connected")
                return
            except Exception as exc:  # noqa: BLE001 - Slack down, token refused, WebSocket error: serve on, retry
                log.error("Slack Socket Mode connection failed (%s); retrying in %gs", exc, retry_seconds)
                stopped.wait(retry_seconds)

    def start() -> None:
        threading.Thread(target=connect, name="hitl-socket-mode", daemon=True).start()

    def stop() -> None:
        stopped.set()
        handler.close()  # type: ignore[no-untyped-call]

    runtime.add_worker("slack-socket-mode", start, stop)


def mount(fastapi_app: FastAPI, runtime: Runtime) -> None:
    """Serve events, interactivity and slash commands at `POST /slack/events`."""
    handler = ThreadedSlackRequestHandler(bolt_app(runtime), secret(runtime.settings.slack_signing_secret))

    @fastapi_app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)
