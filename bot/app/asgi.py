"""The ASGI application: ingest API, Slack endpoint, and the background workers' lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.app import metrics
from bot.app.runtime import Runtime
from bot.app.workers import install_workers
from bot.callbacks.hosts import CallbackNotAllowed
from handlers.http import outcomes
from handlers.http.freshdesk_webhook import build_router as build_freshdesk_router
from handlers.http.ingest import build_router, install_error_handlers
from handlers.http.intercom_webhook import build_router as build_intercom_router
from handlers.http.openapi import install_openapi
from handlers.http.zendesk_webhook import build_router as build_zendesk_router
from handlers.slack import mount as mount_slack


def create_app(runtime: Runtime) -> FastAPI:
    """One app for everything `hitl serve` answers; workers start and stop with it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="hitl",
        version="0.1.0",
        summary="Humans in charge of AI customer-support replies",
        description="Submit AI drafts; they are routed by policy, reviewed in Slack and written back to the helpdesk.",
        lifespan=lifespan,
    )
    install_workers(runtime)
    app.state.runtime = runtime
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(build_router(runtime))
    if runtime.settings.slack_signing_secret and runtime.settings.slack_bot_token:
        mount_slack(app, runtime)
    app.include_router(build_zendesk_router(runtime))
    app.include_router(build_freshdesk_router(runtime))
    app.include_router(build_intercom_router(runtime))
    app.add_exception_handler(CallbackNotAllowed, _callback_refused)
    metrics.mount(app, runtime)
    app.include_router(outcomes.build_router(runtime))
    return app


async def _callback_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A draft whose callback_url cannot be used: 422 naming the field, like every other bad field."""
    field = getattr(exc, "field", "callback_url")
    message = f"{field}: {exc}"
    return JSONResponse(
        {"error": "invalid_fields", "message": message, "fields": [{"field": field, "message": str(exc)}]},
        status_code=422,
    )
