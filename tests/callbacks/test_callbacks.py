"""Decision callbacks against a local receiver over real HTTP: signed, verified with the README's own
snippet (stale timestamps refused), sent once per decision, auto-send or SLA timeout, retried on 5xx
and 429, dead-lettered on 404, and only ever to allowed hosts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlmodel import col

from bot.review.decisions import record_decision
from bot.slack.ids import ActionId, BlockId
from sandbox.server import ServerThread
from storage.db import session_scope
from storage.models import AuditEvent, OutboxItem, OutboxStatus, Review
from tests.conftest import Service, sample_draft, wait_for
from tests.slack import conftest as slack_fixtures
from tests.slack.conftest import Loop

make_loop = slack_fixtures.make_loop  # the review loop's fixture

README = Path(__file__).resolve().parents[2] / "README.md"
FAST_POLICY = Path(__file__).parent.parent / "sla" / "policy_fast.yml"
SECRET = "callback-test-secret"


class Receiver:
    """An AI pipeline's callback endpoint: records each request, answers the statuses it is told to."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                self.received.append((dict(request.headers), body))
                status = self.answers.pop(0) if self.answers else 200
            return Response(status_code=status, headers={"Retry-After": "0"} if status == 429 else None)

        self.server = ServerThread(app)
        self.url = f"{self.server.url}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def wait(self, n: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        wait_for(lambda: len(self.received) >= n, timeout, f"{n} callback(s)")
        with self._lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def callback_env(**extra: Any) -> dict[str, Any]:
    return {"HITL_CALLBACK_HOSTS": "127.0.0.1", "HITL_CALLBACK_SECRET": SECRET, **extra}


