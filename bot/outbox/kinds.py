"""Every outbox kind: its typed payload and the one function that enqueues it.

A row's payload is validated twice: when it is enqueued (a mistake fails the transaction that made it,
not a delivery hours later) and when it is delivered (the handler gets the typed model, never a dict).
Order keys keep Slack work on one review in order (`review:<id>`), helpdesk writes to one ticket in
order (`ticket:<id>`), and ops announcements in order (`ops`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from storage import repo
from storage.models import DecisionKind, OutboxItem


class OutboxKind(StrEnum):
    """The kinds of outside write; each has a payload model below and a handler registered at start-up."""

    SLACK_POST = "slack_post"
    SLACK_UPDATE = "slack_update"
    SLACK_EPHEMERAL = "slack_ephemeral"
    SLACK_DM = "slack_dm"
    SLACK_POST_REVIEW = "slack_post_review"
    SLACK_REFRESH_REVIEW = "slack_refresh_review"
    SLACK_POST_QA = "slack_post_qa"
    HELPDESK_WRITE = "helpdesk_write"
    AI_SUMMARIZE = "ai_summarize"
    DECISION_CALLBACK = "decision_callback"
    # issue 13: pings people act from, and the dead-letter alert with its Retry button
    SLACK_SLA_PING = "slack_sla_ping"
    SLACK_DEAD_LETTER_ALERT = "slack_dead_letter_alert"
    # issue 12: calibration sessions (intro, cards, report), rendered from the store at delivery
    SLACK_CALIBRATION = "slack_calibration"


class Payload(BaseModel):
    """Base of every payload: unknown keys are ignored on delivery so an older row still delivers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SlackPost(Payload):
    """A message or thread reply; `in_review_thread` replies under the review's card (looked up at delivery)."""

    text: str
    channel: str | None = None
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    review_id: str | None = None
    in_review_thread: bool = False


class SlackUpdate(Payload):
    """Replace a message's text and blocks."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    review_id: str | None = None


class SlackEphemeral(Payload):
    """A message only `user` sees in `channel`."""

    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    review_id: str | None = None


class SlackDm(Payload):
    """A direct message to one user (the DM is opened, or reused, at delivery)."""

    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    review_id: str | None = None


class MovedFrom(Payload):
    channel: str
    ts: str


class ReviewCard(Payload):
    """Post a review's card to its tier's channel (once), marking a moved card's old message."""

    review_id: str
    moved_from: MovedFrom | None = None


class RefreshCard(Payload):
    """Re-render a posted card from the store (state, SLA countdown, decision)."""

    review_id: str


class QaCard(Payload):
    """Post the QA card for one auto-sent reply."""

    review_id: str


class HelpdeskWrite(Payload):
    """Write one decision back to the helpdesk, exactly once."""

    review_id: str
    decision: DecisionKind | None = None  # the stored decision row wins; this is the fallback
    stage: str = "review"


class Summarize(Payload):
    """Summarise a long customer message with the model, then refresh the card."""

    review_id: str


class CallbackEvent(StrEnum):
    """Why a decision callback is sent to the draft's `callback_url`."""

    DECIDED = "decided"  # a human approved, edited, took over or rejected it
    AUTO_SENT = "auto_sent"  # routed straight to the helpdesk, no human involved
    TIMED_OUT = "timed_out"  # the SLA ran out and its timeout action fired; still pending


class DecisionCallback(Payload):
    """POST the outcome of a review to the AI pipeline that sent the draft (signed at delivery)."""

    url: str
    event: CallbackEvent
    review_id: str
    ticket_id: str
    status: str
    tier: str
    occurred_at: datetime
    decision: str | None = None
    final_text: str | None = None
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None  # the reject category (defect) of a rejection
    comment: str | None = None
    timeout_action: str | None = None  # reassign / move_tier, for `timed_out`


PingPlace = Literal["thread", "channel", "dm"]


class SlaPingMessage(Payload):
    """An SLA warning or breach ping about one review, built from the store at delivery (buttons, permalink).

    `place`: the card's thread, an escalation `channel`, or a DM to `user`. With `ts` (and `channel`) it
    re-renders that posted message in place (snoozed, or handled once the review is decided).
    """

    review_id: str
    place: PingPlace
    step: str = ""  # the SLA step: warn, breach:L1:0, r1:breach:L2:1, ...
    level: int = 0  # 0: the warning; else the escalation level
    repeat: int = 0
    fired_at: datetime | None = None
    channel: str | None = None
    user: str | None = None
    mention: str = ""  # whom a breach ping @-mentions (Slack mention syntax)
    ts: str | None = None


class DeadLetterAlert(Payload):
    """The ops channel's alert about one dead-lettered outbox row; with `ts`, re-render it (retried by)."""

    outbox_id: int
    channel: str
    ts: str | None = None
    retried_by: str | None = None
    retried_at: datetime | None = None


CalibrationPart = Literal["intro", "card", "report"]


class CalibrationMessage(Payload):
    """A calibration session's message: its intro (which picks the channel), a review's card (posted once,
    re-rendered in place after that: votes so far, or the verdicts once closed), or its report."""

    session_id: int
    part: CalibrationPart
    review_id: str | None = None


