"""Customer outcomes (CSAT, reopened, resolved) for the oversight review.

POST /v1/outcomes (bearer token), and POST /v1/webhooks/zendesk/outcomes: Zendesk triggers on a
satisfaction rating, a reopen or a solve, signed like the drafting webhook (docs/oversight.md has the
trigger bodies to paste).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from bot.app.runtime import Runtime
from bot.reporting.outcomes import (
    NoReview,
    OutcomeIn,
    OutcomeKind,
    Recorded,
    existing_outcome,
    record_outcome,
)
from handlers.http.ingest import ApiError, _check_token, _read_limited, check_storable
from handlers.http.openapi import (
    OTHER_CLIENT_ERROR,
    UNAUTHORIZED,
    UNAVAILABLE,
    WebhookIgnored,
    error,
    json_body,
)
from handlers.http.zendesk_webhook import verify
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


class ZendeskOutcomeTicket(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: str = Field(min_length=1, max_length=100, description="{{ticket.id}}")
    satisfaction: str | None = Field(None, max_length=64, description="{{satisfaction.current_rating}}")
    updated_at: str = Field(min_length=1, max_length=64, description="{{ticket.updated_at_with_timestamp}}")


class ZendeskOutcomeIn(BaseModel):
    """What a Zendesk trigger sends when a ticket is rated, reopened or solved."""

    model_config = ConfigDict(extra="ignore")

    event: Literal["satisfaction_rating", "reopened", "solved"]
    ticket: ZendeskOutcomeTicket


ZENDESK_KINDS: dict[str, OutcomeKind] = {
    "satisfaction_rating": "csat",
    "reopened": "reopened",
    "solved": "resolved",
}


def _zendesk_time(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ApiError(
            422, "invalid_payload", f"ticket.updated_at: not an ISO 8601 time: {value[:64]!r}"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def zendesk_outcome(body: bytes) -> OutcomeIn | None:
    """The outcome a Zendesk trigger reports; None for a rating that is not Good or Bad (offered, unoffered)."""
    try:
        data = ZendeskOutcomeIn.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_payload", f"not the expected Zendesk outcome JSON: {str(exc)[:500]}"
        ) from exc
    value: str | None = None
    if data.event == "satisfaction_rating":
        rating = (data.ticket.satisfaction or "").lower()
        value = "good" if rating.startswith("good") else "bad" if rating.startswith("bad") else None
        if value is None:
            return None
    return OutcomeIn(
        ticket_id=data.ticket.id,
        kind=ZENDESK_KINDS[data.event],
        value=value,
        at=_zendesk_time(data.ticket.updated_at),
    )


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

    @router.post(
        "/v1/webhooks/zendesk/outcomes",
        status_code=201,
        response_model=OutcomePublic,
        tags=["helpdesk webhooks"],
        summary="Zendesk ticket rated (Good/Bad), reopened or solved: record the outcome",
        description="Signed like /v1/webhooks/zendesk; stored and linked exactly as POST /v1/outcomes.",
        responses={
            200: {
                "description": "Already received, or ignored (a rating that is neither Good nor Bad)",
                "model": OutcomePublic | WebhookIgnored,
            },
            401: error("Missing, wrong or stale signature"),
            404: error("No draft of this ticket was received by then (`unknown_ticket`)"),
            413: error("Body over 256 KiB"),
            422: error("Not the expected JSON (`invalid_payload`)"),
            503: error("ZENDESK_WEBHOOK_SECRET is not set, or the database is unavailable"),
            "4XX": OTHER_CLIENT_ERROR,
        },
        openapi_extra=json_body(ZendeskOutcomeIn),
    )
    async def zendesk_outcome_webhook(request: Request) -> JSONResponse:
        secret = runtime.settings.zendesk_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise ApiError(
                503, "not_configured", "the Zendesk webhook is off: ZENDESK_WEBHOOK_SECRET is not set"
            )
        body = await _read_limited(request)
        verify(secret=secret.get_secret_value(), headers=request.headers, body=body, now=runtime.clock.now())
        outcome = zendesk_outcome(body)
        if outcome is None:
            return JSONResponse({"status": "ignored", "reason": "the rating is neither Good nor Bad"})
        recorded = await run_in_threadpool(store, outcome)
        return JSONResponse(_public(recorded), status_code=201 if recorded.status == "created" else 200)

    return router
