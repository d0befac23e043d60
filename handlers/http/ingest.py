"""HTTP routes of the ingest API: POST /v1/drafts, GET /v1/reviews/{id}, GET /healthz."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.ai.assist import get_llm, prepare_draft
from bot.app.runtime import Runtime
from bot.review.ingest import MAX_BODY_BYTES, Assist, DraftIn, ingest_draft
from handlers.http.models import ReviewCreated
from handlers.http.openapi import (
    NEEDS_BEARER,
    OTHER_CLIENT_ERROR,
    UNAUTHORIZED,
    UNAVAILABLE,
    ErrorOut,
    error,
    json_body,
)
from storage import repo
from storage.db import current_revision, session_scope
from storage.fastpath import once_more_on_disconnect, reads_then_write
from storage.models import Review


class ReviewPublic(ReviewCreated):
    ticket_id: str
    interaction_type: str
    confidence: float
    created_at: datetime
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    final_text: str | None
    assignee: str | None
    slack_channel: str | None
    slack_ts: str | None
    helpdesk_state: str | None


class Health(BaseModel):
    status: str = Field(description="`ok`, or `unavailable` with HTTP 503")
    database: str = Field(description="the database dialect, or `unreachable`")
    schema_: str | None = Field(None, alias="schema", description="the migration the database is at")
    instance: str | None = None


class ApiError(Exception):
    """An error answered as JSON `{"error": code, "message": ...}`."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        {"error": exc.code, "message": exc.message, **exc.extra}, status_code=exc.status, headers=headers
    )


def _check_token(request: Request, runtime: Runtime) -> None:
    expected = runtime.settings.ingest_token
    if expected is None or not expected.get_secret_value():
        raise ApiError(
            401, "unauthorized", "the ingest API is disabled: HITL_INGEST_TOKEN is not set on the server"
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise ApiError(
            401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <HITL_INGEST_TOKEN>)"
        )


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(
            413,
            "too_large",
            f"the body is {int(declared)} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB)",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"the body is over the {MAX_BODY_BYTES}-byte (256 KiB) limit")
        chunks.append(chunk)
    return b"".join(chunks)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(data: Any, path: str = "") -> Iterator[str]:
    """Paths of strings holding a NUL or a lone surrogate (`\\u0000`, `\\ud800`): no database stores them."""
    if isinstance(data, str):
        if _UNSTORABLE.search(data):
            yield path or "(body)"
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _unstorable(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _unstorable(value, f"{path}.{i}" if path else str(i))


def check_storable(data: Any) -> None:
    """422 `invalid_fields` naming each string that holds a NUL or a lone surrogate."""
    bad = list(_unstorable(data))[:20]
    if bad:
        fields = [{"field": f, "message": "NUL characters and lone surrogates are not allowed"} for f in bad]
        raise ApiError(422, "invalid_fields", f"{', '.join(bad)}: {fields[0]['message']}", fields=fields)


def load_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 422 `invalid_json`."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_json", "the body must be a JSON object")
    return data


def _parse_draft(body: bytes) -> DraftIn:
    data = load_json_object(body)
    check_storable(data)
    try:
        return DraftIn.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        raise ApiError(422, "invalid_fields", summary, fields=fields) from exc


