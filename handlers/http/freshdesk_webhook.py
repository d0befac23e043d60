"""POST /v1/webhooks/freshdesk: a Freshdesk automation rule saw a new ticket or a customer reply; draft and route.

Freshdesk's "Trigger webhook" action does not sign requests, but it sends custom headers: the rule adds
`X-Hitl-Secret: <FRESHDESK_WEBHOOK_SECRET>`, compared in constant time. The body is the JSON template in
docs/helpdesk.md (Freshdesk placeholders such as `{{ticket.id}}`, `{{ticket.latest_public_comment}}`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ai.assist import Ticket
from bot.app.runtime import Runtime
from bot.helpdesk.base import html_to_text
from handlers.http.helpdesk_drafting import draft_response
from handlers.http.ingest import ApiError, _read_limited, check_storable
from handlers.http.models import ReviewCreated
from handlers.http.openapi import json_body, webhook_responses

SECRET_HEADER = "X-Hitl-Secret"
IGNORED_STATUSES = ("resolved", "closed", "4", "5")


class _In(BaseModel):
    # Placeholders render as text; ids may arrive as numbers when the template leaves out the quotes.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, coerce_numbers_to_str=True)


class FreshdeskRequester(_In):
    id: str | None = Field(None, max_length=100, description="{{ticket.requester.id}}")
    name: str | None = Field(None, max_length=200, description="{{ticket.requester.name}}")
    email: str | None = Field(None, max_length=320, description="{{ticket.requester.email}}")


class FreshdeskTicket(_In):
    id: str = Field(min_length=1, max_length=100, pattern=r"^\d+$", description="{{ticket.id}}")
    subject: str | None = Field(None, max_length=1000, description="{{ticket.subject}}")
    description: str | None = Field(None, max_length=100_000, description="{{ticket.description}}")
    latest_comment: str | None = Field(
        None, max_length=100_000, description="{{ticket.latest_public_comment}}"
    )
    status: str | None = Field(None, max_length=64, description="{{ticket.status}}")
    url: str | None = Field(None, max_length=2000, description="{{ticket.url}}")
    updated_at: str | None = Field(
        None, max_length=64, description="the ticket's updated_at, when the rule can send it"
    )
    requester: FreshdeskRequester | None = None


class FreshdeskWebhookIn(_In):
    """The body the Freshdesk automation rule sends (template in docs/helpdesk.md)."""

    ticket: FreshdeskTicket


def verify(*, secret: str, given: str | None) -> None:
    """401 unless the request carries the shared secret."""
    if not given:
        raise ApiError(401, "unauthorized", f"missing {SECRET_HEADER}")
    if not hmac.compare_digest(given.strip().encode(), secret.encode()):
        raise ApiError(401, "unauthorized", f"{SECRET_HEADER} does not match FRESHDESK_WEBHOOK_SECRET")


def customer_text(ticket: FreshdeskTicket) -> str:
    """The customer's latest words: the latest public comment, else the description, as plain text."""
    for raw in (ticket.latest_comment, ticket.description):
        text = html_to_text(raw) if raw and re.search(r"<[a-zA-Z/][^>]*>", raw) else (raw or "").strip()
        if text:
            return text
    return ""


def _ticket(t: FreshdeskTicket, message: str) -> Ticket:
    # Without updated_at the update is told apart by its text (a repeat delivery drafts nothing new).
    version = t.updated_at or "text-" + hashlib.sha256(message.encode()).hexdigest()[:16]
    url = t.url if not t.url or re.match(r"^https?://", t.url) else f"https://{t.url}"
    return Ticket(
        ticket_id=t.id,
        message=message,
        updated_at=version,
        subject=t.subject,
        requester_name=t.requester.name if t.requester else None,
        requester_email=t.requester.email if t.requester else None,
        requester_id=t.requester.id if t.requester else None,
        url=url,
    )


def _parse(body: bytes) -> FreshdeskTicket:
    try:
        data = json.loads(body)
        check_storable(data)
        return FreshdeskWebhookIn.model_validate(data).ticket
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ApiError(
            422, "invalid_payload", f"not the expected Freshdesk webhook JSON: {str(exc)[:500]}"
        ) from exc


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/webhooks/freshdesk",
        status_code=201,
        response_model=ReviewCreated,
        tags=["helpdesk webhooks"],
        summary="Freshdesk ticket created or replied to: draft a reply with the model and route it",
        responses=webhook_responses(
            unauthorized=f"Missing or wrong {SECRET_HEADER}",
            invalid="Not the expected JSON (`invalid_payload`)",
            not_configured="Webhook or model not configured (FRESHDESK_WEBHOOK_SECRET, OPENAI_API_KEY)",
        ),
        openapi_extra=json_body(FreshdeskWebhookIn),
    )
    async def freshdesk_webhook(request: Request) -> JSONResponse:
        secret = runtime.settings.freshdesk_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise ApiError(
                503, "not_configured", "the Freshdesk webhook is off: FRESHDESK_WEBHOOK_SECRET is not set"
            )
        verify(secret=secret.get_secret_value(), given=request.headers.get(SECRET_HEADER))
        t = _parse(await _read_limited(request))
        status = (t.status or "").lower()
        if status in IGNORED_STATUSES:
            return JSONResponse({"status": "ignored", "reason": f"ticket is {status}"})
        message = customer_text(t)
        if not message:
            return JSONResponse({"status": "ignored", "reason": "no customer text in the ticket"})
        return await draft_response(runtime, _ticket(t, message), source="freshdesk", stamp=t.updated_at)

    return router
