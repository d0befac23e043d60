"""POST /v1/webhooks/zendesk: signed by Zendesk, drafted by the model from the knowledge base, routed like any draft."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.ai.assist import NO_DRAFT_TEXT
from bot.app.settings import Settings
from handlers.http.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from sandbox.openai_standin import OpenAIStandin
from tests.conftest import Service

from .conftest import load_review

SECRET = "zd-webhook-secret"


def payload(
    ticket_id: int = 48201, updated_at: str = "2026-11-16T09:58:00Z", **ticket: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ticket_id,
        "subject": "Password reset email not arriving",
        "description": "I clicked forgot password twice but no email came. Call me on 614-555-0183.",
        "latest_comment": (
            "----------------------------------------------\n\nKenji Watanabe, Nov 16, 2026, 09:58\n\n"
            "I clicked forgot password twice but no email came. Call me on 614-555-0183."
        ),
        "status": "new",
        "updated_at": updated_at,
        "url": "northwind.zendesk.com/agent/tickets/48201",
        "requester": {"id": 901, "name": "Kenji Watanabe", "email": "kenji.watanabe@example.com"},
        "updated_by_id": 901,
    }
    body.update(ticket)
    return {"ticket": body}


def send(
    svc: Service,
    body: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    ts: str | None = None,
    sig: str | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = ts or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: sig if sig is not None else signature(secret, ts, raw),
    }
    return httpx.post(f"{svc.url}/v1/webhooks/zendesk", content=raw, headers=headers, timeout=30)


@pytest.fixture
def svc(start_service: Callable[..., Service], ai_settings: Callable[..., Settings]) -> Service:
    return start_service(ai_settings(ZENDESK_WEBHOOK_SECRET=SECRET))


def test_a_signed_new_ticket_becomes_a_drafted_review(svc: Service, openai_standin: OpenAIStandin) -> None:
    resp = send(svc, payload())
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["route"] in ("review", "take_over", "auto_send") and created["tier"]
    review = load_review(svc.runtime.engine, created["id"])
    assert review.ticket_id == "48201" and review.interaction_type == "password_reset"
    assert review.customer_message.startswith("I clicked forgot password")  # Zendesk's header line is dropped
    assert review.draft.startswith("Hi Kenji,") and 0 < review.confidence <= 0.9
    assert "kb/password-reset.md" in review.kb_sources
    assert (
        review.extra["prompt_version"] == "draft.v1"
        and review.extra["ticket_updated_at"] == "2026-11-16T09:58:00Z"
    )
    assert review.idempotency_key == "zendesk:48201:2026-11-16T09:58:00Z"
    assert review.ticket_url == "https://northwind.zendesk.com/agent/tickets/48201"
    assert review.customer["email"] == "kenji.watanabe@example.com"
    for req in openai_standin.requests():
        assert "614-555-0183" not in req["user"] and "kenji.watanabe@example.com" not in req["user"]
        assert "Watanabe" not in req["user"]


def test_the_same_delivery_twice_drafts_once(
    start_service: Callable[..., Service],
    ai_settings: Callable[..., Settings],
    openai_standin: OpenAIStandin,
    db_url: str,
) -> None:
    svc = start_service(ai_settings(ZENDESK_WEBHOOK_SECRET=SECRET, HITL_DATABASE_URL=db_url))
    first = send(svc, payload())
    calls = len(openai_standin.requests())
    again = send(svc, payload())
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert len(openai_standin.requests()) == calls
    later = send(svc, payload(updated_at="2026-11-16T10:30:00Z", latest_comment="Still nothing, any update?"))
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("tamper", ["body", "signature", "secret"])
def test_a_bad_signature_is_401(svc: Service, tamper: str) -> None:
    raw = json.dumps(payload()).encode()
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    good = signature(SECRET, ts, raw)
    if tamper == "body":
        resp = send(svc, raw.replace(b"48201", b"48202"), ts=ts, sig=good)
    elif tamper == "signature":
        resp = send(svc, raw, ts=ts, sig=good[:-4] + "AAA=")
    else:
        resp = send(svc, raw, secret="not-the-secret")
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"


def test_a_stale_or_missing_timestamp_is_401(svc: Service) -> None:
    stale = (datetime.now(UTC) - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert send(svc, payload(), ts=stale).status_code == 401
    resp = httpx.post(f"{svc.url}/v1/webhooks/zendesk", json=payload(), timeout=10)
    assert resp.status_code == 401


def test_an_oversized_or_unexpected_body_is_refused(svc: Service) -> None:
    assert send(svc, b"x" * (300 * 1024)).status_code == 413
    assert send(svc, {"ticket": {"subject": "no id"}}).status_code == 422
    assert send(svc, b"not json").status_code == 422


def test_solved_tickets_and_agent_updates_are_ignored(svc: Service, openai_standin: OpenAIStandin) -> None:
    solved = send(svc, payload(status="solved"))
    agent = send(svc, payload(status="open", updated_by_id=555))
    assert solved.status_code == 200 and solved.json()["status"] == "ignored"
    assert agent.status_code == 200 and agent.json()["status"] == "ignored"
    assert openai_standin.requests() == []


def test_without_a_secret_or_a_model_the_webhook_says_so(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings]
) -> None:
    no_secret = start_service(ai_settings())
    resp = send(no_secret, payload())
    assert resp.status_code == 503 and "ZENDESK_WEBHOOK_SECRET" in resp.json()["message"]
    no_model = start_service(ai_settings(ZENDESK_WEBHOOK_SECRET=SECRET, OPENAI_API_KEY=""))
    resp = send(no_model, payload())
    assert resp.status_code == 503 and "OPENAI_API_KEY" in resp.json()["message"]


def test_when_the_model_is_down_the_ticket_still_reaches_a_human(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    openai_standin.force_status(500, times=100)
    resp = send(svc, payload())
    assert resp.status_code == 201
    created = resp.json()
    assert created["route"] == "take_over"
    assert {"ai_unavailable", "classification_failed"} <= {r["code"] for r in created["reasons"]}
    review = load_review(svc.runtime.engine, created["id"])
    assert (
        review.draft == NO_DRAFT_TEXT and review.confidence == 0 and review.interaction_type == "unclassified"
    )


def test_a_malformed_classification_sends_the_draft_to_review(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    openai_standin.script("classify", "I think this is about passwords.")
    openai_standin.script(
        "draft", {"reply": "Hi Kenji,\n\nReset links last one hour.\n\nBest,\nSupport", "confidence": 0.99}
    )
    created = send(svc, payload()).json()
    assert created["route"] in ("review", "take_over")
    assert "classification_failed" in {r["code"] for r in created["reasons"]}
    review = load_review(svc.runtime.engine, created["id"])
    assert review.draft.startswith("Hi Kenji") and review.confidence == 0.9  # the model's 0.99 is capped


def test_the_openapi_spec_documents_the_webhook(svc: Service) -> None:
    spec = httpx.get(f"{svc.url}/openapi.json").json()
    op = spec["paths"]["/v1/webhooks/zendesk"]["post"]
    assert "401" in op["responses"] and "503" in op["responses"]
    schemas = spec["components"]["schemas"]
    draft_schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert "ticket" in schemas[draft_schema["$ref"].rsplit("/", 1)[1]]["properties"]
    drafts = spec["paths"]["/v1/drafts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "interaction_type" not in schemas[drafts["$ref"].rsplit("/", 1)[1]].get("required", [])
