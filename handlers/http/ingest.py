"""HTTP routes of the ingest API: POST /v1/drafts, GET /v1/reviews/{id}, GET /healthz."""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.ai.assist import get_llm, prepare_draft
from bot.app.runtime import Runtime
from bot.review.ingest import MAX_BODY_BYTES, Assist, DraftIn, ingest_draft
from storage import repo
from storage.db import current_revision, session_scope
from storage.models import Review


class ReviewCreated(BaseModel):
    id: str
    route: str
    tier: str
    reasons: list[dict[str, str]]
    sla_due_at: datetime | None
    status: str


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


def _parse_draft(body: bytes) -> DraftIn:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_json", "the body must be a JSON object")
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

    def store(draft: DraftIn, assist: Assist | None = None) -> tuple[dict[str, Any], bool]:
        try:
            with session_scope(runtime.engine) as session:
                result = ingest_draft(
                    session=session,
                    draft=draft,
                    policy=runtime.policy,
                    now=runtime.clock.now(),
                    assist=assist,
                )
                return _public(result.review), result.created
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
        responses={
            200: {"description": "Already received (same idempotency key, or same ticket and draft)"},
            401: {"description": "Missing or wrong bearer token"},
            413: {"description": "Body over 256 KiB"},
            422: {"description": "Invalid JSON or fields; `fields` names each"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": DraftIn.model_json_schema(ref_template="#/components/schemas/{model}")
                    }
                },
            }
        },
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
        draft, assist = await run_in_threadpool(prepare_draft, runtime, draft)
        body, created = await run_in_threadpool(store, draft, assist)
        return JSONResponse(body, status_code=201 if created else 200)

    @router.get(
        "/v1/reviews/{review_id}",
        response_model=ReviewPublic,
        tags=["ingest"],
        summary="A review's route, state and decision",
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

    @router.get("/healthz", tags=["ops"], summary="Liveness and database check")
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


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON with a message; nothing a client sends produces a 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, _exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            {"error": "unavailable", "message": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