def _public(review: Review, model: type[ReviewCreated] = ReviewCreated) -> dict[str, Any]:
    data = {name: getattr(review, name) for name in model.model_fields}
    return model.model_validate(data).model_dump(mode="json")


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    def create(draft: DraftIn, assist: Assist | None) -> tuple[dict[str, Any], bool]:
        # SQLite: the dedupe and the history are read outside its write lock (in-process, no round trip).
        # PostgreSQL: the INSERT … ON CONFLICT is the dedupe; a key seen before comes back through store().
        with reads_then_write(runtime.engine) as (session, reads):
            result = ingest_draft(
                session=session,
                reads=reads,
                lookup_first=reads is not None,
                draft=draft,
                policy=runtime.policy,
                now=runtime.clock.now(),
                assist=assist,
                settings=runtime.settings,
            )
        return _public(result.review), result.created  # after COMMIT: outside SQLite's write lock

    def store(draft: DraftIn, assist: Assist | None = None) -> tuple[dict[str, Any], bool]:
        try:
            return once_more_on_disconnect(lambda: create(draft, assist))
        except IntegrityError:
            # Another request stored the same key first (two replicas racing): answer with its review.
            with session_scope(runtime.engine, readonly=True) as session:
                existing = repo.review_by_key(session=session, idempotency_key=draft.key())
                if existing is None:
                    raise
                return _public(existing), False

    @router.post(
        "/v1/drafts",
        status_code=201,
        response_model=ReviewCreated,
        tags=["ingest"],
        summary="Submit an AI draft for routing and review",
        response_description="Stored and routed",
        responses={
            200: {
                "description": "Already received (same idempotency key, or same ticket and draft)",
                "model": ReviewCreated,
            },
            401: UNAUTHORIZED,
            413: error("Body over 256 KiB"),
            422: error("Invalid JSON or fields (`invalid_json`, `invalid_fields`); `fields` names each"),
            503: UNAVAILABLE,
            "4XX": OTHER_CLIENT_ERROR,
        },
        openapi_extra=json_body(DraftIn, bearer=True),
    )
    async def submit_draft(request: Request) -> JSONResponse:
        _check_token(request, runtime)
        draft = _parse_draft(await _read_limited(request))
        if draft.interaction_type is None and get_llm(runtime) is None:
            raise ApiError(
                422,
                "invalid_fields",
                "interaction_type: required (no model is configured to classify it)",
                fields=[{"field": "interaction_type", "message": "Field required"}],
            )
        body, created = await run_in_threadpool(lambda: store(*prepare_draft(runtime, draft)))
        return JSONResponse(body, status_code=201 if created else 200)

    @router.get(
        "/v1/reviews/{review_id}",
        response_model=ReviewPublic,
        tags=["ingest"],
        summary="A review's route, state and decision",
        responses={
            401: UNAUTHORIZED,
            404: error("No review with that id (`not_found`)"),
            503: UNAVAILABLE,
            "4XX": OTHER_CLIENT_ERROR,
        },
        openapi_extra=NEEDS_BEARER,
    )
    async def get_review(review_id: str, request: Request) -> JSONResponse:
        _check_token(request, runtime)

        def load() -> dict[str, Any] | None:
            with session_scope(runtime.engine, readonly=True) as session:
                review = repo.get_review(session=session, review_id=review_id[:64])
                return _public(review, ReviewPublic) if review else None

        found = await run_in_threadpool(load)
        if found is None:
            raise ApiError(404, "not_found", f"no review with id {review_id[:64]!r}")
        return JSONResponse(found)

    @router.get(
        "/healthz",
        response_model=Health,
        tags=["ops"],
        summary="Liveness and database check",
        responses={503: {"description": "The database is unreachable", "model": Health}},
    )
    async def healthz() -> JSONResponse:
        def probe() -> str | None:
            with runtime.engine.connect() as conn:
                conn.execute(text("select 1"))
            return current_revision(runtime.engine)

        try:
            revision = await run_in_threadpool(probe)
        except OperationalError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "database": runtime.engine.dialect.name,
                "schema": revision,
                "instance": runtime.instance_id,
            }
        )

    return router


def _status_code_name(status: int) -> str:
    """`not_found` for 404, `method_not_allowed` for 405: the error code of a plain HTTP error."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON with a message; nothing a client sends produces a 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods answer in the same shape as every other error.
        return JSONResponse(
            ErrorOut(error=_status_code_name(exc.status_code), message=str(exc.detail)).model_dump(
                exclude_none=True
            ),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, _exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            {"error": "unavailable", "message": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
