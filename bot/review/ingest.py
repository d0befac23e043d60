"""Taking a draft in: validate, deduplicate, route, store, and queue what must happen next."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from bot.app.settings import Settings
from bot.callbacks.hosts import check_callback_url
from bot.callbacks.queue import queue_callback
from bot.outbox.kinds import (
    CallbackEvent,
    HelpdeskWrite,
    QaCard,
    ReviewCard,
    Summarize,
    enqueue_helpdesk_write,
    enqueue_qa_card,
    enqueue_review_card,
    enqueue_summarize,
)
from bot.review.policy import ROUTE_ORDER, DraftFacts, History, Policy, Reason, RouteDecision, route_draft
from bot.sla.clock import sla_times
from storage import repo
from storage.fastpath import add_once_with, done_reading
from storage.models import AuditEvent, Decision, DecisionKind, OutboxItem, Review, ReviewStatus, Route

MAX_BODY_BYTES = 256 * 1024
UNCLASSIFIED = "unclassified"  # the interaction type of a draft nobody could classify (routes to humans)


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    tier: str | None = Field(None, max_length=64, description="standard, plus, vip, enterprise, ...")
    account_value: float | None = Field(None, ge=0, allow_inf_nan=False)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code of account_value")


class DraftIn(BaseModel):
    """A draft reply from the AI pipeline."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    ticket_id: str = Field(min_length=1, max_length=100)
    interaction_type: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="order_status, password_reset, refund, billing, cancellation, privacy, safety, ...; "
        "may be left out only when the server has a model to classify it (OPENAI_API_KEY), else 422",
    )
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)
    customer_message: str = Field(min_length=1, max_length=100_000)
    draft: str = Field(min_length=1, max_length=100_000)
    subject: str | None = Field(None, max_length=1000)
    customer: CustomerIn | None = None
    refund_amount: float | None = Field(None, ge=0, allow_inf_nan=False)
    sentiment: float | None = Field(
        None,
        ge=-1,
        le=1,
        allow_inf_nan=False,
        description="-1 (furious) to 1 (delighted); classified by the model when left out",
    )
    policy_exception: bool = False
    ticket_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    kb_sources: list[str] = Field(default_factory=list, max_length=50)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    ticket_updated_at: str | None = Field(
        None, max_length=64, description="the ticket's updated_at when drafted (Zendesk safe_update)"
    )
    model: str | None = Field(None, max_length=200)
    prompt_version: str | None = Field(None, max_length=200)
    callback_url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^https?://\S+$",
        description="POSTed the decision (signed, see the README's Decision callbacks) when the review is "
        "decided, auto-sent or timed out; its host must be in the server's HITL_CALLBACK_HOSTS, else 422",
    )

    @field_validator("interaction_type")
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return v.lower() if v is not None else None

    @field_validator("kb_sources")
    @classmethod
    def _short_sources(cls, v: list[str]) -> list[str]:
        if any(len(s) > 2000 for s in v):
            raise ValueError("each kb_sources entry must be at most 2000 characters")
        return v

    def key(self) -> str:
        """The idempotency key, or one derived from the ticket and the draft text."""
        if self.idempotency_key:
            return self.idempotency_key
        digest = hashlib.sha256(f"{self.ticket_id}\0{self.draft}".encode()).hexdigest()
        return f"auto:{digest}"

    def customer_key(self) -> str | None:
        c = self.customer
        if c is None:
            return None
        if c.id:
            return f"id:{c.id}"
        return f"email:{c.email.lower()}" if c.email else None


@dataclass(frozen=True)
class IngestResult:
    review: Review
    created: bool


