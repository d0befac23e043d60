"""POST /v1/webhooks/zendesk: a Zendesk ticket was created or updated; draft a reply with the model and route it.

For helpdesks without an AI pipeline. Zendesk signs each webhook: `X-Zendesk-Webhook-Signature` is
base64(HMAC-SHA256(secret, timestamp + body)) with the timestamp in `X-Zendesk-Webhook-Signature-Timestamp`.
The body is the JSON a Zendesk trigger sends; docs/ai-assist.md has the template to paste.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ai.assist import Ticket
from bot.app.runtime import Runtime
from handlers.http.helpdesk_drafting import draft_response
from handlers.http.ingest import ApiError, _read_limited, check_storable
from handlers.http.models import ReviewCreated
from handlers.http.openapi import json_body, webhook_responses

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
MAX_SKEW = timedelta(minutes=5)
IGNORED_STATUSES = ("solved", "closed")


class _In(BaseModel):
    # Zendesk placeholders render ids as numbers or strings depending on the template's quotes.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, coerce_numbers_to_str=True)


class ZendeskRequester(_In):
    id: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)


class ZendeskTicket(_In):
    id: str = Field(min_length=1, max_length=100, description="{{ticket.id}}")
    subject: str | None = Field(None, max_length=1000, description="{{ticket.title}}")
    description: str | None = Field(None, max_length=100_000, description="{{ticket.description}}")
    latest_comment: str | None = Field(
        None, max_length=100_000, description="{{ticket.latest_public_comment}}"
    )
    status: str | None = Field(None, max_length=32, description="{{ticket.status}}")
    updated_at: str = Field(min_length=1, max_length=64, description="{{ticket.updated_at_with_timestamp}}")
    url: str | None = Field(None, max_length=2000, description="{{ticket.link}}")
    requester: ZendeskRequester | None = None
    updated_by_id: str | None = Field(None, max_length=100, description="{{current_user.id}}")


class ZendeskWebhookIn(_In):
    """The body the Zendesk trigger sends (see docs/ai-assist.md)."""

    ticket: ZendeskTicket


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's webhook signature: base64(HMAC-SHA256(secret, timestamp + body))."""
    return base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()


def _parse_timestamp(value: str) -> datetime | None:
    v = value.strip()
    try:
        if re.fullmatch(r"\d{9,11}(\.\d+)?", v):
            return datetime.fromtimestamp(float(v), UTC)
        parsed = datetime.fromisoformat(v)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def verify(*, secret: str, headers: Any, body: bytes, now: datetime) -> None:
    """Raise a 401 ApiError unless the request is signed with `secret` within the last 5 minutes."""
    sig, ts = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not sig or not ts:
        raise ApiError(401, "unauthorized", f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    if not hmac.compare_digest(signature(secret, ts, body).encode(), sig.strip().encode()):
        raise ApiError(401, "unauthorized", "the webhook signature does not match ZENDESK_WEBHOOK_SECRET")
    when = _parse_timestamp(ts)
    if when is None or abs(now - when) > MAX_SKEW:
        raise ApiError(
            401, "unauthorized", "the webhook timestamp is missing, malformed or more than 5 minutes off"
        )


_COMMENT_HEADER = re.compile(
    r"\A\s*-{5,}\s*\n+(?:[^\n]{1,200}, [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}[^\n]*\n+)?"
)


def comment_text(ticket: ZendeskTicket) -> str:
    """The customer's latest words: the latest public comment without Zendesk's separator and author line."""
    text = _COMMENT_HEADER.sub("", ticket.latest_comment or "").strip()
    return text or (ticket.description or "").strip()


def _ticket_url(url: str | None) -> str | None:
    if not url:
        return None
    return url if re.match(r"^https?://", url) else f"https://{url}"


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/webhooks/zendesk",
        status_code=201,
        response_model=ReviewCreated,
        tags=["helpdesk webhooks"],
        summary="Zendesk ticket created or updated: draft a reply with the model and route it",
        response_description="Drafted and routed",
        responses=webhook_responses(
            unauthorized="Missing, wrong or stale signature",
            invalid="Not the expected JSON (`invalid_payload`)",
            not_configured="Webhook or model not configured (ZENDESK_WEBHOOK_SECRET, OPENAI_API_KEY)",
        ),
        openapi_extra=json_body(ZendeskWebhookIn),
    )
    async def zendesk_webhook(request: Request) -> JSONResponse:
        secret = runtime.settings.zendesk_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise ApiError(
                503, "not_configured", "the Zendesk webhook is off: ZENDESK_WEBHOOK_SECRET is not set"
            )
        body = await _read_limited(request)
        verify(secret=secret.get_secret_value(), headers=request.headers, body=body, now=runtime.clock.now())
        try:
            data = json.loads(body)
            check_storable(data)
            t = ZendeskWebhookIn.model_validate(data).ticket
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            raise ApiError(
                422, "invalid_payload", f"not the expected Zendesk webhook JSON: {str(exc)[:500]}"
            ) from exc
        status = (t.status or "").lower()
        requester_id = t.requester.id if t.requester else None
        if status in IGNORED_STATUSES:
            return JSONResponse({"status": "ignored", "reason": f"ticket is {status}"})
        if status != "new" and t.updated_by_id and requester_id and t.updated_by_id != requester_id:
            return JSONResponse({"status": "ignored", "reason": "the update was not made by the requester"})
        message = comment_text(t)
        if not message:
            return JSONResponse({"status": "ignored", "reason": "no customer text in the ticket"})
        ticket = Ticket(
            ticket_id=t.id,
            message=message,
            updated_at=t.updated_at,
            subject=t.subject,
            requester_name=t.requester.name if t.requester else None,
            requester_email=t.requester.email if t.requester else None,
            requester_id=requester_id,
            url=_ticket_url(t.url),
        )
        # The drafting path every helpdesk webhook shares (handlers/http/helpdesk_drafting.py).
        return await draft_response(runtime, ticket, source="zendesk", stamp=t.updated_at)

    return router