PAYLOADS: dict[OutboxKind, type[Payload]] = {
    OutboxKind.SLACK_POST: SlackPost,
    OutboxKind.SLACK_UPDATE: SlackUpdate,
    OutboxKind.SLACK_EPHEMERAL: SlackEphemeral,
    OutboxKind.SLACK_DM: SlackDm,
    OutboxKind.SLACK_POST_REVIEW: ReviewCard,
    OutboxKind.SLACK_REFRESH_REVIEW: RefreshCard,
    OutboxKind.SLACK_POST_QA: QaCard,
    OutboxKind.HELPDESK_WRITE: HelpdeskWrite,
    OutboxKind.AI_SUMMARIZE: Summarize,
    OutboxKind.DECISION_CALLBACK: DecisionCallback,
    OutboxKind.SLACK_SLA_PING: SlaPingMessage,
    OutboxKind.SLACK_DEAD_LETTER_ALERT: DeadLetterAlert,
    OutboxKind.SLACK_CALIBRATION: CalibrationMessage,
}


def _enqueue(
    session: Session,
    *,
    now: datetime,
    kind: OutboxKind,
    payload: Payload,
    order_key: str,
    dedupe_key: str | None,
    delay: timedelta = timedelta(0),
) -> OutboxItem:
    if not isinstance(payload, PAYLOADS[kind]):
        raise TypeError(f"outbox kind {kind} takes {PAYLOADS[kind].__name__}, not {type(payload).__name__}")
    return repo.enqueue(
        session=session,
        now=now,
        kind=kind.value,
        order_key=order_key,
        payload=payload.model_dump(mode="json", exclude_none=True),
        dedupe_key=dedupe_key,
        delay=delay,
    )


def review_order(review_id: str) -> str:
    """The order key of Slack work on one review."""
    return f"review:{review_id}"


def enqueue_slack_post(
    session: Session, *, now: datetime, post: SlackPost, order_key: str, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session, now=now, kind=OutboxKind.SLACK_POST, payload=post, order_key=order_key, dedupe_key=dedupe_key
    )


def enqueue_slack_update(
    session: Session, *, now: datetime, update: SlackUpdate, order_key: str, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_UPDATE,
        payload=update,
        order_key=order_key,
        dedupe_key=dedupe_key,
    )


def enqueue_slack_ephemeral(
    session: Session, *, now: datetime, message: SlackEphemeral, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_EPHEMERAL,
        payload=message,
        order_key=f"user:{message.user}",
        dedupe_key=dedupe_key,
    )


def enqueue_slack_dm(
    session: Session, *, now: datetime, dm: SlackDm, order_key: str, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session, now=now, kind=OutboxKind.SLACK_DM, payload=dm, order_key=order_key, dedupe_key=dedupe_key
    )


def enqueue_review_card(
    session: Session, *, now: datetime, card: ReviewCard, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_POST_REVIEW,
        payload=card,
        order_key=review_order(card.review_id),
        dedupe_key=dedupe_key,
    )


def enqueue_refresh_card(
    session: Session, *, now: datetime, refresh: RefreshCard, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_REFRESH_REVIEW,
        payload=refresh,
        order_key=review_order(refresh.review_id),
        dedupe_key=dedupe_key,
    )


def enqueue_qa_card(
    session: Session, *, now: datetime, card: QaCard, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_POST_QA,
        payload=card,
        order_key=review_order(card.review_id),
        dedupe_key=dedupe_key,
    )


def enqueue_helpdesk_write(
    session: Session, *, now: datetime, write: HelpdeskWrite, ticket_id: str, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.HELPDESK_WRITE,
        payload=write,
        order_key=f"ticket:{ticket_id}",
        dedupe_key=dedupe_key,
    )


def enqueue_summarize(
    session: Session, *, now: datetime, job: Summarize, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.AI_SUMMARIZE,
        payload=job,
        order_key=f"ai:{job.review_id}",
        dedupe_key=dedupe_key,
    )


def enqueue_decision_callback(
    session: Session, *, now: datetime, callback: DecisionCallback, dedupe_key: str | None = None
) -> OutboxItem:
    """Callbacks of one review go out in order (a `timed_out` before the `decided` that follows it)."""
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.DECISION_CALLBACK,
        payload=callback,
        order_key=f"callback:{callback.review_id}",
        dedupe_key=dedupe_key,
    )


def enqueue_sla_ping(
    session: Session, *, now: datetime, ping: SlaPingMessage, dedupe_key: str | None = None
) -> OutboxItem:
    """Pings of one review go out in order with its card and refreshes (`review:<id>`)."""
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_SLA_PING,
        payload=ping,
        order_key=review_order(ping.review_id),
        dedupe_key=dedupe_key,
    )


def enqueue_dead_letter_alert(
    session: Session, *, now: datetime, alert: DeadLetterAlert, dedupe_key: str | None = None
) -> OutboxItem:
    """Ops announcements go out in order (`ops`)."""
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_DEAD_LETTER_ALERT,
        payload=alert,
        order_key="ops",
        dedupe_key=dedupe_key,
    )


def calibration_order(session_id: int) -> str:
    """One calibration session's Slack work goes out in order: the intro, the cards, their updates, the report."""
    return f"calibration:{session_id}"


def enqueue_calibration(
    session: Session, *, now: datetime, message: CalibrationMessage, dedupe_key: str | None = None
) -> OutboxItem:
    return _enqueue(
        session,
        now=now,
        kind=OutboxKind.SLACK_CALIBRATION,
        payload=message,
        order_key=calibration_order(message.session_id),
        dedupe_key=dedupe_key,
    )
