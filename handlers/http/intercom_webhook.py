"""POST /v1/webhooks/intercom: a customer started or replied to an Intercom conversation; draft and route.

Subscribe the app's webhook to `conversation.user.created` and `conversation.user.replied`. Intercom signs
each notification: `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body, keyed with the app's client
secret>` (INTERCOM_CLIENT_SECRET). Other topics, and Intercom's `ping`, are answered 200 and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ai.assist import Ticket
from bot.app.runtime import Runtime
from bot.helpdesk.base import html_to_text
from handlers.http.helpdesk_drafting import draft_response
from handlers.http.ingest import ApiError, _read_limited, check_storable
from handlers.http.models import ReviewCreated
from handlers.http.openapi import webhook_responses

SIGNATURE_HEADER = "X-Hub-Signature"
TOPICS = ("conversation.user.created", "conversation.user.replied")
CUSTOMER_TYPES = ("user", "lead", "contact")


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Author(_In):
    type: str | None = None
    id: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)


class Part(_In):
    id: str = Field(min_length=1, max_length=100)
    part_type: str | None = None
    body: str | None = Field(None, max_length=100_000)
    created_at: int | None = None
    author: Author | None = None


class Source(_In):
    id: str = Field(min_length=1, max_length=100)
    subject: str | None = Field(None, max_length=1000)
    body: str | None = Field(None, max_length=100_000)
    author: Author | None = None


class PartList(_In):
    conversation_parts: list[Part] = Field(default_factory=list)


class Conversation(_In):
    id: str = Field(min_length=1, max_length=100, pattern=r"^\d+$")
    created_at: int | None = None
    updated_at: int | None = None
    title: str | None = Field(None, max_length=1000)
    state: str | None = None
    source: Source
    conversation_parts: PartList = Field(default_factory=PartList)


class Data(_In):
    item: Conversation


class IntercomNotification(_In):
    """Intercom's webhook envelope for a conversation topic."""

    type: str | None = None
    topic: str
    id: str | None = None
    app_id: str | None = None
    created_at: int | None = None
    data: Data


def signature(secret: str, body: bytes) -> str:
    """Intercom's `X-Hub-Signature` value for a raw body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify(*, secret: str, given: str | None, body: bytes) -> None:
    """401 unless the body is signed with the app's client secret."""
    if not given:
        raise ApiError(401, "unauthorized", f"missing {SIGNATURE_HEADER}")
    if not hmac.compare_digest(signature(secret, body).encode(), given.strip().encode()):
        raise ApiError(401, "unauthorized", f"{SIGNATURE_HEADER} does not match INTERCOM_CLIENT_SECRET")


def customer_turn(conversation: Conversation) -> tuple[str, str, int | None, Author | None]:
    """(part id, plain text, created_at, author) of the customer's latest words in the conversation."""
    for part in reversed(conversation.conversation_parts.conversation_parts):
        author_type = part.author.type if part.author else None
        if part.part_type == "comment" and author_type in CUSTOMER_TYPES and part.body:
            return part.id, html_to_text(part.body), part.created_at, part.author
    source = conversation.source
    return source.id, html_to_text(source.body or ""), conversation.created_at, source.author


def _ticket(n: IntercomNotification) -> tuple[Ticket, str | None]:
    c = n.data.item
    part_id, message, at, author = customer_turn(c)
    app = n.app_id or "_"
    ticket = Ticket(
        ticket_id=c.id,
        message=message,
        updated_at=f"part-{part_id}",
        subject=c.source.subject or c.title,
        requester_name=author.name if author else None,
        requester_email=author.email if author else None,
        requester_id=author.id if author else None,
        url=f"https://app.intercom.com/a/inbox/{app}/inbox/conversation/{c.id}",
    )
    # The customer's message time is the stamp: a comment after it means someone answered meanwhile.
    return ticket, str(at) if at is not None else None


def _parse(body: bytes) -> IntercomNotification | None:
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_payload", f"not JSON: {str(exc)[:300]}") from exc
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_payload", "expected an Intercom notification object")
    if raw.get("topic") not in TOPICS:
        return None
    check_storable(raw)
    try:
        return IntercomNotification.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_payload", f"not the expected Intercom conversation notification: {str(exc)[:500]}"
        ) from exc


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/webhooks/intercom",
        status_code=201,
        response_model=ReviewCreated,
        tags=["helpdesk webhooks"],
        summary="Intercom conversation started or replied to by a customer: draft a reply and route it",
        responses=webhook_responses(
            unauthorized=f"Missing or wrong {SIGNATURE_HEADER}",
            invalid="Not an Intercom conversation notification (`invalid_payload`)",
            not_configured="Webhook or model not configured (INTERCOM_CLIENT_SECRET, OPENAI_API_KEY)",
        ),
    )
    async def intercom_webhook(request: Request) -> JSONResponse:
        secret = runtime.settings.intercom_client_secret
        if secret is None or not secret.get_secret_value():
            raise ApiError(
                503, "not_configured", "the Intercom webhook is off: INTERCOM_CLIENT_SECRET is not set"
            )
        body = await _read_limited(request)
        verify(secret=secret.get_secret_value(), given=request.headers.get(SIGNATURE_HEADER), body=body)
        notification = _parse(body)
        if notification is None:
            return JSONResponse({"status": "ignored", "reason": "not a customer conversation topic"})
        ticket, stamp = _ticket(notification)
        if not ticket.message:
            return JSONResponse({"status": "ignored", "reason": "no customer text in the conversation"})
        return await draft_response(runtime, ticket, source="intercom", stamp=stamp)

    return router
