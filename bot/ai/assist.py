"""AI assist around the human loop: classify what a pipeline left out, summarise long messages, regenerate a
draft to a reviewer's instruction, and draft replies for helpdesks without an AI pipeline.

The model never blocks a human: classification before routing has a short timeout and fails closed
(the draft goes to a person, with the reason on the card); summaries are written after the review is
stored and simply do not appear when the model is down; regenerate falls back to editing by hand.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from bot.ai.kb import KbCache, KnowledgeBase, Snippet
from bot.ai.llm import LLM, Classification, LLMUnavailable, TicketText, llm_from_settings
from bot.ai.pii import placeholders_in
from bot.app.runtime import Runtime
from bot.outbox.kinds import OutboxKind, RefreshCard, Summarize, enqueue_refresh_card
from bot.outbox.registry import KindPolicy, Permanent, Retry
from bot.review.ingest import Assist, DraftIn
from bot.review.policy import Reason
from storage import repo
from storage.db import changed, session_scope
from storage.models import OutboxItem, Review, ReviewStatus

log = logging.getLogger("hitl.ai")

SUMMARY_MIN_CHARS = 600
SUMMARY_POLICY = KindPolicy(
    max_attempts=3, max_age=timedelta(minutes=30), initial_delay=5.0, max_delay=60.0, announce_dead=False
)
NO_DRAFT_TEXT = "(no AI draft: the model was unavailable)"
REGENERATE_UNAVAILABLE = "AI regenerate unavailable — edit by hand"
REGENERATING = "⏳ Regenerating with AI…"
# A model's own confidence is not calibrated: cap it, lower still when no knowledge-base snippet backs the reply.
DRAFT_CONFIDENCE_CAP = 0.9
UNGROUNDED_CONFIDENCE_CAP = 0.5


class AiOff(Exception):
    """AI assist is not configured (no OPENAI_API_KEY)."""


class ReviewMissing(LookupError):
    """No review with that id."""


def install(runtime: Runtime) -> None:
    """Build the model client and knowledge base once, and register the `ai_summarize` outbox kind."""
    settings = runtime.settings
    llm = llm_from_settings(settings, banned_phrases=runtime.policy.tone.banned_phrases)
    runtime.services.llm = llm
    runtime.services.kb = KbCache(settings.kb_dir)
    runtime.services.kinds.register(OutboxKind.AI_SUMMARIZE, summarize_review, SUMMARY_POLICY)
    if llm is None:
        log.info("AI assist is off (OPENAI_API_KEY is not set): no summaries, classification or regenerate")
    else:
        log.info(
            "AI assist on: model %s at %s",
            settings.openai_model,
            settings.openai_base_url or "api.openai.com",
        )


def get_llm(runtime: Runtime) -> LLM | None:
    """The configured model, or None when AI assist is off."""
    llm = runtime.services.llm
    return llm if isinstance(llm, LLM) else None


def get_kb(runtime: Runtime) -> KnowledgeBase:
    cache = runtime.services.kb
    return cache.get() if isinstance(cache, KbCache) else KnowledgeBase([])


def _policy_types(runtime: Runtime) -> list[str]:
    policy = runtime.policy
    return list(dict.fromkeys([*policy.interaction_types, *policy.human_only]))


# ---------------------------------------------------------------- before routing


def prepare_draft(runtime: Runtime, draft: DraftIn) -> tuple[DraftIn, Assist]:
    """Fill in the interaction type and sentiment a pipeline did not send (short timeout, fail closed).

    Without a model, or with nothing to classify, this touches neither the model nor the database."""
    llm = get_llm(runtime)
    summarize = llm is not None and len(draft.customer_message) > SUMMARY_MIN_CHARS
    missing = [f for f in ("interaction_type", "sentiment") if getattr(draft, f) is None]
    if not missing:
        return draft, Assist(summarize=summarize)
    if llm is None:
        return draft, _without_model(draft, summarize)
    if _already_stored(runtime, draft):
        return draft, Assist()  # ingest answers with the stored review: no model call
    return _classified_draft(runtime, llm, draft, missing, summarize)


def _already_stored(runtime: Runtime, draft: DraftIn) -> bool:
    """A draft with this idempotency key is in the store (a retry: classifying it again is wasted)."""
    with session_scope(runtime.engine, readonly=True) as session:
        return repo.review_by_key(session=session, idempotency_key=draft.key()) is not None


def _without_model(draft: DraftIn, summarize: bool) -> Assist:
    """No model to classify with: a draft without an interaction type goes to a human."""
    if draft.interaction_type is None:
        return Assist(
            reasons=(
                Reason(
                    "classification_failed",
                    "no interaction type sent and no model configured to classify it",
                ),
            ),
            min_route="review",
        )
    return Assist(summarize=summarize)  # no sentiment and no model: routed on what was sent


def _classified_draft(
    runtime: Runtime, llm: LLM, draft: DraftIn, missing: list[str], summarize: bool
) -> tuple[DraftIn, Assist]:
    """The draft with the `missing` fields the model classified, or unchanged and bound for review."""
    try:
        found = llm.classify(
            draft.customer_message,
            subject=draft.subject,
            interaction_types=_policy_types(runtime),
            timeout=runtime.settings.openai_classify_timeout,
            max_retries=0,
        )
    except LLMUnavailable as exc:
        return draft, Assist(
            reasons=(
                Reason(
                    "classification_failed",
                    f"{' and '.join(missing)} not classified: the model was unavailable ({exc.reason})",
                ),
            ),
            min_route="review",
            summarize=summarize,
            extra={
                "ai": {
                    "classify_failed": exc.reason,
                    "classify_prompt_version": llm.prompt_version("classify"),
                }
            },
        )
    update: dict[str, Any] = {f: getattr(found, f) for f in missing}
    extra = {
        "ai": {
            "classified": missing,
            "classify_prompt_version": llm.prompt_version("classify"),
            **({"sentiment": found.sentiment} if "sentiment" in missing else {}),
        }
    }
    return draft.model_copy(update=update), Assist(summarize=summarize, extra=extra)


# ---------------------------------------------------------------- after storing


def summarize_review(runtime: Runtime, item: OutboxItem, job: Summarize) -> dict[str, Any] | None:
    """Outbox `ai_summarize` {review_id}: write review.extra["summary"] and refresh the card."""
    llm = get_llm(runtime)
    if llm is None:
        return {"skipped": "AI assist is off"}
    review_id = job.review_id
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
        if review is None:
            raise Permanent(f"no review {review_id!r}")
        if review.status != ReviewStatus.PENDING or review.extra.get("summary"):
            return {"skipped": "already decided or summarised"}
        text = review.customer_message
    try:
        summary = llm.summarize(text)
    except LLMUnavailable as exc:
        raise Retry(f"summary not made: {exc}") from exc
    with session_scope(runtime.engine) as session:
        review = repo.get_review(session=session, review_id=review_id)
        if review is None:
            raise Permanent(f"no review {review_id!r}")
        extra = {
            **review.extra,
            "summary": summary,
            "summary_prompt_version": llm.prompt_version("summarize"),
        }
        # Conditional, like every state change: a decision that got in first keeps its own extra fields.
        written = changed(
            session,
            update(Review)
            .where(col(Review.id) == review_id, col(Review.status) == ReviewStatus.PENDING)
            .values(extra=extra)
            .execution_options(synchronize_session=False),
        )
        if not written:
            return {"skipped": "decided meanwhile"}
        enqueue_refresh_card(
            session,
            now=runtime.clock.now(),
            refresh=RefreshCard(review_id=review_id),
            dedupe_key=f"refresh:{review_id}:summary",
        )
    runtime.services.wake_outbox()
    return {"summary_chars": len(summary)}


# ---------------------------------------------------------------- in the Edit modal


def kb_snippets_for(runtime: Runtime, *, sources: list[str], text: str) -> list[Snippet]:
    """The snippets a draft's kb_sources name (best first for `text`), or the best matches when it names none."""
    return get_kb(runtime).search(text, sources=sources)


