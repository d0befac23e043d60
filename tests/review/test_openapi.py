"""`/openapi.json` is a schema a client generator or a fuzzer can use: valid, every `$ref` resolves,
and the running service answers only what it documents (schemathesis over real HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from handlers.http.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from sandbox.openai_standin import OpenAIStandin
from tests.conftest import INGEST_TOKEN, Service, sample_draft

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
MAX_EXAMPLES = 150
# The routes a client of the API calls; a route another change adds is fuzzed as soon as it exists.
FUZZED = [("/v1/drafts", "POST"), ("/v1/reviews/{review_id}", "GET"), ("/v1/outcomes", "POST")]


@pytest.fixture
def openai_standin() -> Iterator[OpenAIStandin]:
    standin = OpenAIStandin(api_key="sk-test").start()
    yield standin
    standin.stop()


@pytest.fixture
def svc(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    db_url: str,
    openai_standin: OpenAIStandin,
) -> Service:
    """The service with a model (drafts without a type get classified, so fuzzed drafts reach the store)."""
    return start_service(
        make_settings(
            HITL_DATABASE_URL=db_url,
            HITL_SCHEDULER=False,
            HITL_OUTBOX_WORKER=False,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=openai_standin.base_url,
        )
    )


@pytest.fixture
def svc_without_model(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], sqlite_url: str
) -> Service:
    return start_service(
        make_settings(HITL_DATABASE_URL=sqlite_url, HITL_SCHEDULER=False, ZENDESK_WEBHOOK_SECRET="zd-secret")
    )


@pytest.fixture
def spec(svc_without_model: Service) -> dict[str, Any]:
    resp = httpx.get(f"{svc_without_model.url}/openapi.json")
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = spec
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_schema_is_valid_openapi_and_every_ref_resolves(spec: dict[str, Any]) -> None:
    validate(spec)
    refs = set(_refs(spec))
    assert "#/components/schemas/CustomerIn" in refs and "#/components/schemas/ZendeskTicket" in refs
    for ref in refs:
        assert isinstance(_resolve(spec, ref), dict)
    assert "$defs" not in str(spec)


def test_every_error_the_api_gives_is_documented_with_the_shared_error_body(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    expected = {
        ("/v1/drafts", "post"): {"200", "201", "401", "413", "422", "503"},
        ("/v1/reviews/{review_id}", "get"): {"200", "401", "404", "503"},
        ("/v1/webhooks/zendesk", "post"): {"200", "201", "401", "413", "422", "503"},
        ("/v1/webhooks/freshdesk", "post"): {"200", "201", "401", "413", "422", "503"},
        ("/v1/webhooks/intercom", "post"): {"200", "201", "401", "413", "422", "503"},
        ("/v1/outcomes", "post"): {"200", "201", "401", "404", "413", "422", "503"},
    }
    for (path, method), codes in expected.items():
        if path not in paths:
            continue  # not served in this build
        responses = paths[path][method]["responses"]
        assert codes <= set(responses), (path, set(responses))
        for code in codes - {"200", "201"}:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, code)
    error = spec["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "message"} and "fields" in error["properties"]
    ignored = paths["/v1/webhooks/zendesk"]["post"]["responses"]["200"]["content"]["application/json"]
    assert "WebhookIgnored" in str(ignored["schema"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_unknown_paths_and_wrong_methods_answer_in_the_error_shape(svc_without_model: Service) -> None:
    svc = svc_without_model
    missing = svc.api.get("/v1/reviews/")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = svc.api.delete("/v1/drafts")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert wrong.json()["message"]


def test_the_webhook_answers_503_in_the_error_shape_when_no_model_is_configured(
    svc_without_model: Service,
) -> None:
    svc = svc_without_model
    body = json.dumps(
        {"ticket": {"id": "42", "status": "new", "updated_at": "2026-11-16T10:00:00Z", "description": "Hi"}}
    ).encode()
    ts = str(int(time.time()))
    resp = httpx.post(
        f"{svc.url}/v1/webhooks/zendesk",
        content=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature("zd-secret", ts, body),
            TIMESTAMP_HEADER: ts,
        },
    )
    assert resp.status_code == 503 and resp.json()["error"] == "ai_unavailable"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/drafts", sample_draft(ticket_id="T\u0000"), "ticket_id"),
        ("/v1/drafts", sample_draft(customer={"name": "Ma\ud800ya"}), "customer.name"),
        (
            "/v1/outcomes",
            {"ticket_id": "T1", "kind": "csat", "at": "2026-11-16T10:00:00Z", "value": "\u0000"},
            "value",
        ),
    ],
)
def test_a_nul_or_lone_surrogate_is_a_422_naming_the_field(
    svc: Service, path: str, body: dict[str, Any], field: str
) -> None:
    # Found by schemathesis: PostgreSQL cannot store a NUL, which used to answer 500.
    raw = json.dumps(body)  # ensure_ascii: the NUL and the surrogate travel as \u escapes, as JSON allows
    resp = svc.api.post(path, content=raw, headers={"Content-Type": "application/json"})
    if resp.status_code == 404 and path not in httpx.get(f"{svc.url}/openapi.json").json()["paths"]:
        pytest.skip(f"{path} is not served yet")
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "invalid_fields"
    assert [f["field"] for f in resp.json()["fields"]] == [field]


def _fuzz(svc: Service, operation: Any, mode: GenerationMode) -> list[int]:
    """Bounded, derandomized schemathesis run; the status of every response."""
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=svc.url, headers=AUTH)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
    return statuses


def _known_cases(svc: Service, operation: Any, path: str) -> list[Any]:
    """Requests a fuzzer rarely makes up: a stored review, a draft stored before, a fresh draft."""
    draft = sample_draft()
    stored = svc.api.post("/v1/drafts", json=draft).json()
    if path == "/v1/reviews/{review_id}":
        return [operation.Case(path_parameters={"review_id": rid}) for rid in (stored["id"], "nope")]
    if path == "/v1/drafts":
        return [
            operation.Case(body=body, media_type="application/json")
            for body in (draft, sample_draft(), sample_draft(confidence=0.99), {"ticket_id": "T1"})
        ]
    return []


@pytest.mark.parametrize("path, method", FUZZED)
def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(svc: Service, path: str, method: str) -> None:
    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    if path not in schema.raw_schema["paths"]:
        pytest.skip(f"{method} {path} is not served yet")
    operation = schema[path][method]
    statuses = []
    for case in _known_cases(svc, operation, path):
        response = case.call(base_url=svc.url, headers=AUTH)
        case.validate_response(response, checks=CHECKS)
        statuses.append(response.status_code)
    assert path == "/v1/outcomes" or 422 in statuses or 404 in statuses
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        answered = _fuzz(svc, operation, mode)
        assert len(answered) >= MAX_EXAMPLES // 2, f"{mode}: only {len(answered)} requests"
        assert all(code < 500 for code in answered)
