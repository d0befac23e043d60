"""The ingest API over real HTTP: auth, validation, idempotency, limits, and no 5xx for any input."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from storage.db import session_scope
from storage.models import AuditEvent, OutboxItem, Review
from tests.conftest import INGEST_TOKEN, Service, sample_draft


@pytest.fixture
def svc(start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str) -> Service:
    return start_service(make_settings(HITL_DATABASE_URL=db_url, HITL_SCHEDULER=False))


def count(svc: Service, model: Any) -> int:
    with session_scope(svc.runtime.engine, readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_draft_is_stored_routed_and_queued_for_slack(svc: Service) -> None:
    resp = svc.api.post("/v1/drafts", json=sample_draft(confidence=0.75))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["route"] == "review" and body["tier"] == "standard"
    assert body["reasons"][0]["code"] == "confidence_medium"
    assert body["sla_due_at"] is not None
    got = svc.api.get(f"/v1/reviews/{body['id']}").json()
    assert got["status"] == "pending" and got["ticket_id"]
    with session_scope(svc.runtime.engine, readonly=True) as s:
        kinds = [o.kind for o in s.execute(select(OutboxItem)).scalars()]
        actions = [
            a.action
            for a in s.execute(select(AuditEvent).where(AuditEvent.review_id == body["id"])).scalars()
        ]
    assert kinds == ["slack_post_review"]
    assert actions == ["ingest"]


def test_auto_send_goes_straight_to_the_helpdesk_queue(svc: Service) -> None:
    body = svc.api.post("/v1/drafts", json=sample_draft(confidence=0.97)).json()
    assert body["route"] == "auto_send" and body["sla_due_at"] is None and body["status"] == "auto_sent"
    with session_scope(svc.runtime.engine, readonly=True) as s:
        kinds = {o.kind for o in s.execute(select(OutboxItem)).scalars()}
    assert "helpdesk_write" in kinds and "slack_post_review" not in kinds


def test_same_idempotency_key_answers_200_with_the_same_review(svc: Service) -> None:
    first = svc.api.post("/v1/drafts", json=sample_draft(idempotency_key="k-1"))
    again = svc.api.post("/v1/drafts", json=sample_draft(idempotency_key="k-1", draft="different text"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert count(svc, Review) == 1 and count(svc, OutboxItem) == 1


def test_same_ticket_and_draft_without_a_key_is_the_same_review(svc: Service) -> None:
    body = sample_draft()
    ids = {svc.api.post("/v1/drafts", json=body).json()["id"] for _ in range(3)}
    assert len(ids) == 1
    other = svc.api.post("/v1/drafts", json={**body, "draft": body["draft"] + " Thanks!"})
    assert other.status_code == 201 and other.json()["id"] not in ids


def test_twenty_concurrent_duplicates_create_one_review(svc: Service) -> None:
    body = sample_draft(idempotency_key="race-1")

    def send(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}) as c:
            r = c.post("/v1/drafts", json=body)
            return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    assert sorted(code for code, _ in results) == [200] * 19 + [201]
    assert len({rid for _, rid in results}) == 1
    assert count(svc, Review) == 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer"])
def test_missing_or_wrong_token_is_401(svc: Service, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    resp = httpx.post(f"{svc.url}/v1/drafts", json=sample_draft(), headers=headers)
    assert resp.status_code == 401
    assert "bearer token" in resp.json()["message"]
    assert count(svc, Review) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"ticket_id": ""}, "ticket_id"),
        ({"sentiment": -3}, "sentiment"),
        ({"customer": {"account_value": -1}}, "customer.account_value"),
        ({"ticket_url": "javascript:alert(1)"}, "ticket_url"),
        ({"kb_sources": "kb/x.md"}, "kb_sources"),
        ({"interaction_type": "refund; drop table"}, "interaction_type"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(svc: Service, change: dict[str, Any], field: str) -> None:
    resp = svc.api.post("/v1/drafts", json=sample_draft(**change))
    assert resp.status_code == 422
    assert field in [f["field"] for f in resp.json()["fields"]]
    assert field in resp.json()["message"]


def test_missing_required_field_is_named(svc: Service) -> None:
    body = sample_draft()
    del body["draft"]
    resp = svc.api.post("/v1/drafts", json=body)
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "draft"


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b"\xff\xfe", b"", b"null"])
def test_invalid_json_is_422(svc: Service, raw: bytes) -> None:
    resp = svc.api.post("/v1/drafts", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_json"


def test_body_over_256_kib_is_413_with_or_without_content_length(svc: Service) -> None:
    huge = sample_draft(customer_message="x" * (300 * 1024))
    assert svc.api.post("/v1/drafts", json=huge).status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        data = json.dumps(huge).encode()
        for i in range(0, len(data), 16384):
            yield data[i : i + 16384]

    resp = svc.api.post("/v1/drafts", content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert count(svc, Review) == 0


def test_repeat_contact_is_found_from_stored_history(svc: Service) -> None:
    customer = {"id": "cus_angry", "name": "Brianna", "tier": "standard"}
    routes = [
        svc.api.post("/v1/drafts", json=sample_draft(confidence=0.97, customer=customer)).json()["route"]
        for _ in range(3)
    ]
    assert routes == ["auto_send", "review", "take_over"]


def test_unknown_review_is_404_and_health_and_openapi_answer(svc: Service) -> None:
    assert svc.api.get("/v1/reviews/nope").status_code == 404
    health = httpx.get(f"{svc.url}/healthz").json()
    assert health["status"] == "ok" and health["schema"]
    spec = httpx.get(f"{svc.url}/openapi.json").json()
    body_ref = spec["paths"]["/v1/drafts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body_schema = spec["components"]["schemas"][body_ref["$ref"].rsplit("/", 1)[1]]
    assert {"ticket_id", "confidence", "draft"} <= set(body_schema["required"])


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "none", "list", "dict"] if depth < 2 else ["str", "int", "none"]
    k = rng.choice(kinds)
    if k == "str":
        return "".join(rng.choice(string.printable + "éü€\u202e\x00") for _ in range(rng.randint(0, 40)))
    if k == "int":
        return rng.choice([0, -1, 1, 2**63, -(2**70), 10**400 if rng.random() < 0.1 else 7])
    if k == "float":
        return rng.choice([0.5, -0.0, 1e308, -1e-308, 1.0000001])
    if k == "bool":
        return rng.random() < 0.5
    if k == "none":
        return None
    if k == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(list(sample_draft()) + ["x"]): _random_value(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def test_no_input_makes_it_answer_5xx(svc: Service) -> None:
    rng = random.Random(7)
    for _ in range(150):
        body = sample_draft()
        for key in rng.sample(list(body), rng.randint(1, 4)):
            body[key] = _random_value(rng)
        resp = svc.api.post(
            "/v1/drafts",
            content=json.dumps(body, allow_nan=True),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status_code < 500, (body, resp.text)
