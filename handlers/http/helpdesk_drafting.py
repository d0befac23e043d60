"""The drafting path every helpdesk webhook shares: answer a repeat with the stored review, else draft with the
model (bot.ai.assist.draft_for_ticket), route it by policy and store it, once per ticket update."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from bot.ai.assist import AiOff, Ticket, draft_for_ticket, get_llm
from bot.app.runtime import Runtime
from bot.review.ingest import Assist, DraftIn, ingest_draft
from handlers.http.ingest import ApiError
from handlers.http.models import ReviewCreated
from storage import repo
from storage.db import session_scope
from storage.models import Review


def public_review(review: Review) -> dict[str, Any]:
    """The review as the ingest API answers it."""
    data = {name: getattr(review, name) for name in ReviewCreated.model_fields}
    return ReviewCreated.model_validate(data).model_dump(mode="json")


def require_model(runtime: Runtime) -> None:
    """503 unless a model is configured to draft with."""
    if get_llm(runtime) is None:
        raise ApiError(
            503, "ai_unavailable", "drafting needs a model: OPENAI_API_KEY is not set on the server"
        )


def _existing(runtime: Runtime, key: str) -> dict[str, Any] | None:
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.review_by_key(session=session, idempotency_key=key)
        return public_review(review) if review is not None else None


def _store(runtime: Runtime, draft: DraftIn, assist: Assist, actor: str) -> tuple[dict[str, Any], bool]:
    try:
        with session_scope(runtime.engine) as session:
            result = ingest_draft(
                session=session,
                draft=draft,
                policy=runtime.policy,
                now=runtime.clock.now(),
                actor=actor,
                assist=assist,
            )
            return public_review(result.review), result.created
    except IntegrityError:
        # The helpdesk retried while the first delivery was still drafting: answer with the stored review.
        found = _existing(runtime, draft.key())
        if found is None:
            raise
        return found, False


def draft_and_store(
    runtime: Runtime, ticket: Ticket, *, source: str, stamp: str | None
) -> tuple[dict[str, Any], bool]:
    """(review, created) for this ticket update; `stamp` is the ticket's updated_at for the safe write-back."""
    key = f"{source}:{ticket.ticket_id}:{ticket.updated_at}"
    found = _existing(runtime, key)
    if found is not None:
        return found, False
    draft, assist = draft_for_ticket(runtime, ticket, source=source)
    if draft.ticket_updated_at != stamp:
        draft = draft.model_copy(update={"ticket_updated_at": stamp})
    return _store(runtime, draft, assist, source)


async def draft_response(runtime: Runtime, ticket: Ticket, *, source: str, stamp: str | None) -> JSONResponse:
    """201 with the new review, 200 with the stored one; 503 when the model is off, 422 when unusable."""
    require_model(runtime)
    try:
        result, created = await run_in_threadpool(
            draft_and_store, runtime, ticket, source=source, stamp=stamp
        )
    except AiOff as exc:
        raise ApiError(503, "ai_unavailable", str(exc)) from exc
    except ValidationError as exc:
        raise ApiError(422, "invalid_payload", f"the ticket cannot become a draft: {str(exc)[:500]}") from exc
    return JSONResponse(result, status_code=201 if created else 200)
