"""Outbox kind `helpdesk_write`: each decision reaches the helpdesk exactly once, as far as it can tell.

The delivery ledger (`DeliveryLedger`, keyed `"{review_id}:{stage}"`) is written `started` and committed
before the outside call, and `done` after it. A retry that finds `started` does not know whether the
call took effect (the process was killed, the connection dropped, a 5xx came back): for a ticket
helpdesk it reads the ticket's latest comments and looks for its own write before sending again.
Public replies are matched on exact text, author and time (at or after the stamp sent with them);
internal notes carry a `hitl review <id>` line, which customers never see. Webhooks cannot be asked,
so they are re-sent with the same `id` and the receiver deduplicates (docs/helpdesk.md).

409 (the ticket changed since the draft) is never overwritten: the reviewer is told in the thread.
A refusal (422 on a closed ticket, 404, bad credentials) is reported and dead-lettered at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.app.runtime import Runtime
from bot.app.settings import HelpdeskKind, Settings, secret
from bot.helpdesk.base import (
    Closed,
    Comment,
    CompletesWrites,
    Conflict,
    Helpdesk,
    RateLimited,
    Rejected,
    Unavailable,
    parse_stamp,
    same_text,
)
from bot.helpdesk.freshdesk import FreshdeskHelpdesk
from bot.helpdesk.intercom import IntercomHelpdesk
from bot.helpdesk.webhook import WebhookSender
from bot.helpdesk.zendesk import ZendeskHelpdesk
from bot.outbox.kinds import HelpdeskWrite, OutboxKind, SlackPost, enqueue_slack_post, review_order
from bot.outbox.registry import KindPolicy, Permanent, Retry
from bot.qa.human import sample_delivered_reply
from bot.slack.delivery import call as slack_call
from bot.slack.delivery import refresh_card
from storage import repo
from storage.db import changed, session_scope
from storage.models import Decision, DecisionKind, DeliveryLedger, OutboxItem, Review

STARTED, DONE, FAILED, CONFLICT, REJECTED = "started", "done", "failed", "conflict", "rejected"
FINAL = {DONE, CONFLICT}  # never sent again
# How long a started write may still be inside its helpdesk call (the clients' 10 s timeout, plus margin).
IN_FLIGHT = timedelta(seconds=15)

REPLY_DECISIONS = {DecisionKind.APPROVE, DecisionKind.EDIT, DecisionKind.AUTO_SEND}
WHAT_WAS_HELD = {
    DecisionKind.APPROVE: "the approved reply",
    DecisionKind.EDIT: "your edited reply",
    DecisionKind.AUTO_SEND: "the auto-sent reply",
    DecisionKind.TAKE_OVER: "the assignment to you",
    DecisionKind.REJECT: "the rejection note",
}


def _tell_reviewer_write_failed(session: Session, row: OutboxItem, why: str, now: datetime) -> None:
    """Dead-lettered write-back: the review shows it and its thread says so (ops are told by the outbox)."""
    write = HelpdeskWrite.model_validate(row.payload)
    review = session.get(Review, write.review_id)
    if review is None:
        return
    if review.helpdesk_state not in (REJECTED, "closed"):
        review.helpdesk_state = "failed"
    session.add(review)
    refresh_card(session, review=review, now=now)  # the card shows the write failed
    missing = (
        "the customer has not got the reply"
        if write.decision in REPLY_DECISIONS
        else "the ticket does not show it"
    )
    _tell_thread(
        session,
        review,
        now,
        f":x: This decision could not be written to the helpdesk, so {missing}: {why}. "
        f"Ops were told; `hitl outbox retry {row.id}` sends it again once the cause is fixed.",
    )


HELPDESK_WRITE_POLICY = KindPolicy(
    max_attempts=100,
    max_age=timedelta(hours=12),
    initial_delay=2.0,
    max_delay=600.0,
    on_dead=_tell_reviewer_write_failed,
)


def install(runtime: Runtime) -> None:
    """Register the helpdesk write-back outbox kind."""
    runtime.services.kinds.register(OutboxKind.HELPDESK_WRITE, deliver_decision, HELPDESK_WRITE_POLICY)


def make_helpdesk(
    settings: Settings, now: Callable[[], datetime] | None = None
) -> Helpdesk | WebhookSender | None:
    """The adapter HITL_HELPDESK names (None for `none`); `now` is the clock rate-limit resets are read on."""
    if settings.helpdesk is HelpdeskKind.ZENDESK:
        settings.require("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN", why="HITL_HELPDESK=zendesk")
        return ZendeskHelpdesk(
            base_url=str(settings.zendesk_url),
            email=str(settings.zendesk_email),
            api_token=str(secret(settings.zendesk_api_token)),
        )
    if settings.helpdesk is HelpdeskKind.FRESHDESK:
        settings.require("FRESHDESK_DOMAIN", "FRESHDESK_API_KEY", why="HITL_HELPDESK=freshdesk")
        return FreshdeskHelpdesk(
            domain=str(settings.freshdesk_domain), api_key=str(secret(settings.freshdesk_api_key))
        )
    if settings.helpdesk is HelpdeskKind.INTERCOM:
        settings.require("INTERCOM_ACCESS_TOKEN", why="HITL_HELPDESK=intercom")
        return IntercomHelpdesk(
            access_token=str(secret(settings.intercom_access_token)),
            base_url=settings.intercom_api_url,
            version=settings.intercom_version,
            clock=(lambda: now().timestamp()) if now is not None else time.time,
        )
    if settings.helpdesk is HelpdeskKind.WEBHOOK:
        settings.require("HELPDESK_WEBHOOK_URL", "HELPDESK_WEBHOOK_SECRET", why="HITL_HELPDESK=webhook")
        return WebhookSender(
            url=str(settings.helpdesk_webhook_url), secret=str(secret(settings.helpdesk_webhook_secret))
        )
    return None


def helpdesk_of(runtime: Runtime) -> Helpdesk | WebhookSender | None:
    """The runtime's adapter, built once."""
    services = runtime.services
    if not services.helpdesk_ready:
        services.helpdesk, services.helpdesk_ready = make_helpdesk(runtime.settings, runtime.clock.now), True
    return services.helpdesk


