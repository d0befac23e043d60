"""POST /v1/outcomes: customer outcomes (CSAT, reopened, resolved) for the oversight review."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from bot.app.runtime import Runtime
from bot.reporting.outcomes import NoReview, OutcomeIn, Recorded, existing_outcome, record_outcome
from handlers.http.ingest import ApiError, _check_token, _read_limited, check_storable
from handlers.http.openapi import OTHER_CLIENT_ERROR, UNAUTHORIZED, UNAVAILABLE, error, json_body
from storage.db import session_scope


class OutcomePublic(BaseModel):
    """The stored outcome and the review and decision it was linked to."""

    id: int
    ticket_id: str
    kind: str
    value: str
    score: int | None
    satisfied: bool | None
    at: datetime
    review_id: str
    decision_id: int | None
    interaction_type: str
    decision: str | None
    status: Literal["created", "updated", "unchanged"]


def _parse(body: bytes) -> OutcomeIn:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_json", "the body must be a JSON object")
    check_storable(data)
    try:
        return OutcomeIn.model_validate(data)
    except ValidationError as exc:
        fields = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "(body)",
                "message": e["msg"].removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        raise ApiError(422, "invalid_fields", summary, fields=fields) from exc


def _public(recorded: Recorded) -> dict[str, Any]:
    row = recorded.outcome
    data = {name: getattr(row, name) for name in OutcomePublic.model_fields if name != "status"}
    return OutcomePublic.model_validate({**data, "status": recorded.status}).model_dump(mode="json")


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    def store(outcome: OutcomeIn) -> Recorded:
        try:
            with session_scope(runtime.engine) as session:
                return record_outcome(session=session, outcome=outcome, now=runtime.clock.now())
        except NoReview as exc:
            raise ApiError(404, "unknown_ticket", str(exc)) from exc
        except IntegrityError:
            # Another request stored this (ticket, kind) first: answer with its row.
            with session_scope(runtime.engine, readonly=True) as session:
                row = existing_outcome(session=session, ticket_id=outcome.ticket_id, kind=outcome.kind)
                if row is None:
                    raise
                return Recorded(row, "unchanged")

    @router.post(
        "/v1/outcomes",
        status_code=201,
        response_model=OutcomePublic,
        tags=["outcomes"],
        summary="Report a customer outcome (CSAT, reopened, resolved) of a ticket",
        description=(
            "Linked to the latest draft of the ticket received at or before `at`, and to its decision. "
            "Idempotent per ticket and kind: the first report answers 201, a repeat 200; a later report "
            "of the same kind with another value replaces the earlier one (`status: updated`)."
        ),
        responses={
            200: {
                "description": "Already received (same ticket and kind); `status` says if it changed",
                "model": OutcomePublic,
            },
            401: UNAUTHORIZED,
            404: error("No draft of this ticket was received at or before `at` (`unknown_ticket`)"),
            413: error("Body over 256 KiB"),
            422: error("Invalid JSON or fields (`invalid_json`, `invalid_fields`); `fields` names each"),
            503: UNAVAILABLE,
            "4XX": OTHER_CLIENT_ERROR,
        },
        openapi_extra=json_body(OutcomeIn, bearer=True),
    )
    async def report_outcome(request: Request) -> JSONResponse:
        _check_token(request, runtime)
        outcome = _parse(await _read_limited(request))
        recorded = await run_in_threadpool(store, outcome)
        return JSONResponse(_public(recorded), status_code=201 if recorded.status == "created" else 200)

    return router