def regenerate_for_review(
    runtime: Runtime, *, review_id: str, instruction: str, current_text: str | None = None
) -> str:
    """The review's draft (or the text being edited) rewritten to the reviewer's instruction.

    Raises AiOff when no model is configured and LLMUnavailable when it fails: the reviewer edits by hand.
    """
    llm = get_llm(runtime)
    if llm is None:
        raise AiOff("AI assist is not configured")
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
        if review is None:
            raise ReviewMissing(review_id)
        customer, draft, sources = review.customer_message, review.draft, list(review.kb_sources)
    snippets = kb_snippets_for(runtime, sources=sources, text=f"{customer}\n{instruction}")
    return llm.regenerate(
        draft=current_text or draft, instruction=instruction, kb_snippets=snippets, customer_message=customer
    )


def regenerate_for_modal(
    runtime: Runtime, *, review_id: str, instruction: str, current_text: str, actor: str
) -> tuple[str, str]:
    """(text, note) for the Edit modal after Regenerate: the rewrite, or the reviewer's own text and a quiet note."""
    try:
        text = regenerate_for_review(
            runtime, review_id=review_id, instruction=instruction, current_text=current_text
        )
    except (AiOff, LLMUnavailable):
        return current_text, REGENERATE_UNAVAILABLE
    llm = get_llm(runtime)
    version = llm.prompt_version("regenerate") if llm else None
    with session_scope(runtime.engine) as session:
        repo.audit(
            session=session,
            at=runtime.clock.now(),
            actor=actor,
            action="ai_regenerate",
            review_id=review_id,
            prompt_version=version,
            instruction=instruction[:200],
        )
    note = (
        "✨ Regenerated by AI"
        + (f" (“{instruction[:200]}”)" if instruction else "")
        + ": read it before sending."
    )
    left = placeholders_in(text)
    if left:
        note += f" Replace {', '.join(left)}: details masked from the AI."
    return text, note