# ------------------------------------------------------------------ what is delivered


@dataclass(frozen=True)
class DecisionFacts:
    """Everything a write-back needs about one decision, read from the store."""

    key: str
    review_id: str
    stage: str
    decision: str
    ticket_id: str
    ticket_url: str | None
    ticket_updated_at: str | None
    interaction_type: str
    confidence: float
    route: str
    tier: str
    ai_draft: str
    final_text: str | None
    actor_id: str | None
    actor_name: str | None
    decided_at: datetime | None
    reason_category: str | None
    reason_comment: str | None
    model: str | None
    prompt_version: str | None

    def event(self, *, action: str, status: str | None, actor_email: str | None = None) -> dict[str, Any]:
        """The webhook body (documented in docs/helpdesk.md)."""
        return {
            "id": self.key,
            "type": "decision",
            "review_id": self.review_id,
            "ticket_id": self.ticket_id,
            "ticket_url": self.ticket_url,
            "decision": self.decision,
            "action": action,
            "public_reply": self.final_text if action == "reply" else None,
            "internal_note": None if action == "reply" else _note_text(self),
            "status": status,
            "ai_draft": self.ai_draft,
            "final_text": self.final_text,
            "actor": {"slack_user_id": self.actor_id, "name": self.actor_name, "email": actor_email},
            "reason": (
                {"category": self.reason_category, "comment": self.reason_comment}
                if self.decision == DecisionKind.REJECT
                else None
            ),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "interaction_type": self.interaction_type,
            "confidence": self.confidence,
            "route": self.route,
            "tier": self.tier,
            "ticket_updated_at": self.ticket_updated_at,
            "model": self.model,
            "prompt_version": self.prompt_version,
        }


def _load_facts(runtime: Runtime, write: HelpdeskWrite) -> DecisionFacts:
    review_id, stage = write.review_id, write.stage
    with session_scope(runtime.engine, readonly=True) as session:
        review = session.get(Review, review_id)
        row = (
            session.execute(select(Decision).where(Decision.review_id == review_id, Decision.stage == stage))
            .scalars()
            .first()
        )
    if review is None:
        raise Permanent(f"review {review_id} does not exist")
    return DecisionFacts(
        key=f"{review_id}:{stage}",
        review_id=review_id,
        stage=stage,
        ticket_id=review.ticket_id,
        ticket_url=review.ticket_url,
        ticket_updated_at=review.extra.get("ticket_updated_at"),
        interaction_type=review.interaction_type,
        confidence=review.confidence,
        route=review.route,
        tier=review.tier,
        ai_draft=review.draft,
        **(_decided(row, review) if row is not None else _decided_on_review(review, write)),
    )