def readme_verify() -> Callable[..., bool]:
    """The verification snippet exactly as the README shows it."""
    section = README.read_text(encoding="utf-8").split("## Decision callbacks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README shows the verification in Python"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 - the documented snippet is what is under test
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def readme_checks(headers: Headers, body: bytes) -> dict[str, bool]:
    """What the README's `verify` says of a delivered callback, as sent and altered."""
    verify = readme_verify()
    sent_at = int(headers["x-hitl-timestamp"])
    return {
        "as sent": verify(SECRET, headers, body),
        "4:59 later": verify(SECRET, headers, body, now=sent_at + 299),
        "5:01 later (stale)": verify(SECRET, headers, body, now=sent_at + 301),
        "body changed": verify(SECRET, headers, body.replace(b"approve", b"reject")),
        "other secret": verify("another-secret", headers, body),
    }


class Headers(dict[str, str]):
    """Case-insensitive like every web framework's request headers."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def outbox_rows(svc: Service, kind: str = "decision_callback") -> list[OutboxItem]:
    with session_scope(svc.runtime.engine, readonly=True) as session:
        return list(session.execute(select(OutboxItem).where(col(OutboxItem.kind) == kind)).scalars())


def test_an_approval_is_called_back_signed_and_the_readme_snippet_verifies_it(
    make_loop: Callable[..., Loop], receiver: Receiver, db_url: str
) -> None:
    loop = make_loop(HITL_DATABASE_URL=db_url, **callback_env())
    review_id = loop.post_draft(callback_url=receiver.url)
    card = loop.card(review_id)
    assert loop.click(card, ActionId.APPROVE, "U0ALEX0001", "alex").status_code == 200
    review = loop.decided(review_id)
    headers, body = receiver.wait(1)[0]
    sent = json.loads(body)
    fields = ("event", "review_id", "ticket_id", "decision", "status", "decided_by", "final_text", "id")
    assert {k: sent[k] for k in fields} == {
        "event": "decided",
        "review_id": review_id,
        "ticket_id": review.ticket_id,
        "decision": "approve",
        "status": "approved",
        "decided_by": "U0ALEX0001",
        "final_text": review.draft,
        "id": f"callback:{review_id}:decided",
    }
    assert sent["decided_at"]
    assert readme_checks(Headers(headers), body) == {
        "as sent": True,
        "4:59 later": True,
        "5:01 later (stale)": False,
        "body changed": False,
        "other secret": False,
    }
    loop.settled()
    assert len(receiver.received) == 1, "one decision, one callback"


def test_a_rejection_carries_its_reason_and_comment(
    make_loop: Callable[..., Loop], receiver: Receiver
) -> None:
    loop = make_loop(**callback_env())
    review_id = loop.post_draft(callback_url=receiver.url)
    card = loop.card(review_id)
    loop.click(card, ActionId.REJECT, modal=True)
    view = wait_for(lambda: loop.standin.views(), 5, "the reject modal")[-1]
    values: dict[str, Any] = {
        BlockId.REJECT_CATEGORY: {
            ActionId.REJECT_CATEGORY: {"type": "static_select", "selected_option": {"value": "hallucination"}}
        },
        BlockId.REJECT_COMMENT: {
            ActionId.REJECT_COMMENT: {"type": "plain_text_input", "value": "No such order"}
        },
    }
    assert loop.submit(view, values).status_code == 200
    receiver.wait(1)
    sent = receiver.bodies()[0]
    assert (sent["decision"], sent["reason"], sent["comment"]) == ("reject", "hallucination", "No such order")
    assert sent["final_text"] is None


def test_an_auto_sent_draft_is_called_back_at_once(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    db_url: str,
    receiver: Receiver,
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=db_url, **callback_env()))
    draft = sample_draft(confidence=0.97, callback_url=receiver.url)
    assert svc.api.post("/v1/drafts", json=draft).json()["route"] == "auto_send"
    receiver.wait(1)
    sent = receiver.bodies()[0]
    assert (sent["event"], sent["decision"], sent["status"]) == ("auto_sent", "auto_send", "auto_sent")
    assert sent["final_text"] == draft["draft"]


def test_a_callback_to_a_host_not_allowed_is_refused_naming_the_field(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], sqlite_url: str
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url, **callback_env()))
    resp = svc.api.post("/v1/drafts", json=sample_draft(callback_url="https://evil.example/steal"))
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "callback_url"
    assert "evil.example" in resp.json()["message"] and "HITL_CALLBACK_HOSTS" in resp.json()["message"]
    bad = svc.api.post("/v1/drafts", json=sample_draft(callback_url="ftp://127.0.0.1/x"))
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "callback_url"
    with session_scope(svc.runtime.engine, readonly=True) as session:
        assert session.execute(select(Review)).first() is None, "nothing was stored"


def test_callbacks_are_refused_when_the_server_has_no_allow_list(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], sqlite_url: str
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url))
    resp = svc.api.post("/v1/drafts", json=sample_draft(callback_url="http://127.0.0.1:9/hook"))
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "callback_url"
    assert "HITL_CALLBACK_HOSTS" in resp.json()["message"]


def test_openapi_documents_callback_url(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], sqlite_url: str
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url))
    schema = svc.api.get("/openapi.json").json()
    field = schema["components"]["schemas"]["DraftIn"]["properties"]["callback_url"]
    assert "HITL_CALLBACK_HOSTS" in json.dumps(field)


def test_a_server_error_and_a_429_are_retried_and_delivered_once(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    sqlite_url: str,
    receiver: Receiver,
) -> None:
    receiver.answers = [503, 429]
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url, **callback_env()))
    svc.api.post("/v1/drafts", json=sample_draft(confidence=0.97, callback_url=receiver.url))
    received = receiver.wait(3, timeout=30)
    row = wait_for(lambda: (r := outbox_rows(svc)) and r[0].status == OutboxStatus.DONE and r[0], 10, "done")
    outbox = svc.runtime.services.outbox
    drained = outbox is not None and outbox.drain(10)
    bodies = {body for _, body in received}
    assert (len(bodies), row.attempts, drained, len(receiver.received)) == (1, 3, True, 3), (
        "the same body three times, nothing after the 200"
    )
    metrics = httpx.get(f"{svc.url}/metrics").text
    calls = {
        s.labels["status"]: s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "hitl_callback_calls_total"
    }
    assert calls == {"503": 1, "429": 1, "200": 1}


def test_a_404_dead_letters_the_callback_without_retrying(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    db_url: str,
    receiver: Receiver,
) -> None:
    receiver.answers = [404]
    svc = start_service(make_settings(HITL_DATABASE_URL=db_url, **callback_env()))
    svc.api.post("/v1/drafts", json=sample_draft(confidence=0.97, callback_url=receiver.url))
    row = wait_for(lambda: (r := outbox_rows(svc)) and r[0].status == OutboxStatus.DEAD and r[0], 20, "dead")
    assert "HTTP 404" in (row.last_error or "")
    with session_scope(svc.runtime.engine, readonly=True) as session:
        dead = (
            session.execute(select(AuditEvent).where(col(AuditEvent.action) == "outbox_dead")).scalars().all()
        )
    assert [d.detail["kind"] for d in dead] == ["decision_callback"]
    assert len(receiver.received) == 1


def test_an_sla_timeout_is_called_back_before_the_decision_that_follows(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    slack_standin: Any,
    sqlite_url: str,
    receiver: Receiver,
) -> None:
    svc = start_service(
        make_settings(
            HITL_DATABASE_URL=sqlite_url,
            SLACK_API_URL=slack_standin.base_url,
            HITL_POLICY_FILE=str(FAST_POLICY),
            **callback_env(),
        )
    )
    resp = svc.api.post(
        "/v1/drafts", json=sample_draft(interaction_type="shipping", callback_url=receiver.url)
    )
    review_id = resp.json()["id"]
    receiver.wait(1)  # the handoff tier reassigns after 3 s
    timed_out = receiver.bodies()[0]
    assert (timed_out["event"], timed_out["timeout_action"], timed_out["status"]) == (
        "timed_out",
        "reassign",
        "pending",
    )
    assert timed_out["decision"] is None
    runtime = svc.runtime
    with session_scope(runtime.engine) as session:
        record_decision(
            session=session,
            review_id=review_id,
            decision="take_over",
            actor_id="U0LEAD",
            actor_name="lead",
            now=runtime.clock.now(),
            policy=runtime.policy,
        )
    runtime.services.wake_outbox()
    receiver.wait(2)
    assert [b["event"] for b in receiver.bodies()] == ["timed_out", "decided"]
    assert receiver.bodies()[1]["decision"] == "take_over"
