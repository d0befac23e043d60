"""HITL_HELPDESK=webhook: one signed POST per decision, retried with the same id, verifiable as the docs show."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.helpdesk.webhook import sign, verify
from sandbox.server import ServerThread
from storage.models import DecisionKind, OutboxStatus
from tests.conftest import FakeClock
from tests.helpdesk.conftest import REVIEW_CHANNEL, Desk

SECRET = "whsec-test"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "helpdesk.md"


class Receiver:
    """A helpdesk's webhook endpoint: verifies like docs/helpdesk.md, deduplicates on id, can fail on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.acted: dict[str, dict[str, Any]] = {}
        self.answers: list[int] = []  # statuses to answer next (then 200)
        self.lock = threading.Lock()
        namespace: dict[str, Any] = {}
        snippet = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1)  # type: ignore[union-attr]
        exec(snippet, namespace)  # noqa: S102 (the verification snippet docs/helpdesk.md shows, run as a reader would)
        self.verify_hitl = namespace["verify_hitl"]
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            headers = {k.title(): v for k, v in request.headers.items()}
            ok = self.verify_hitl(SECRET, headers, body)
            event = json.loads(body)
            with self.lock:
                self.received.append({"headers": headers, "event": event, "verified": ok})
                status = self.answers.pop(0) if self.answers else 200
                if ok and status == 200:
                    self.acted.setdefault(event["id"], event)
            return JSONResponse({"ok": status == 200}, status_code=status if ok else 401)

        self.server = ServerThread(app)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


@pytest.fixture
def hook_desk(make_desk: Callable[..., Desk], receiver: Receiver, sqlite_url: str) -> Desk:
    return make_desk(
        sqlite_url,
        clock=FakeClock(),
        HITL_HELPDESK="webhook",
        HELPDESK_WEBHOOK_URL=f"{receiver.server.url}/hook",
        HELPDESK_WEBHOOK_SECRET=SECRET,
    )


def test_each_decision_is_one_signed_post_with_the_documented_body(
    hook_desk: Desk, receiver: Receiver
) -> None:
    review_id = hook_desk.decide(401, DecisionKind.EDIT, draft="AI text", final_text="Human text")
    hook_desk.decide(402, DecisionKind.REJECT, reason="tone_mismatch", comment="Too cold")
    hook_desk.deliver()

    assert [r["verified"] for r in receiver.received] == [True, True]
    edit = receiver.received[0]["event"]
    assert edit["id"] == f"{review_id}:review" == receiver.received[0]["headers"]["X-Hitl-Delivery"]
    assert (edit["decision"], edit["action"], edit["public_reply"], edit["ai_draft"], edit["status"]) == (
        "edit",
        "reply",
        "Human text",
        "AI text",
        "pending",
    )
    assert edit["actor"] == {"slack_user_id": "U0ANA", "name": "Ana Agent", "email": "ana@northwind.example"}
    reject = receiver.received[1]["event"]
    assert (reject["action"], reject["public_reply"], reject["reason"]) == (
        "note",
        None,
        {"category": "tone_mismatch", "comment": "Too cold"},
    )
    assert "Too cold" in reject["internal_note"]
    assert hook_desk.review(review_id).helpdesk_state == "sent"


def test_a_failed_post_is_sent_again_with_the_same_id_and_acted_on_once(
    hook_desk: Desk, receiver: Receiver
) -> None:
    receiver.answers = [500, 503]
    review_id = hook_desk.decide(403)
    clock = hook_desk.runtime.clock
    for _ in range(3):
        hook_desk.deliver()
        clock.advance(minutes=10)  # type: ignore[attr-defined]
    ids = [r["event"]["id"] for r in receiver.received]
    assert ids == [f"{review_id}:review"] * 3 and len(receiver.acted) == 1
    assert hook_desk.rows("helpdesk_write")[0].status == OutboxStatus.DONE


def test_409_from_the_receiver_tells_the_reviewer_and_is_not_retried(
    hook_desk: Desk, receiver: Receiver
) -> None:
    receiver.answers = [409]
    review_id = hook_desk.decide(404)
    hook_desk.deliver()
    assert len(receiver.received) == 1 and hook_desk.review(review_id).helpdesk_state == "conflict"
    thread = [m for m in hook_desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]
    assert len(thread) == 1 and "*not* sent" in thread[0]["text"]


def test_a_4xx_refusal_is_dead_lettered(hook_desk: Desk, receiver: Receiver) -> None:
    receiver.answers = [400]
    hook_desk.decide(405)
    hook_desk.deliver()
    row = hook_desk.rows("helpdesk_write")[0]
    assert row.status == OutboxStatus.DEAD and "webhook 400" in (row.last_error or "")


def test_signatures_are_checked_for_freshness_and_tampering() -> None:
    body = b'{"id":"x"}'
    sig = sign(SECRET, "1700000000", body)
    assert verify(SECRET, "1700000000", body, sig, now=1700000100)
    assert not verify(SECRET, "1700000000", body + b" ", sig, now=1700000100)
    assert not verify(SECRET, "1700000000", body, sig, now=1700000400)
    assert not verify("other", "1700000000", body, sig, now=1700000100)