def _decided(row: Decision, review: Review) -> dict[str, Any]:
    """Who decided what, from the stage's feedback row."""
    return {
        "decision": str(row.decision),
        "final_text": row.final_text or review.final_text,
        "actor_id": row.actor_id,
        "actor_name": row.actor_name or review.decided_by_name,
        "decided_at": row.decided_at,
        "reason_category": row.defect_category,
        "reason_comment": row.defect_comment,
        "model": row.model,
        "prompt_version": row.prompt_version,
    }


def _decided_on_review(review: Review, write: HelpdeskWrite) -> dict[str, Any]:
    """Who decided what, from the review itself (no feedback row for the stage)."""
    return {
        "decision": str(write.decision or review.decision),
        "final_text": review.final_text,
        "actor_id": review.decided_by,
        "actor_name": review.decided_by_name,
        "decided_at": review.decided_at,
        "reason_category": None,
        "reason_comment": None,
        "model": review.extra.get("model"),
        "prompt_version": review.extra.get("prompt_version"),
    }


def _action(decision: str) -> str:
    if decision in REPLY_DECISIONS:
        return "reply"
    if decision == DecisionKind.TAKE_OVER:
        return "assign"
    if decision == DecisionKind.REJECT:
        return "note"
    raise Permanent(f"decision {decision!r} has no helpdesk write")


def _marker(facts: DecisionFacts) -> str:
    return f"hitl review {facts.review_id}"


def _who(facts: DecisionFacts) -> str:
    return facts.actor_name or facts.actor_id or "someone"


def _note_text(
    facts: DecisionFacts, *, who: str | None = None, agent_missing: str | None = None, desk: str = "helpdesk"
) -> str:
    """The internal note for a take-over or a rejection (internal: the customer never sees it)."""
    who = who or _who(facts)
    if facts.decision == DecisionKind.TAKE_OVER:
        lines = [f"Taken over in Slack by {who}. The AI draft below was NOT sent; it is only a suggestion."]
        if agent_missing:
            lines.append(f"No {desk} agent has the email {agent_missing}: please assign the ticket by hand.")
    else:
        reason = (facts.reason_category or "no reason given").replace("_", " ")
        if facts.reason_comment:
            reason += f" — {facts.reason_comment}"
        lines = [f"AI draft rejected in Slack by {who}. Reason: {reason}.", "The draft below was NOT sent."]
    lines += [
        "",
        "--- AI draft ---",
        facts.ai_draft,
        "---",
        f"{_marker(facts)} · {facts.interaction_type} · confidence {facts.confidence:.2f}",
    ]
    return "\n".join(lines)


def _author_note(facts: DecisionFacts, email: str | None, desk: str = "Zendesk") -> str:
    found = f"no {desk} agent has the email {email}" if email else "their email is not known to Slack"
    return (
        f"The public reply above was {'edited and ' if facts.decision == DecisionKind.EDIT else ''}approved in Slack "
        f"by {_who(facts)}; {found}, so it shows the API user as its author.\n{_marker(facts)}"
    )


# ------------------------------------------------------------------ the outbox handler


def deliver_decision(runtime: Runtime, item: OutboxItem, write: HelpdeskWrite) -> dict[str, Any]:
    """Outbox handler for `helpdesk_write` {review_id, decision[, stage]}."""
    facts = _load_facts(runtime, write)
    adapter = helpdesk_of(runtime)
    try:
        if adapter is None:
            return {"outcome": "skipped", "helpdesk": "none"}
        if isinstance(adapter, WebhookSender):
            return _deliver_webhook(runtime, adapter, facts)
        return _deliver_ticket(runtime, adapter, facts)
    except (RateLimited, Unavailable) as exc:
        raise Retry(str(exc), retry_after=exc.retry_after) from exc
    except Rejected as exc:
        with session_scope(runtime.engine) as session:
            review = session.get(Review, facts.review_id)
            if review is not None:
                review.helpdesk_state = "closed" if isinstance(exc, Closed) else REJECTED
                session.add(review)
                refresh_card(session, review=review, now=runtime.clock.now())
        raise Permanent(str(exc)) from exc


