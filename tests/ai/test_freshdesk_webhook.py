"""POST /v1/webhooks/freshdesk: the automation rule's shared secret, drafted by the model, routed like any draft."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.app.settings import Settings
from handlers.http.freshdesk_webhook import SECRET_HEADER
from sandbox.openai_standin import OpenAIStandin
from tests.conftest import Service

from .conftest import load_review

SECRET = "fd-webhook-secret"


def payload(
    ticket_id: int | str = 3101, updated_at: str | None = "2026-11-16T09:58:00Z", **ticket: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ticket_id,
        "subject": "Password reset email not arriving",
        "description": "<div>I clicked forgot password twice but no email came.</div>",
        "latest_comment": "<div>I clicked forgot password twice but no email came. Call me on 614-555-0183.</div>",
        "status": "Open",
        "url": "northwind.freshdesk.com/helpdesk/tickets/3101",
        "requester": {"id": 901, "name": "Kenji Watanabe", "email": "kenji.watanabe@example.com"},
    }
    if updated_at is not None:
        body["updated_at"] = updated_at
    body.update(ticket)
    return {"ticket": body}


def send(svc: Service, body: dict[str, Any] | bytes, *, secret: str | None = SECRET) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return httpx.post(f"{svc.url}/v1/webhooks/freshdesk", content=raw, headers=headers, timeout=30)


@pytest.fixture
def svc(start_service: Callable[..., Service], ai_settings: Callable[..., Settings]) -> Service:
    return start_service(ai_settings(FRESHDESK_WEBHOOK_SECRET=SECRET))


def test_a_new_ticket_from_the_rule_becomes_a_drafted_review(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    resp = send(svc, payload())
    assert resp.status_code == 201, resp.text
    review = load_review(svc.runtime.engine, resp.json()["id"])
    assert review.ticket_id == "3101" and review.interaction_type == "password_reset"
    assert review.customer_message.startswith("I clicked forgot password")  # HTML turned into text
    assert review.draft.startswith("Hi Kenji,") and 0 < review.confidence <= 0.9
    assert review.idempotency_key == "freshdesk:3101:2026-11-16T09:58:00Z"
    assert review.extra["ticket_updated_at"] == "2026-11-16T09:58:00Z"  # the write-back's conflict stamp
    assert review.ticket_url == "https://northwind.freshdesk.com/helpdesk/tickets/3101"
    for req in openai_standin.requests():
        assert "614-555-0183" not in req["user"] and "kenji.watanabe@example.com" not in req["user"]


def test_the_same_delivery_twice_drafts_once_even_without_updated_at(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    first = send(svc, payload(updated_at=None))
    calls = len(openai_standin.requests())
    again = send(svc, payload(updated_at=None))
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert len(openai_standin.requests()) == calls
    review = load_review(svc.runtime.engine, first.json()["id"])
    assert review.extra.get("ticket_updated_at") is None  # the write-back reads the ticket instead
    later = send(svc, payload(updated_at=None, latest_comment="Still nothing, any update?"))
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
def test_a_missing_or_wrong_secret_is_401(svc: Service, secret: str | None) -> None:
    resp = send(svc, payload(), secret=secret)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert SECRET_HEADER in resp.json()["message"]


def test_an_oversized_or_unexpected_body_is_refused_with_a_reason(svc: Service) -> None:
    assert send(svc, b"x" * (300 * 1024)).status_code == 413
    bad = send(svc, {"ticket": {"subject": "no id"}})
    assert bad.status_code == 422 and "Freshdesk webhook JSON" in bad.json()["message"]
    assert send(svc, payload(ticket_id="{{ticket.id}}")).status_code == 422  # placeholder left unrendered
    assert send(svc, b"not json").status_code == 422


def test_resolved_tickets_and_empty_ones_are_ignored(svc: Service, openai_standin: OpenAIStandin) -> None:
    resolved = send(svc, payload(status="Resolved"))
    empty = send(svc, payload(description="", latest_comment="<div> </div>"))
    assert resolved.status_code == 200 and resolved.json()["status"] == "ignored"
    assert empty.status_code == 200 and empty.json()["status"] == "ignored"
    assert openai_standin.requests() == []


def test_without_a_secret_or_a_model_the_webhook_says_so(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings]
) -> None:
    resp = send(start_service(ai_settings()), payload())
    assert resp.status_code == 503 and "FRESHDESK_WEBHOOK_SECRET" in resp.json()["message"]
    no_model = start_service(ai_settings(FRESHDESK_WEBHOOK_SECRET=SECRET, OPENAI_API_KEY=""))
    resp = send(no_model, payload())
    assert resp.status_code == 503 and "OPENAI_API_KEY" in resp.json()["message"]


def test_when_the_model_is_down_the_ticket_still_reaches_a_human(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    openai_standin.force_status(500, times=100)
    resp = send(svc, payload())
    assert resp.status_code == 201 and resp.json()["route"] == "take_over"


def test_the_openapi_spec_documents_the_webhook(svc: Service) -> None:
    spec = httpx.get(f"{svc.url}/openapi.json").json()
    op = spec["paths"]["/v1/webhooks/freshdesk"]["post"]
    assert "401" in op["responses"] and "503" in op["responses"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert "ticket" in json.dumps(schema) + json.dumps(
        spec["components"]["schemas"].get("FreshdeskWebhookIn", {})
    )
