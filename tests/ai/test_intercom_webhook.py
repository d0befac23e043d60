"""POST /v1/webhooks/intercom: signed with the app's client secret, drafted by the model, routed like any draft."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.app.settings import Settings
from handlers.http.intercom_webhook import SIGNATURE_HEADER, signature
from sandbox.openai_standin import OpenAIStandin
from tests.conftest import Service

from .conftest import load_review

SECRET = "ic-client-secret"
CUSTOMER = {"type": "user", "id": "6a1f", "name": "Kenji Watanabe", "email": "kenji.watanabe@example.com"}


def notification(
    topic: str = "conversation.user.created", parts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "type": "notification_event",
        "app_id": "abc123",
        "topic": topic,
        "id": "notif_1",
        "created_at": 1763287080,
        "data": {
            "type": "notification_event_data",
            "item": {
                "type": "conversation",
                "id": "215472",
                "created_at": 1763287080,
                "updated_at": 1763287080,
                "state": "open",
                "source": {
                    "type": "conversation",
                    "id": "90001",
                    "subject": "",
                    "body": "<p>I clicked forgot password twice but no email came.</p><p>Call me on 614-555-0183.</p>",
                    "author": CUSTOMER,
                },
                "conversation_parts": {"type": "conversation_part.list", "conversation_parts": parts or []},
            },
        },
    }


def send(
    svc: Service, body: dict[str, Any] | bytes, *, secret: str = SECRET, sig: str | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sig if sig is not None else signature(secret, raw),
    }
    return httpx.post(f"{svc.url}/v1/webhooks/intercom", content=raw, headers=headers, timeout=30)


@pytest.fixture
def svc(start_service: Callable[..., Service], ai_settings: Callable[..., Settings]) -> Service:
    return start_service(ai_settings(INTERCOM_CLIENT_SECRET=SECRET))


def test_a_new_conversation_becomes_a_drafted_review(svc: Service, openai_standin: OpenAIStandin) -> None:
    resp = send(svc, notification())
    assert resp.status_code == 201, resp.text
    review = load_review(svc.runtime.engine, resp.json()["id"])
    assert review.ticket_id == "215472" and review.interaction_type == "password_reset"
    assert review.customer_message.startswith("I clicked forgot password")  # HTML turned into text
    assert review.draft.startswith("Hi Kenji,")
    assert review.idempotency_key == "intercom:215472:part-90001"
    assert review.extra["ticket_updated_at"] == "1763287080"  # a comment after this holds the reply
    assert review.ticket_url == "https://app.intercom.com/a/inbox/abc123/inbox/conversation/215472"
    for req in openai_standin.requests():
        assert "614-555-0183" not in req["user"]


def test_a_customer_reply_drafts_for_the_latest_message_once(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    parts = [
        {
            "id": "91",
            "part_type": "comment",
            "body": "<p>Hello from support</p>",
            "created_at": 1763287100,
            "author": {"type": "admin", "id": "4401"},
        },
        {
            "id": "92",
            "part_type": "comment",
            "body": "<p>Still no reset email, any update?</p>",
            "created_at": 1763287200,
            "author": CUSTOMER,
        },
    ]
    first = send(svc, notification("conversation.user.replied", parts))
    assert first.status_code == 201
    review = load_review(svc.runtime.engine, first.json()["id"])
    assert review.customer_message == "Still no reset email, any update?"
    assert review.extra["ticket_updated_at"] == "1763287200"
    calls = len(openai_standin.requests())
    again = send(svc, notification("conversation.user.replied", parts))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert len(openai_standin.requests()) == calls


@pytest.mark.parametrize("tamper", ["body", "signature", "secret", "missing"])
def test_a_bad_signature_is_401(svc: Service, tamper: str) -> None:
    raw = json.dumps(notification()).encode()
    good = signature(SECRET, raw)
    if tamper == "body":
        resp = send(svc, raw.replace(b"215472", b"215473"), sig=good)
    elif tamper == "signature":
        resp = send(svc, raw, sig=good[:-4] + "0000")
    elif tamper == "secret":
        resp = send(svc, raw, secret="not-the-secret")
    else:
        resp = httpx.post(f"{svc.url}/v1/webhooks/intercom", content=raw, timeout=10)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"


def test_ping_and_other_topics_are_acknowledged_and_ignored(
    svc: Service, openai_standin: OpenAIStandin
) -> None:
    ping = send(svc, {"type": "notification_event", "topic": "ping", "data": {"item": {"message": "hi"}}})
    admin = send(svc, notification("conversation.admin.replied"))
    assert ping.status_code == 200 and ping.json()["status"] == "ignored"
    assert admin.status_code == 200 and admin.json()["status"] == "ignored"
    assert openai_standin.requests() == []


def test_an_unexpected_body_is_refused_with_a_reason(svc: Service) -> None:
    assert send(svc, b"x" * (300 * 1024)).status_code == 413
    assert send(svc, b"not json").status_code == 422
    broken = send(svc, {"topic": "conversation.user.created", "data": {"item": {"id": "1"}}})
    assert broken.status_code == 422 and "Intercom conversation notification" in broken.json()["message"]


def test_without_a_secret_or_a_model_the_webhook_says_so(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings]
) -> None:
    resp = send(start_service(ai_settings()), notification())
    assert resp.status_code == 503 and "INTERCOM_CLIENT_SECRET" in resp.json()["message"]
    no_model = start_service(ai_settings(INTERCOM_CLIENT_SECRET=SECRET, OPENAI_API_KEY=""))
    resp = send(no_model, notification())
    assert resp.status_code == 503 and "OPENAI_API_KEY" in resp.json()["message"]