def _deliver_webhook(runtime: Runtime, sender: WebhookSender, facts: DecisionFacts) -> dict[str, Any]:
    action = _action(facts.decision)

    def prepare() -> dict[str, Any]:
        email = None if facts.decision == DecisionKind.AUTO_SEND else _actor_email(runtime, facts.actor_id)
        return {"action": action, "status": _status_for(runtime, facts.decision), "actor_email": email}

    def post(info: dict[str, Any]) -> dict[str, Any]:
        event = facts.event(action=action, status=info["status"], actor_email=info["actor_email"])
        return {"http_status": sender.send(event)}

    # A webhook cannot be asked whether a lost attempt arrived: it is sent again with the same id (no check).
    return _once(
        runtime,
        facts,
        key=facts.key,
        state_after="sent",
        prepare=prepare,
        check=None,
        call=post,
        helpdesk_name="the helpdesk",
    )


def _deliver_ticket(runtime: Runtime, hd: Helpdesk, facts: DecisionFacts) -> dict[str, Any]:
    name = str(getattr(hd, "name", "the helpdesk"))
    action = _action(facts.decision)
    state_after = {"reply": "sent", "assign": "assigned", "note": "noted"}[action]
    main = _once(
        runtime,
        facts,
        key=facts.key,
        state_after=state_after,
        helpdesk_name=name,
        prepare=lambda: _prepare_ticket(runtime, hd, facts, action),
        check=lambda info: _find_and_complete(hd, facts, info),
        call=lambda info: _write_ticket(hd, facts, info),
    )
    if main.get("warning") and not main.get("warning_told"):
        _tell_warning(runtime, facts, name, str(main["warning"]))
    if main.get("outcome") == CONFLICT or not main.get("author_missing") or action != "reply":
        return main
    # The reply went out under the API user: say in a note who really approved it (best effort: the reply
    # is what matters, so a refused note is audited, not dead-lettered).
    note = _author_note(facts, main.get("actor_email"), name)
    try:
        _once(
            runtime,
            facts,
            key=f"{facts.key}:author-note",
            state_after=None,
            helpdesk_name=name,
            prepare=lambda: {"action": "note", "author_id": None, "stamp": None},
            check=lambda info: _find_ours(hd, facts, info, note),
            call=lambda info: _wrote(hd.note(facts.ticket_id, body=note, author_id=None)),
        )
    except Rejected as exc:
        with session_scope(runtime.engine) as session:
            repo.audit(
                session=session,
                at=runtime.clock.now(),
                actor="hitl",
                action="helpdesk_note_failed",
                review_id=facts.review_id,
                error=str(exc)[:300],
            )
    return main


def _tell_warning(runtime: Runtime, facts: DecisionFacts, name: str, warning: str) -> None:
    """The comment went out but its status or assignment was refused: the reviewer is told, once."""
    with session_scope(runtime.engine) as session:
        led = session.get(DeliveryLedger, facts.key)
        if led is not None:
            led.outcome = {**led.outcome, "warning_told": True}
            session.add(led)
        review = session.get(Review, facts.review_id)
        if review is not None:
            _tell_thread(
                session,
                review,
                runtime.clock.now(),
                f":warning: Written to {name}, but {warning}. Please set it by hand on the ticket.",
                ops_if_no_thread=runtime.settings.ops_channel,
            )


def _prepare_ticket(runtime: Runtime, hd: Helpdesk, facts: DecisionFacts, action: str) -> dict[str, Any]:
    """Settle, once, who writes, the status, and the safe-update stamp; kept in the ledger for retries."""
    info: dict[str, Any] = {
        "action": action,
        "status": _status_for(runtime, facts.decision),
        "author_id": None,
        "assignee_id": None,
        "author_missing": False,
        "actor_email": None,
        "helpdesk": str(getattr(hd, "name", "helpdesk")),
    }
    if facts.decision != DecisionKind.AUTO_SEND:
        email = _actor_email(runtime, facts.actor_id)
        agent = hd.find_agent(email) if email else None
        info.update(
            actor_email=email,
            author_id=agent.id if agent else None,
            author_missing=agent is None,
            agent_name=agent.name if agent else None,
        )
        if action == "assign":
            info["assignee_id"] = agent.id if agent else None
    # Replies and assignments must not overwrite a ticket a human changed: the pipeline's stamp when it sent
    # one (the ticket as the AI saw it), else the ticket as it is now. Notes only add, so need none.
    info["stamp"] = (
        (facts.ticket_updated_at or hd.ticket_stamp(facts.ticket_id)) if action != "note" else None
    )
    return info


