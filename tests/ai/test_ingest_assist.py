"""AI assist around ingest: classification fills gaps and fails closed; long messages get a summary later."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.app.settings import Settings
from sandbox.openai_standin import OpenAIStandin
from storage.models import OutboxStatus
from tests.conftest import FakeClock, Service, sample_draft, wait_for

from .conftest import load_review, outbox_rows

ANGRY = (
    "Third time writing about NW-317950. NOTHING arrived. This is unacceptable, I'm filing a chargeback. "
    "Call me on 614-555-0183."
)
LONG = ("I am writing about my Trail Box and Plus charges, card 4242 4242 4242 4242. " * 12).strip()


def post(svc: Service, **fields: Any) -> dict[str, Any]:
    body = sample_draft(**fields)
    for k in [k for k, v in fields.items() if v is None]:
        body.pop(k)
    resp = svc.api.post("/v1/drafts", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def codes(created: dict[str, Any]) -> list[str]:
    return [r["code"] for r in created["reasons"]]


def test_missing_sentiment_is_classified_before_routing(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    svc = start_service(ai_settings())
    created = post(svc, customer_message=ANGRY, confidence=0.97, sentiment=None)
    assert created["route"] != "auto_send" and "very_negative_sentiment" in codes(created)
    review = load_review(svc.runtime.engine, created["id"])
    assert review.sentiment is not None and review.sentiment < -0.8
    assert review.extra["ai"]["classified"] == ["sentiment"]
    assert review.extra["ai"]["classify_prompt_version"] == "classify.v1"
    sent = openai_standin.requests("classify")[0]["user"]
    assert "614-555-0183" not in sent and "[phone]" in sent


def test_a_draft_that_brings_its_own_sentiment_costs_no_model_call(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    svc = start_service(ai_settings())
    post(svc, sentiment=0.2)
    assert openai_standin.requests() == []


def test_missing_interaction_type_is_classified(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings]
) -> None:
    svc = start_service(ai_settings())
    created = post(
        svc,
        interaction_type=None,
        sentiment=0.0,
        customer_message="I clicked forgot password twice but no reset email came.",
    )
    assert load_review(svc.runtime.engine, created["id"]).interaction_type == "password_reset"
    assert "classification_failed" not in codes(created)


def test_without_a_model_interaction_type_is_still_required(
    start_service: Callable[..., Service], make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url, HITL_SCHEDULER=False, OPENAI_API_KEY=""))
    body = sample_draft()
    body.pop("interaction_type")
    resp = svc.api.post("/v1/drafts", json=body)
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "interaction_type"
    # and without a model, a draft with no sentiment is routed on what was sent, as before
    assert post(svc, sentiment=None, confidence=0.97)["route"] == "auto_send"


def test_a_model_timeout_fails_closed_to_a_human_quickly(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    svc = start_service(ai_settings(HITL_OPENAI_CLASSIFY_TIMEOUT=0.5))
    openai_standin.set_delay(10)
    t = time.monotonic()
    created = post(svc, confidence=0.97, sentiment=None)  # would be auto-sent
    assert time.monotonic() - t < 8, "the ingest did not wait for the 10 s model"
    assert created["route"] == "review" and "classification_failed" in codes(created)
    reason = next(r for r in created["reasons"] if r["code"] == "classification_failed")
    assert "timeout" in reason["message"]


def test_malformed_classification_fails_closed(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    svc = start_service(ai_settings())
    openai_standin.set_malformed(times=1, kind="schema")
    created = post(svc, confidence=0.97, sentiment=None)
    assert created["route"] == "review" and "classification_failed" in codes(created)
    openai_standin.force_status(500, times=1)
    created = post(svc, confidence=0.97, sentiment=None, interaction_type=None)
    assert created["route"] != "auto_send" and "classification_failed" in codes(created)
    assert load_review(svc.runtime.engine, created["id"]).interaction_type == "unclassified"


def test_a_long_message_gets_a_summary_on_its_card(
    start_service: Callable[..., Service],
    ai_settings: Callable[..., Settings],
    openai_standin: OpenAIStandin,
    db_url: str,
) -> None:
    svc = start_service(ai_settings(HITL_DATABASE_URL=db_url))
    created = post(svc, customer_message=LONG, confidence=0.7, sentiment=-0.2)
    assert svc.runtime.services.outbox.drain(10, kinds={"ai_summarize"})
    summary = load_review(svc.runtime.engine, created["id"]).extra.get("summary")
    assert summary.startswith("Customer writes") and "4242 4242" not in summary
    assert "4242 4242" not in openai_standin.requests("summarize")[0]["user"]
    refresh = [
        r
        for r in outbox_rows(svc.runtime.engine, "slack_refresh_review")
        if r.payload == {"review_id": created["id"]}
    ]
    assert len(refresh) == 1
    short = post(svc, confidence=0.7, sentiment=-0.2)  # short messages need no summary
    assert not [
        r for r in outbox_rows(svc.runtime.engine, "ai_summarize") if r.payload["review_id"] == short["id"]
    ]


def test_without_the_model_the_summary_gives_up_quietly(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    clock = FakeClock()
    svc = start_service(ai_settings(HITL_OPS_CHANNEL="#support-ops", HITL_OPENAI_TIMEOUT=0.5), clock=clock)
    openai_standin.force_status(503, times=1000)
    created = post(svc, customer_message=LONG, confidence=0.7, sentiment=-0.2)

    def settled() -> bool:
        clock.advance(minutes=2)
        svc.runtime.services.outbox.run_once()
        rows = [
            r
            for r in outbox_rows(svc.runtime.engine, "ai_summarize")
            if r.payload["review_id"] == created["id"]
        ]
        return rows[0].status == OutboxStatus.DEAD

    wait_for(settled, timeout=20)
    assert len(openai_standin.requests("summarize")) == 6  # 3 attempts, each with the client's one retry
    review = load_review(svc.runtime.engine, created["id"])
    assert "summary" not in review.extra and review.status == "pending"
    announced = [
        r
        for r in outbox_rows(svc.runtime.engine, "slack_post")
        if "ai_summarize" in r.payload.get("text", "")
    ]
    assert announced == []