# ---------------------------------------------------------------- helpdesks without an AI pipeline


@dataclass(frozen=True)
class Ticket:
    """A helpdesk ticket to draft a reply for (from the Zendesk webhook)."""

    ticket_id: str
    message: str
    updated_at: str
    subject: str | None = None
    requester_name: str | None = None
    requester_email: str | None = None
    requester_id: str | None = None
    url: str | None = None


def draft_for_ticket(runtime: Runtime, ticket: Ticket, *, source: str = "zendesk") -> tuple[DraftIn, Assist]:
    """Draft, classify and estimate confidence for a ticket; when the model fails, a human gets it anyway."""
    llm = get_llm(runtime)
    if llm is None:
        raise AiOff("AI assist is not configured")
    snippets = get_kb(runtime).search(f"{ticket.subject or ''}\n{ticket.message}")
    reasons: list[Reason] = []
    ai: dict[str, Any] = {"drafted_by": "hitl", "source": source, "kb_snippets": [s.title for s in snippets]}
    # Both calls at once: the webhook answers in the time of the slower one.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hitl-ai") as pool:
        drafting = pool.submit(
            llm.draft_reply,
            TicketText(message=ticket.message, subject=ticket.subject, customer_name=ticket.requester_name),
            snippets,
        )
        classifying = pool.submit(
            llm.classify,
            ticket.message,
            subject=ticket.subject,
            interaction_types=_policy_types(runtime),
            timeout=runtime.settings.openai_classify_timeout,
        )
    text, confidence = _drafted(drafting, bool(snippets), ai, reasons)
    found = _classified(classifying, llm, ai, reasons)
    draft = DraftIn.model_validate(
        {
            "ticket_id": ticket.ticket_id,
            "interaction_type": found.interaction_type if found else None,
            "confidence": confidence,
            "customer_message": ticket.message,
            "draft": text,
            "subject": ticket.subject,
            "customer": _customer(ticket),
            "sentiment": found.sentiment if found else None,
            "ticket_url": ticket.url,
            "kb_sources": list(dict.fromkeys(s.source for s in snippets)),
            "idempotency_key": f"{source}:{ticket.ticket_id}:{ticket.updated_at}",
            "ticket_updated_at": ticket.updated_at,
            "model": llm.model,
            "prompt_version": llm.prompt_version("draft") if "draft_failed" not in ai else None,
        }
    )
    summarize = len(ticket.message) > SUMMARY_MIN_CHARS
    return draft, Assist(
        reasons=tuple(reasons), min_route=_min_route(ai), extra={"ai": ai}, summarize=summarize
    )


def _drafted(
    drafting: Future[tuple[str, float]], grounded: bool, ai: dict[str, Any], reasons: list[Reason]
) -> tuple[str, float]:
    """The drafted reply and its capped confidence, or a placeholder at 0 when the model failed."""
    try:
        text, model_confidence = drafting.result()
    except LLMUnavailable as exc:
        reasons.append(Reason("ai_unavailable", f"no AI draft: the model was unavailable ({exc.reason})"))
        ai["draft_failed"] = exc.reason
        return NO_DRAFT_TEXT, 0.0
    cap = DRAFT_CONFIDENCE_CAP if grounded else UNGROUNDED_CONFIDENCE_CAP
    ai["model_confidence"] = model_confidence
    return text, round(min(model_confidence, cap), 3)


def _classified(
    classifying: Future[Classification], llm: LLM, ai: dict[str, Any], reasons: list[Reason]
) -> Classification | None:
    """The ticket's interaction type and sentiment, or None when the model failed."""
    try:
        found = classifying.result()
    except LLMUnavailable as exc:
        reasons.append(
            Reason("classification_failed", f"not classified: the model was unavailable ({exc.reason})")
        )
        ai["classify_failed"] = exc.reason
        return None
    ai["classify_prompt_version"] = llm.prompt_version("classify")
    return found


def _min_route(ai: dict[str, Any]) -> str | None:
    """A human takes over a ticket without a draft; one that could not be classified is reviewed."""
    if "draft_failed" in ai:
        return "take_over"
    return "review" if "classify_failed" in ai else None


def _customer(ticket: Ticket) -> dict[str, str] | None:
    """The requester's known details, or None when the ticket names none."""
    fields = {"id": ticket.requester_id, "name": ticket.requester_name, "email": ticket.requester_email}
    return {k: v for k, v in fields.items() if v} or None