def _status_for(runtime: Runtime, decision: str) -> str | None:
    hp = runtime.policy.helpdesk
    if decision in REPLY_DECISIONS:
        return hp.status_after_reply
    if decision == DecisionKind.TAKE_OVER:
        return hp.status_after_take_over
    return None


def _ticket_body(facts: DecisionFacts, info: dict[str, Any]) -> str:
    if info["action"] == "reply":
        return facts.final_text or facts.ai_draft
    missing = None
    if info["action"] == "assign" and info.get("author_missing"):
        missing = info.get("actor_email") or "(unknown to Slack)"
    desk = str(info.get("helpdesk") or "Zendesk")
    return _note_text(facts, who=info.get("agent_name"), agent_missing=missing, desk=desk)


def _write_ticket(hd: Helpdesk, facts: DecisionFacts, info: dict[str, Any]) -> dict[str, Any]:
    body = _ticket_body(facts, info)
    if info["action"] == "reply":
        return _wrote(
            hd.reply(
                facts.ticket_id,
                body=body,
                author_id=info["author_id"],
                status=info["status"],
                stamp=info["stamp"],
            )
        )
    if info["action"] == "assign":
        return _wrote(
            hd.assign(
                facts.ticket_id,
                assignee_id=info["assignee_id"],
                note=body,
                author_id=info["author_id"],
                status=info["status"],
                stamp=info["stamp"],
            )
        )
    return _wrote(hd.note(facts.ticket_id, body=body, author_id=info["author_id"]))


def _wrote(result: Any) -> dict[str, Any]:
    wrote = {"comment_id": result.comment_id, "ticket_updated_at": result.updated_at}
    if getattr(result, "warning", None):
        wrote["warning"] = result.warning
    return wrote


def _find_and_complete(hd: Helpdesk, facts: DecisionFacts, info: dict[str, Any]) -> dict[str, Any] | None:
    """Our comment landed before the outcome was lost: where status and assignment are separate calls
    (Freshdesk, Intercom), apply them now; the comment itself is never sent twice."""
    found = _find_ours(hd, facts, info, _ticket_body(facts, info))
    if found is None or not isinstance(hd, CompletesWrites) or info["action"] == "note":
        return found
    warning = hd.complete(
        facts.ticket_id,
        assignee_id=info.get("assignee_id"),
        status=info.get("status"),
        author_id=info.get("author_id"),
    )
    return {**found, "warning": warning} if warning else found


def _find_ours(hd: Helpdesk, facts: DecisionFacts, info: dict[str, Any], body: str) -> dict[str, Any] | None:
    """After an unknown outcome: did our write land? Same text, visibility and author, not older than the stamp."""
    public = info["action"] == "reply"
    since = _parse(info.get("stamp"))
    for c in hd.latest_comments(facts.ticket_id, limit=100):
        if c.public != public or not same_text(c.body, body):
            continue
        if info.get("author_id") is not None and c.author_id != info["author_id"]:
            continue
        if public and since is not None and c.created_at is not None and _aware(c.created_at) < since:
            continue
        return _found(c)
    return None


def _found(c: Comment) -> dict[str, Any]:
    return {"comment_id": c.id, "found_after_unknown_outcome": True}


def _parse(stamp: object) -> datetime | None:
    """The stamp as an aware time: ISO 8601 (Zendesk, Freshdesk) or Unix seconds (Intercom)."""
    return parse_stamp(stamp) if isinstance(stamp, str) else None


# ------------------------------------------------------------------ the ledger


