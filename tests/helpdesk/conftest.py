"""Fixtures for write-back tests: a runtime on a real database, the Zendesk and Slack stand-ins, decisions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import Settings
from bot.app.workers import install_workers
from bot.outbox.worker import OutboxWorker
from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import ZendeskStandin
from storage import repo
from storage.db import make_engine, session_scope
from storage.models import Decision, DecisionKind, DeliveryLedger, OutboxItem, Review, ReviewStatus

ZD_EMAIL = "bot@example.com"
ZD_TOKEN = "zd-test-token"
AGENT_ZD_ID = 501
AGENT_SLACK_ID = "U0ANA"
AGENT_EMAIL = "ana@northwind.example"
REQUESTER_ID = 601
OPS = "#support-ops"
REVIEW_CHANNEL = "#support-review"

STATUS_FOR = {
    DecisionKind.APPROVE: ReviewStatus.APPROVED,
    DecisionKind.EDIT: ReviewStatus.EDITED,
    DecisionKind.TAKE_OVER: ReviewStatus.TAKEN_OVER,
    DecisionKind.REJECT: ReviewStatus.REJECTED,
    DecisionKind.AUTO_SEND: ReviewStatus.AUTO_SENT,
}


@dataclass
class Desk:
    """One write-back world: runtime, outbox worker and both stand-ins."""

    runtime: Runtime
    worker: OutboxWorker
    zendesk: ZendeskStandin
    slack: SlackStandin

    def ticket(self, number: int, **fields: Any) -> dict[str, Any]:
        """A Zendesk ticket with the customer's first message."""
        return self.zendesk.add_ticket(
            number,
            subject=f"Ticket {number}",
            requester_id=REQUESTER_ID,
            description="Where is my order?",
            **fields,
        )

    def decide(self, ticket: int | str, decision: str = DecisionKind.APPROVE, **kw: Any) -> str:
        """Store a decided review and its helpdesk write, as record_decision does; returns the review id."""
        with session_scope(self.runtime.engine) as session:
            return add_decision(session, self.runtime.clock.now(), str(ticket), decision, **kw)

    def deliver(self, *, passes: int = 20) -> None:
        """Run outbox passes until nothing is due now."""
        for _ in range(passes):
            if self.worker.run_once() == 0:
                return

    def rows(self, kind: str | None = None) -> list[OutboxItem]:
        with session_scope(self.runtime.engine, readonly=True) as session:
            q = select(OutboxItem).order_by(OutboxItem.id)
            if kind:
                q = q.where(OutboxItem.kind == kind)
            return list(session.execute(q).scalars())

    def review(self, review_id: str) -> Review:
        with session_scope(self.runtime.engine, readonly=True) as session:
            review = session.get(Review, review_id)
            assert review is not None
            return review

    def ledger(self, key: str) -> DeliveryLedger | None:
        with session_scope(self.runtime.engine, readonly=True) as session:
            return session.get(DeliveryLedger, key)

    def puts(self, ticket: int) -> list[dict[str, Any]]:
        return self.zendesk.requests("PUT", f"/tickets/{ticket}.json")


def add_decision(
    session: Any,
    now: datetime,
    ticket_id: str,
    decision: str = DecisionKind.APPROVE,
    *,
    final_text: str | None = None,
    draft: str = "Your order shipped yesterday and arrives Thursday.",
    actor_id: str = AGENT_SLACK_ID,
    actor_name: str = "Ana Agent",
    reason: str | None = None,
    comment: str | None = None,
    ticket_updated_at: str | None = None,
    thread: bool = True,
    interaction_type: str = "order_status",
    customer_message: str = "Where is my order #1234?",
    decided_at: datetime | None = None,
) -> str:
    """A review decided in Slack: Review + Decision + `helpdesk_write`, in the caller's transaction."""
    review_id = uuid.uuid4().hex
    final = (
        final_text if final_text is not None else (draft if decision in ("approve", "auto_send") else None)
    )
    auto = decision == DecisionKind.AUTO_SEND
    extra = {"ticket_updated_at": ticket_updated_at} if ticket_updated_at else {}
    at = decided_at or now
    review = Review(
        id=review_id,
        idempotency_key=f"k-{review_id}",
        ticket_id=ticket_id,
        interaction_type=interaction_type,
        confidence=0.97 if auto else 0.75,
        customer_message=customer_message,
        draft=draft,
        route="auto_send" if auto else "review",
        tier="standard",
        reasons=[],
        status=STATUS_FOR[DecisionKind(decision)],
        created_at=at - timedelta(minutes=5),
        extra=extra,
        decision=decision,
        decided_by="hitl" if auto else actor_id,
        decided_by_name=None if auto else actor_name,
        decided_at=at,
        final_text=final,
        slack_channel=None if auto or not thread else REVIEW_CHANNEL,
        slack_ts=None if auto or not thread else f"1700000000.{uuid.uuid4().int % 10**6:06d}",
    )
    session.add(review)
    session.flush()
    session.add(
        Decision(
            review_id=review_id,
            stage="review",
            ticket_id=ticket_id,
            interaction_type=interaction_type,
            confidence=review.confidence,
            route=review.route,
            tier="standard",
            reasons=[],
            customer_message=customer_message,
            ai_draft=draft,
            final_text=final,
            decision=decision,
            actor_id="hitl" if auto else actor_id,
            actor_name="hitl (auto-send)" if auto else actor_name,
            decided_at=at,
            seconds_to_decision=300.0,
            edit_distance=0.0 if final == draft else 0.4,
            defect_category=reason,
            defect_comment=comment,
        )
    )
    repo.enqueue(
        session=session,
        now=now,
        kind="helpdesk_write",
        order_key=f"ticket:{ticket_id}",
        payload={"review_id": review_id, "decision": decision},
        dedupe_key=f"helpdesk:{review_id}:review",
    )
    return review_id


@pytest.fixture
def zendesk() -> Iterator[ZendeskStandin]:
    with ZendeskStandin(email=ZD_EMAIL, api_token=ZD_TOKEN) as standin:
        standin.add_user(AGENT_ZD_ID, AGENT_EMAIL, "Ana Agent")
        standin.add_user(REQUESTER_ID, "maya@example.com", "Maya Patel", role="end-user")
        yield standin


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(token="xoxb-test") as standin:
        standin.add_user(AGENT_SLACK_ID, "Ana Agent", AGENT_EMAIL)
        standin.add_user("U0NOZD", "Ned Nobody", "ned@elsewhere.example")
        yield standin


def desk_settings(zendesk: ZendeskStandin, slack: SlackStandin, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "HITL_DATABASE_URL": db_url,
        "HITL_HELPDESK": "zendesk",
        "ZENDESK_URL": zendesk.base_url,
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": slack.base_url,
        "HITL_OPS_CHANNEL": OPS,
        "HITL_INGEST_TOKEN": "t",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_desk(zendesk: ZendeskStandin, slack: SlackStandin) -> Iterator[Callable[..., Desk]]:
    """`make_desk(db_url, clock=None, **settings)`: a runtime with the helpdesk kinds installed."""
    made: list[Desk] = []

    def make(db_url: str, clock: Any = None, **extra: Any) -> Desk:
        runtime = build_runtime(
            desk_settings(zendesk, slack, db_url, **extra), clock=clock, engine=make_engine(db_url)
        )
        install_workers(runtime)  # the real wiring: every module's outbox kinds, ours included
        desk = Desk(runtime, runtime.services.outbox, zendesk, slack)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        adapter = desk.runtime.services.helpdesk
        if adapter is not None:
            adapter.close()
        desk.runtime.engine.dispose()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
