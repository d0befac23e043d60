"""POST /v1/webhooks/zendesk/outcomes: Zendesk's satisfaction ratings, reopens and solves, signed as Zendesk signs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from handlers.http.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from tests.conftest import FakeClock, Service, sample_draft

SECRET = "zendesk-outcomes-secret"
WHEN = "2026-11-16T11:30:00Z"  # after the drafts (the fake clock starts at 10:00)


@pytest.fixture
def svc(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str, clock: FakeClock
) -> Service:
    settings = make_settings(HITL_DATABASE_URL=db_url, HITL_SCHEDULER=False, ZENDESK_WEBHOOK_SECRET=SECRET)
    return start_service(settings, clock=clock)


def send(svc: Service, body: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    ts = "2026-11-16T10:00:00Z"  # the fake clock's now: within Zendesk's 5-minute skew
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: signature(secret, ts, raw),
    }
    return httpx.post(f"{svc.url}/v1/webhooks/zendesk/outcomes", content=raw, headers=headers)


def event(name: str, ticket: str, satisfaction: str | None = None) -> dict[str, Any]:
    return {"event": name, "ticket": {"id": ticket, "satisfaction": satisfaction, "updated_at": WHEN}}


def test_a_good_or_bad_rating_becomes_the_ticket_csat(svc: Service) -> None:
    draft = svc.api.post("/v1/drafts", json=sample_draft(ticket_id="Z-1", confidence=0.97)).json()
    resp = send(svc, event("satisfaction_rating", "Z-1", "Good"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["kind"], body["score"], body["satisfied"], body["review_id"]) == (
        "csat",
        5,
        True,
        draft["id"],
    )
    assert body["decision"] == "auto_send"
    # The customer changes their mind a minute later: same outcome, now bad.
    later = event("satisfaction_rating", "Z-1", "Bad")
    later["ticket"]["updated_at"] = "2026-11-16T11:31:00Z"
    changed = send(svc, later)
    assert changed.status_code == 200 and (changed.json()["score"], changed.json()["status"]) == (
        1,
        "updated",
    )


def test_reopened_and_solved_tickets_are_recorded_once(svc: Service) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="Z-2", confidence=0.97))
    first = send(svc, event("reopened", "Z-2"))
    again = send(svc, event("reopened", "Z-2"))
    solved = send(svc, event("solved", "Z-2"))
    assert (first.status_code, again.status_code, solved.status_code) == (201, 200, 201)
    assert first.json()["kind"] == "reopened" and solved.json()["kind"] == "resolved"


def test_an_offered_but_unanswered_survey_is_ignored(svc: Service) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="Z-3", confidence=0.97))
    resp = send(svc, event("satisfaction_rating", "Z-3", "Offered"))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"


def test_a_wrong_signature_is_401_and_a_foreign_event_is_422(svc: Service) -> None:
    assert send(svc, event("reopened", "Z-4"), secret="wrong").status_code == 401
    bad = send(svc, event("merged", "Z-4"))
    assert bad.status_code == 422 and "event" in bad.json()["message"]
    unknown = send(svc, event("reopened", "Z-never"))
    assert unknown.status_code == 404 and "Z-never" in unknown.json()["message"]