def _once(
    runtime: Runtime,
    facts: DecisionFacts,
    *,
    key: str,
    state_after: str | None,
    helpdesk_name: str,
    prepare: Callable[[], dict[str, Any]],
    check: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
    call: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Make `call` take effect once per ledger key, whatever crashes or retries happen around it."""
    with session_scope(runtime.engine, readonly=True) as session:
        led = session.get(DeliveryLedger, key)
    settled = _settled_before(runtime, facts, key, led, check, state_after)
    if settled is not None:
        return settled
    info = dict(led.outcome) if led is not None else prepare()
    if not _claim_start(runtime, key, led, info):
        # Another worker started this very write a moment ago (it may still be waiting for the helpdesk):
        # never send beside it; come back after its call has had time to finish, then look before sending.
        raise Retry(
            f"write {key} was started by another worker just now", retry_after=IN_FLIGHT.total_seconds()
        )
    return _call_once(runtime, facts, key, info, call, state_after=state_after, helpdesk_name=helpdesk_name)


def _settled_before(
    runtime: Runtime,
    facts: DecisionFacts,
    key: str,
    led: DeliveryLedger | None,
    check: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
    state_after: str | None,
) -> dict[str, Any] | None:
    """The outcome when this write is already final, or was found in the helpdesk after an unknown outcome."""
    if led is not None and led.state in FINAL:
        return dict(led.outcome)
    if led is not None and led.state == STARTED and check is not None:
        found = check(dict(led.outcome))
        if found is not None:
            return _settle(runtime, facts, key, DONE, {**led.outcome, **found}, state_after)
    return None


def _call_once(
    runtime: Runtime,
    facts: DecisionFacts,
    key: str,
    info: dict[str, Any],
    call: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    state_after: str | None,
    helpdesk_name: str,
) -> dict[str, Any]:
    """Make the claimed call and record how it ended (a maybe-applied failure stays `started`)."""
    try:
        result = call(info)
    except Conflict as exc:
        return _conflict(runtime, facts, key, info, exc, helpdesk_name)
    except Unavailable as exc:
        if not exc.maybe_applied:
            _mark(runtime, key, FAILED, {**info, "error": str(exc)[:300]})
        raise  # maybe applied: stays `started`, and the next attempt looks before sending
    except RateLimited as exc:
        _mark(runtime, key, FAILED, {**info, "error": str(exc)[:300]})
        raise
    except Rejected as exc:
        _mark(runtime, key, REJECTED, {**info, "error": str(exc)[:300]})
        raise
    return _settle(runtime, facts, key, DONE, {**info, **result}, state_after)


def _claim_start(runtime: Runtime, key: str, seen: DeliveryLedger | None, info: dict[str, Any]) -> bool:
    """Mark the write `started`, as a compare-and-set on what we read: only one worker can win it.

    No ledger row yet: an INSERT (the primary key lets one in). A row we saw: an UPDATE conditional on its
    state and start time being what we read. A write started by someone else less than IN_FLIGHT ago is
    not taken over at all: that worker may still be inside its call to the helpdesk."""
    now = runtime.clock.now()
    if seen is not None and seen.state == STARTED and now - _aware(seen.started_at) < IN_FLIGHT:
        return False
    try:
        with session_scope(runtime.engine) as session:
            if seen is None:
                session.add(DeliveryLedger(key=key, state=STARTED, started_at=now, outcome=info))
                session.flush()
                return True
            won = changed(
                session,
                update(DeliveryLedger)
                .where(
                    col(DeliveryLedger.key) == key,
                    col(DeliveryLedger.state) == seen.state,
                    col(DeliveryLedger.started_at) == seen.started_at,
                )
                .values(state=STARTED, started_at=now, outcome=info),
            )
            return won == 1
    except IntegrityError:
        return False  # another worker inserted the row first


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _mark(runtime: Runtime, key: str, state: str, outcome: dict[str, Any]) -> None:
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        led = session.get(DeliveryLedger, key)
        if led is None:
            led = DeliveryLedger(key=key, state=state, started_at=now, outcome=outcome)
        led.state, led.outcome = state, outcome
        if state == STARTED:
            led.started_at = now
        session.add(led)


def _settle(
    runtime: Runtime,
    facts: DecisionFacts,
    key: str,
    state: str,
    outcome: dict[str, Any],
    state_after: str | None,
) -> dict[str, Any]:
    """Record the write as done, with the review's helpdesk state and an audit row, in one transaction."""
    now = runtime.clock.now()
    outcome = {**outcome, "outcome": state_after or "sent"}
    with session_scope(runtime.engine) as session:
        led = session.get(DeliveryLedger, key) or DeliveryLedger(key=key, state=state, started_at=now)
        led.state, led.outcome, led.finished_at = state, outcome, now
        session.add(led)
        review = session.get(Review, facts.review_id)
        if review is not None and state_after is not None:
            review.helpdesk_state = state_after
            session.add(review)
            refresh_card(session, review=review, now=now)  # the card shows it was delivered
        sample_delivered_reply(session, runtime.policy, facts, key=key, settled=state, now=now)
        repo.audit(
            session=session,
            at=now,
            actor="hitl",
            action="helpdesk_write",
            review_id=facts.review_id,
            key=key,
            ticket_id=facts.ticket_id,
            decision=facts.decision,
            action_taken=outcome.get("action"),
            comment_id=outcome.get("comment_id"),
            found_after_unknown_outcome=bool(outcome.get("found_after_unknown_outcome")),
        )
    return outcome


def _conflict(
    runtime: Runtime, facts: DecisionFacts, key: str, info: dict[str, Any], exc: Conflict, helpdesk_name: str
) -> dict[str, Any]:
    """409: record it, never overwrite, and tell the reviewer in the thread."""
    now = runtime.clock.now()
    outcome = {**info, "outcome": CONFLICT, "error": str(exc)[:300]}
    held = WHAT_WAS_HELD.get(DecisionKind(facts.decision), "the decision")
    with session_scope(runtime.engine) as session:
        led = session.get(DeliveryLedger, key) or DeliveryLedger(key=key, state=CONFLICT, started_at=now)
        led.state, led.outcome, led.finished_at = CONFLICT, outcome, now
        session.add(led)
        review = session.get(Review, facts.review_id)
        if review is not None:
            review.helpdesk_state = CONFLICT
            session.add(review)
            refresh_card(session, review=review, now=now)  # the card shows it was not sent
            url = _ticket_link(runtime, facts)
            link = f"<{url}|#{facts.ticket_id}>" if url else f"#{facts.ticket_id}"
            _tell_thread(
                session,
                review,
                now,
                f":warning: Ticket {link} changed in {helpdesk_name} after this draft was written "
                f"(someone replied or updated it), so {held} was *not* sent and nothing was overwritten. "
                f"Please open the ticket and look again.",
                ops_if_no_thread=runtime.settings.ops_channel,
            )
        repo.audit(
            session=session,
            at=now,
            actor="hitl",
            action="helpdesk_conflict",
            review_id=facts.review_id,
            key=key,
            ticket_id=facts.ticket_id,
            decision=facts.decision,
            error=str(exc)[:300],
        )
    return outcome


def _ticket_link(runtime: Runtime, facts: DecisionFacts) -> str | None:
    adapter = helpdesk_of(runtime)
    if isinstance(adapter, ZendeskHelpdesk | FreshdeskHelpdesk | IntercomHelpdesk):
        return adapter.ticket_url(facts.ticket_id)
    return facts.ticket_url


def _tell_thread(
    session: Session, review: Review, now: datetime, text: str, *, ops_if_no_thread: str | None = None
) -> None:
    """A reply in the review's Slack thread (or the ops channel for auto-sent replies, which have none)."""
    if review.slack_ts:
        post = SlackPost(review_id=review.id, in_review_thread=True, text=text)
    elif ops_if_no_thread:
        post = SlackPost(
            channel=ops_if_no_thread,
            text=f"Auto-sent reply for ticket {review.ticket_id}: {text}",
            review_id=review.id,
        )
    else:
        return
    enqueue_slack_post(session, now=now, post=post, order_key=review_order(review.id))


# ------------------------------------------------------------------ who decided, as the helpdesk knows them


def _actor_email(runtime: Runtime, slack_user_id: str | None) -> str | None:
    """The deciding Slack user's email (users.info), cached per process; None when Slack does not say."""
    if not slack_user_id or not slack_user_id.startswith(("U", "W")):
        return None
    cache: dict[str, str | None] = runtime.services.slack_emails
    if slack_user_id not in cache:
        try:
            resp = slack_call(runtime, "users_info", user=slack_user_id)  # 429 / 5xx raise Retry
        except Permanent:
            email = None  # user_not_found, missing scope: fall back to the API user and say so
        else:
            email = ((resp.get("user") or {}).get("profile") or {}).get("email")
        cache[slack_user_id] = email
    return cache[slack_user_id]
