"""POST /v1/outcomes through the real service: linked to the ticket's review and decision, once per kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Service, sample_draft

AT = "2026-11-16T12:00:00Z"  # two hours after the fake clock's start: after every draft below


@pytest.fixture
def svc(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str, clock: FakeClock
) -> Service:
    return start_service(make_settings(HITL_DATABASE_URL=db_url, HITL_SCHEDULER=False), clock=clock)


def outcome(ticket: str, kind: str = "csat", value: Any = 5, at: str = AT) -> dict[str, Any]:
    return {"ticket_id": ticket, "kind": kind, "value": value, "at": at}


def test_a_csat_rating_is_linked_to_the_auto_sent_reply_of_its_ticket(svc: Service) -> None:
    draft = svc.api.post("/v1/drafts", json=sample_draft(ticket_id="T-1", confidence=0.97)).json()
    resp = svc.api.post("/v1/outcomes", json=outcome("T-1", value="good"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["review_id"] == draft["id"] and body["decision"] == "auto_send"
    assert body["decision_id"] is not None and body["interaction_type"] == "order_status"
    assert (body["score"], body["satisfied"], body["status"]) == (5, True, "created")


def test_the_same_ticket_and_kind_again_is_200_and_stores_nothing_new(svc: Service) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="T-2", confidence=0.97))
    first = svc.api.post("/v1/outcomes", json=outcome("T-2", value=2))
    again = svc.api.post("/v1/outcomes", json=outcome("T-2", value=2))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "unchanged"
    # Another kind of the same ticket is a new outcome.
    reopened = svc.api.post("/v1/outcomes", json=outcome("T-2", kind="reopened", value=True))
    assert reopened.status_code == 201 and reopened.json()["satisfied"] is True


def test_a_later_rating_replaces_the_earlier_one_and_an_older_one_does_not(svc: Service) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="T-3", confidence=0.97))
    svc.api.post("/v1/outcomes", json=outcome("T-3", value="bad"))
    later = svc.api.post("/v1/outcomes", json=outcome("T-3", value=4, at="2026-11-16T13:00:00Z"))
    older = svc.api.post("/v1/outcomes", json=outcome("T-3", value=1, at="2026-11-16T11:00:00Z"))
    assert later.status_code == 200 and later.json()["status"] == "updated"
    assert (later.json()["score"], later.json()["satisfied"]) == (4, True)
    assert older.json()["status"] == "unchanged" and older.json()["score"] == 4


def test_the_latest_draft_before_the_outcome_is_the_one_it_judges(svc: Service, clock: FakeClock) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="T-4", confidence=0.97, draft="first reply"))
    clock.advance(hours=1)
    second = svc.api.post(
        "/v1/drafts", json=sample_draft(ticket_id="T-4", confidence=0.75, draft="second reply")
    ).json()
    clock.advance(hours=5)
    third = sample_draft(ticket_id="T-4", confidence=0.97, draft="third reply, after the rating")
    svc.api.post("/v1/drafts", json=third)
    body = svc.api.post("/v1/outcomes", json=outcome("T-4", value=3)).json()  # at 12:00: the second draft
    assert body["review_id"] == second["id"]
    assert body["decision"] is None and body["satisfied"] is False  # still pending; 3 is not satisfied


@pytest.mark.parametrize(
    "body, field",
    [
        (outcome("T-5", value=6), "csat is from 1 to 5"),
        (outcome("T-5", value="meh"), "csat needs 1-5"),
        (outcome("T-5", value=None), "csat needs 1-5"),
        (outcome("T-5", kind="escalated"), "kind"),
        (outcome("T-5", kind="reopened", value="yes"), "reopened takes true or false"),
        (outcome("T-5", at="2026-11-16T12:00:00"), "at"),  # no timezone
        ({"ticket_id": "T-5", "kind": "csat", "value": 5}, "at"),
    ],
)
def test_bad_outcomes_are_422_saying_what_is_wrong(svc: Service, body: dict[str, Any], field: str) -> None:
    svc.api.post("/v1/drafts", json=sample_draft(ticket_id="T-5", confidence=0.97))
    resp = svc.api.post("/v1/outcomes", json=body)
    assert resp.status_code == 422 and field in resp.json()["message"], resp.text


def test_an_outcome_for_a_ticket_never_drafted_is_404(svc: Service) -> None:
    resp = svc.api.post("/v1/outcomes", json=outcome("T-unknown"))
    assert resp.status_code == 404 and "no draft of ticket 'T-unknown'" in resp.json()["message"]


def test_outcomes_need_the_ingest_token(svc: Service) -> None:
    resp = httpx.post(f"{svc.url}/v1/outcomes", json=outcome("T-6"), headers={"Authorization": "Bearer no"})
    assert resp.status_code == 401


def test_the_outcomes_route_is_in_the_openapi_document(svc: Service) -> None:
    doc = svc.api.get("/openapi.json").json()
    op = doc["paths"]["/v1/outcomes"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"ticket_id", "kind", "at"}
    assert schema["properties"]["kind"]["enum"] == ["csat", "reopened", "resolved"]
    assert {"200", "201", "404", "422"} <= set(op["responses"])


def test_a_vip_customer_is_human_as_the_loop_by_default(svc: Service) -> None:
    # The bundled policy: VIP (or account value over 10,000) goes to take over, whatever the confidence.
    vip = sample_draft(confidence=0.99)
    vip["customer"] = {**vip["customer"], "tier": "vip"}
    big = sample_draft(confidence=0.99)
    big["customer"] = {**big["customer"], "account_value": 25000.0}
    for body in (vip, big):
        created = svc.api.post("/v1/drafts", json=body).json()
        assert (created["route"], created["tier"]) == ("take_over", "vip"), created
        assert any(r["code"] == "vip" for r in created["reasons"]), created["reasons"]
