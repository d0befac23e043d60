"""Customer outcomes (CSAT, reopened, resolved): parsed, linked to the ticket's review and decision, stored once.

`POST /v1/outcomes` (handlers/http/outcomes.py) calls `record_outcome`; the oversight review reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlmodel import Session

from bot.reporting.stats.query import columns
from bot.reporting.stats.rollup import invalidate
from storage.models import Decision, Outcome, Review

OutcomeKind = Literal["csat", "reopened", "resolved"]
CSAT_WORDS = {"good": 5, "bad": 1}
SATISFIED_FROM = 4  # CSAT 4 or 5 (or "good") counts as a satisfied customer


class OutcomeIn(BaseModel):
    """One outcome of a ticket, as a helpdesk or survey tool reports it."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(min_length=1, max_length=100, description="the helpdesk ticket the reply went to")
    kind: OutcomeKind = Field(description="csat (a satisfaction rating), reopened, or resolved")
    value: int | str | bool | None = Field(
        None,
        description='csat: 1-5 or "good"/"bad" (required); reopened/resolved: true (default) or false',
        examples=[5, "good", True],
    )
    at: AwareDatetime = Field(description="when it happened, with a timezone (ISO 8601)")

    @model_validator(mode="after")
    def _value_fits_kind(self) -> OutcomeIn:
        if self.kind == "csat":
            csat_score(self.value)  # raises ValueError with the reason
        elif self.value is not None and not isinstance(self.value, bool):
            raise ValueError(f"value: {self.kind} takes true or false (or nothing, meaning true)")
        return self


def csat_score(value: int | str | bool | None) -> int:
    """A CSAT value as 1-5: an integer 1-5, its digit as a string, or good (5) / bad (1)."""
    if isinstance(value, bool) or value is None:
        raise ValueError('value: csat needs 1-5 or "good"/"bad"')
    if isinstance(value, str):
        word = value.strip().lower()
        if word in CSAT_WORDS:
            return CSAT_WORDS[word]
        if not word.isdigit():
            raise ValueError(f'value: csat needs 1-5 or "good"/"bad", not {value!r}')
        value = int(word)
    if not 1 <= value <= 5:
        raise ValueError(f"value: csat is from 1 to 5, not {value}")
    return value


def _stored(o: OutcomeIn) -> tuple[str, int | None, bool]:
    """(value as text, score, satisfied) for the table."""
    if o.kind == "csat":
        score = csat_score(o.value)
        raw = o.value.strip().lower() if isinstance(o.value, str) else str(score)
        return raw, score, score >= SATISFIED_FROM
    flag = o.value is not False
    return ("true" if flag else "false"), None, flag


class NoReview(LookupError):
    """No draft of this ticket reached us at or before the outcome."""


@dataclass(frozen=True)
class Recorded:
    outcome: Outcome
    status: Literal["created", "updated", "unchanged"]


def review_for(*, session: Session, ticket_id: str, at: datetime) -> tuple[Review, Decision | None]:
    """The latest review of the ticket created at or before `at`, and its review-stage decision."""
    r, d = columns(Review), columns(Decision)
    review = session.execute(
        select(Review)
        .where(r.ticket_id == ticket_id, r.created_at <= at)
        .order_by(r.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if review is None:
        raise NoReview(f"no draft of ticket {ticket_id!r} was received at or before {at.isoformat()}")
    decision = session.execute(
        select(Decision).where(d.review_id == review.id, d.stage == "review")
    ).scalar_one_or_none()
    return review, decision


def existing_outcome(*, session: Session, ticket_id: str, kind: str) -> Outcome | None:
    o = columns(Outcome)
    return session.execute(
        select(Outcome).where(o.ticket_id == ticket_id, o.kind == kind)
    ).scalar_one_or_none()


def _fields(o: OutcomeIn, review: Review, decision: Decision | None) -> dict[str, Any]:
    value, score, satisfied = _stored(o)
    return {
        "value": value,
        "score": score,
        "satisfied": satisfied,
        "at": o.at,
        "review_id": review.id,
        "decision_id": decision.id if decision else None,
        "interaction_type": review.interaction_type,
        "decision": decision.decision if decision else None,
    }


def record_outcome(*, session: Session, outcome: OutcomeIn, now: datetime) -> Recorded:
    """Store an outcome once per (ticket, kind); a later report of the same kind replaces an earlier one
    (a customer changing their rating), a repeat or an older one changes nothing."""
    row = existing_outcome(session=session, ticket_id=outcome.ticket_id, kind=outcome.kind)
    if row is not None and (outcome.at <= row.at or _stored(outcome)[0] == row.value):
        return Recorded(row, "unchanged")
    review, decision = review_for(session=session, ticket_id=outcome.ticket_id, at=outcome.at)
    invalidate(session, outcome.at, row.at if row is not None else None, now=now)  # cached days of both dates
    fields = _fields(outcome, review, decision)
    if row is None:
        row = Outcome(ticket_id=outcome.ticket_id, kind=outcome.kind, received_at=now, **fields)
        session.add(row)
        session.flush()
        return Recorded(row, "created")
    for name, value in fields.items():
        setattr(row, name, value)
    session.flush()
    return Recorded(row, "updated")