def qa_sampled(review_id: str, rate: float) -> bool:
    """A stable draw: the same review is always in or out of the QA sample."""
    return int(hashlib.sha256(review_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < rate


@dataclass(frozen=True)
class Assist:
    """What AI assist (bot/ai_assist.py) adds: fail-closed reasons, a minimum route, extra facts, a summary job."""

    reasons: tuple[Reason, ...] = ()
    min_route: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    summarize: bool = False

    def apply(self, decision: RouteDecision) -> RouteDecision:
        """Add the reasons and move the route toward humans, never away."""
        route = decision.route
        if self.min_route is not None and ROUTE_ORDER[self.min_route] > ROUTE_ORDER[route]:
            route = Route(self.min_route)
        return replace(decision, route=route, reasons=decision.reasons + self.reasons)


def ingest_draft(
    *,
    session: Session,
    draft: DraftIn,
    policy: Policy,
    now: datetime,
    actor: str = "api",
    assist: Assist | None = None,
    settings: Settings | None = None,
    reads: Session | None = None,
    lookup_first: bool = True,
) -> IngestResult:
    """Store a draft once, routed; queue its Slack post or its helpdesk write in the same transaction.

    `reads` (default `session`) runs the dedupe lookup and the history, outside SQLite's write lock.
    With `lookup_first=False` there is no lookup: the review's `INSERT … ON CONFLICT DO NOTHING` is the
    dedupe, and a key stored before raises IntegrityError (the caller answers with the stored review).
    That saves a round trip per create on PostgreSQL, where a duplicate costs only its routing.

    A `callback_url` is refused (CallbackNotAllowed) unless `settings` allow its host."""
    check_callback_url(draft.callback_url, settings)
    key = draft.key()
    if lookup_first:
        existing = repo.review_by_key(session=reads or session, idempotency_key=key)
        if existing is not None:
            return IngestResult(existing, created=False)

    ckey = draft.customer_key()
    history = _history(reads or session, policy, ckey, now)
    done_reading(reads)
    c = draft.customer or CustomerIn()
    decision = _route(draft, c, policy, history, assist)
    review = _new_review(draft, key, ckey, c, decision, _extra(draft, history, assist), now)
    _write_new(
        session=session,
        review=review,
        decision=decision,
        policy=policy,
        now=now,
        actor=actor,
        summarize=bool(assist and assist.summarize),
    )
    return IngestResult(review, created=True)


def _new_review(
    draft: DraftIn,
    key: str,
    ckey: str | None,
    c: CustomerIn,
    decision: RouteDecision,
    extra: dict[str, Any],
    now: datetime,
) -> Review:
    """The pending review of a new draft, routed (not yet added to a session)."""
    return Review(
        id=uuid.uuid4().hex,
        idempotency_key=key,
        ticket_id=draft.ticket_id,
        interaction_type=draft.interaction_type or UNCLASSIFIED,
        confidence=draft.confidence,
        customer_message=draft.customer_message,
        draft=draft.draft,
        subject=draft.subject,
        customer_key=ckey,
        customer=c.model_dump(exclude_none=True),
        refund_amount=draft.refund_amount,
        sentiment=draft.sentiment,
        policy_exception=draft.policy_exception,
        ticket_url=draft.ticket_url,
        kb_sources=draft.kb_sources,
        extra=extra,
        route=decision.route,
        tier=decision.tier,
        reasons=[r.as_dict() for r in decision.reasons],
        supervisor_decisions=sorted(decision.supervisor_decisions),
        status=ReviewStatus.PENDING,
        created_at=now,
    )


def _write_new(
    *,
    session: Session,
    review: Review,
    decision: RouteDecision,
    policy: Policy,
    now: datetime,
    actor: str,
    summarize: bool,
) -> None:
    """Add the review with its audit event and its outbox or decision rows (IntegrityError: a duplicate).

    Every row is built before the first write: on SQLite the review's INSERT takes the write lock, and
    the rows follow it at once, so the lock is held for the statements only, not for building them."""
    with session.no_autoflush:
        if decision.route == Route.AUTO_SEND:
            _auto_send(session=session, review=review, policy=policy, now=now)
        else:
            _to_humans(session=session, review=review, policy=policy, now=now, summarize=summarize)
        repo.audit(
            session=session,
            at=now,
            actor=actor,
            action="ingest",
            review_id=review.id,
            ticket_id=review.ticket_id,
            route=decision.route,
            tier=decision.tier,
            reasons=[r.code for r in decision.reasons],
        )
        # The review once (a duplicate raises IntegrityError), with the rows nobody reads again in this
        # transaction, with no flush pass: one statement on PostgreSQL, one INSERT per table on SQLite.
        add_once_with(session, review, unique="idempotency_key", models=(Decision, AuditEvent, OutboxItem))


def _history(session: Session, policy: Policy, customer_key: str | None, now: datetime) -> History:
    """The customer's recent contacts, when the policy has a repeat-contact trigger."""
    if policy.triggers.repeat_contact is None:
        return History()
    since = now - policy.triggers.repeat_contact.window
    return History(
        prior_contacts=repo.prior_contacts(
            session=session, customer_key=customer_key, since=since, before=now
        )
    )


def _route(
    draft: DraftIn, c: CustomerIn, policy: Policy, history: History, assist: Assist | None
) -> RouteDecision:
    """The policy's route for the draft, moved toward humans by AI assist when it says so."""
    decision = route_draft(
        DraftFacts(
            interaction_type=draft.interaction_type or UNCLASSIFIED,
            confidence=draft.confidence,
            customer_message=draft.customer_message,
            subject=draft.subject,
            customer_tier=c.tier,
            account_value=c.account_value,
            refund_amount=draft.refund_amount,
            sentiment=draft.sentiment,
            policy_exception=draft.policy_exception,
        ),
        policy,
        history,
    )
    return assist.apply(decision) if assist is not None else decision


def _extra(draft: DraftIn, history: History, assist: Assist | None) -> dict[str, Any]:
    """What the review keeps beside its columns (model, prompt version, callback URL, assist facts)."""
    extra: dict[str, Any] = {
        k: v
        for k, v in {
            "ticket_updated_at": draft.ticket_updated_at,
            "model": draft.model,
            "prompt_version": draft.prompt_version,
            "prior_contacts": history.prior_contacts,
            "callback_url": draft.callback_url,
        }.items()
        if v is not None
    }
    if assist is not None:
        extra.update(assist.extra)
    return extra


def _to_humans(*, session: Session, review: Review, policy: Policy, now: datetime, summarize: bool) -> None:
    """Human-in/as-the-loop: the SLA clock starts and the card is queued for the tier's channel."""
    review.sla_warn_at, review.sla_due_at = sla_times(policy, review.tier, now)
    enqueue_review_card(
        session, now=now, card=ReviewCard(review_id=review.id), dedupe_key=f"post:{review.id}"
    )
    if summarize:
        enqueue_summarize(
            session, now=now, job=Summarize(review_id=review.id), dedupe_key=f"summary:{review.id}"
        )


def _auto_send(*, session: Session, review: Review, policy: Policy, now: datetime) -> None:
    """Human-on-the-loop: the reply goes to the helpdesk now; a sampled share is QA-rated later."""
    review.status = ReviewStatus.AUTO_SENT
    review.decision = DecisionKind.AUTO_SEND
    review.decided_at = now
    review.decided_by = "hitl"
    review.final_text = review.draft
    sampled = policy.qa.channel is not None and qa_sampled(review.id, policy.qa.sample_rate)
    review.extra = {**review.extra, "qa_sampled": sampled}
    session.add(
        Decision(
            review_id=review.id,
            stage="review",
            ticket_id=review.ticket_id,
            interaction_type=review.interaction_type,
            confidence=review.confidence,
            route=review.route,
            tier=review.tier,
            reasons=review.reasons,
            customer_message=review.customer_message,
            ai_draft=review.draft,
            final_text=review.draft,
            decision=DecisionKind.AUTO_SEND,
            actor_id="hitl",
            actor_name="hitl (auto-send)",
            decided_at=now,
            seconds_to_decision=0.0,
            edit_distance=0.0,
            model=review.extra.get("model"),
            prompt_version=review.extra.get("prompt_version"),
        )
    )
    write = HelpdeskWrite(review_id=review.id, decision=DecisionKind.AUTO_SEND)
    enqueue_helpdesk_write(
        session, now=now, write=write, ticket_id=review.ticket_id, dedupe_key=f"helpdesk:{review.id}:review"
    )
    if sampled:
        enqueue_qa_card(session, now=now, card=QaCard(review_id=review.id), dedupe_key=f"qa:{review.id}")
    queue_callback(session, review=review, now=now, event=CallbackEvent.AUTO_SENT)
