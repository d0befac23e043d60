"""Tables: reviews, decisions (the feedback store), outcomes, outbox, delivery ledger, SLA pings, audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storage.enums import HUMAN_DECISION_KINDS as HUMAN_DECISION_KINDS
from storage.enums import DecisionKind as DecisionKind
from storage.enums import DefectCategory as DefectCategory
from storage.enums import OutboxStatus as OutboxStatus
from storage.enums import ReviewStatus as ReviewStatus
from storage.enums import Route as Route


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return (
            value.astimezone(UTC) if dialect.name != "sqlite" else value.astimezone(UTC).replace(tzinfo=None)
        )

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, UTC-aware (only for defaults; logic takes `now`)."""
    return datetime.now(UTC)


def ts_col(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_col(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


# Drafts a repeat contact sent to humans (warning sign "repeat contacts rising"; partial index, 0002).
REPEAT_CONTACT = "CAST(reasons AS TEXT) LIKE '%\"repeat_contact\"%'"
# Auto-sent replies drawn for a QA rating (warning sign "unrated QA backlog"; partial index, 0004).
QA_SAMPLED = "CAST(extra AS TEXT) LIKE '%\"qa_sampled\": true%'"
# Human decisions on a draft: the rows of the time-to-decision percentiles (partial index, 0002).
# Written out from the enum, so the predicate text stays the one migration 0002 indexed.
HUMAN_DECISIONS = "stage = 'review' AND decision IN ({})".format(
    ", ".join(f"'{k}'" for k in HUMAN_DECISION_KINDS)
)
# Approvals of drafts: each reviewer's approvals of a period, for the fast-approver warning (partial index, 0006).
APPROVALS = "stage = 'review' AND decision = 'approve'"


class Review(SQLModel, table=True):
    """One AI draft and its life: routed, posted, decided."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_status_due", "status", "sla_due_at"),
        Index("ix_reviews_customer_created", "customer_key", "created_at"),
        # 0002 (manager stats): drafts per type/route/tier in a period, and the queue, from indexes alone
        Index("ix_reviews_stats", "interaction_type", "route", "tier", "created_at"),
        Index("ix_reviews_pending", "status", "interaction_type", "sla_due_at"),
        # 0004 (outcomes): a period's replies with their customer, for "came back within the window"
        Index("ix_reviews_came_back", "interaction_type", "status", "created_at", "customer_key"),
        Index(
            "ix_reviews_qa_sampled",
            "interaction_type",
            "created_at",
            sqlite_where=text(QA_SAMPLED),
            postgresql_where=text(QA_SAMPLED),
        ),
        Index(
            "ix_reviews_repeat_contact",
            "interaction_type",
            "created_at",
            sqlite_where=text(REPEAT_CONTACT),
            postgresql_where=text(REPEAT_CONTACT),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    idempotency_key: str = Field(max_length=200, unique=True)
    ticket_id: str = Field(max_length=100, index=True)
    interaction_type: str = Field(max_length=64, index=True)
    confidence: float
    customer_message: str = Field(sa_column=Column(Text, nullable=False))
    draft: str = Field(sa_column=Column(Text, nullable=False))
    subject: str | None = None
    customer_key: str | None = Field(default=None, max_length=320)
    customer: dict[str, Any] = json_col(dict)
    refund_amount: float | None = None
    sentiment: float | None = None
    policy_exception: bool = False
    ticket_url: str | None = None
    kb_sources: list[str] = json_col(list)
    extra: dict[str, Any] = json_col(dict)

    route: str = Field(max_length=16, index=True)
    tier: str = Field(max_length=64)
    reasons: list[dict[str, str]] = json_col(list)
    supervisor_decisions: list[str] = json_col(list)
    status: str = Field(default=ReviewStatus.PENDING, max_length=16)
    created_at: datetime = ts_col(nullable=False, index=True)
    sla_due_at: datetime | None = ts_col()
    sla_warn_at: datetime | None = ts_col()

    slack_channel: str | None = None
    slack_ts: str | None = None
    assignee: str | None = None
    # 0005 (issue 13): who works the ticket now; claiming does not decide (Claim / Unclaim / Reassign)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_by_name: str | None = Field(default=None, max_length=200)
    claimed_at: datetime | None = ts_col()

    decision: str | None = None
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_at: datetime | None = ts_col()
    final_text: str | None = Field(default=None, sa_column=Column(Text))
    helpdesk_state: str | None = None


class ReviewMessage(SQLModel, table=True):
    """A Slack message posted about a review other than its card (SLA pings, DMs, dead-letter alerts).

    Buttons on these messages act on the review (`check_click` accepts a click from any of them), and
    they are edited to say who handled the review once it is decided (0005)."""

    __tablename__ = "review_messages"
    __table_args__ = (UniqueConstraint("channel", "ts", name="uq_review_messages_channel_ts"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: str = Field(foreign_key="reviews.id", max_length=32, index=True)
    kind: str = Field(max_length=32)  # sla_warning | sla_breach | sla_dm | dead_letter | calibration | ...
    channel: str = Field(max_length=64)
    ts: str = Field(max_length=64)
    created_at: datetime = ts_col(nullable=False)


class Decision(SQLModel, table=True):
    """The feedback store: one row per human (or auto/QA) decision on a draft."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("review_id", "stage", name="uq_decisions_review_stage"),
        Index("ix_decisions_decided_type", "decided_at", "interaction_type"),
        # 0002 (manager stats): a period is read from these indexes, never from the wide rows
        Index(
            "ix_decisions_stats",
            "interaction_type",
            "stage",
            "decision",
            "decided_at",
            "sla_breached",
            "route",
            "edit_distance",
            "defect_category",
            "confidence",
            "seconds_to_decision",
        ),
        Index(
            "ix_decisions_human_seconds",
            "seconds_to_decision",
            "decided_at",
            "interaction_type",
            sqlite_where=text(HUMAN_DECISIONS),
            postgresql_where=text(HUMAN_DECISIONS),
        ),
        Index("ix_decisions_type_stage_decided", "interaction_type", "stage", "decided_at"),
        Index(
            "ix_decisions_approvals",
            "actor_id",
            "decided_at",
            "seconds_to_decision",
            sqlite_where=text(APPROVALS),
            postgresql_where=text(APPROVALS),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    review_id: str = Field(foreign_key="reviews.id", max_length=32)
    stage: str = Field(default="review", max_length=16)  # "review" or "qa"
    ticket_id: str = Field(max_length=100)
    interaction_type: str = Field(max_length=64)
    confidence: float
    route: str = Field(max_length=16)
    tier: str = Field(max_length=64)
    reasons: list[dict[str, str]] = json_col(list)
    customer_message: str = Field(sa_column=Column(Text, nullable=False))
    ai_draft: str = Field(sa_column=Column(Text, nullable=False))
    final_text: str | None = Field(default=None, sa_column=Column(Text))
    decision: str = Field(max_length=16)
    actor_id: str | None = None
    actor_name: str | None = None
    decided_at: datetime = ts_col(nullable=False)
    seconds_to_decision: float | None = None
    edit_distance: float | None = None
    defect_category: str | None = None
    defect_comment: str | None = Field(default=None, sa_column=Column(Text))
    sla_breached: bool | None = None
    model: str | None = None
    prompt_version: str | None = None


class OutboxItem(SQLModel, table=True):
    """An outside write, committed with the change that causes it and delivered by the worker."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    order_key: str = Field(max_length=200, index=True)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    payload: dict[str, Any] = json_col(dict)
    status: str = Field(default=OutboxStatus.PENDING, max_length=16)
    attempts: int = 0
    created_at: datetime = ts_col(nullable=False)
    next_attempt_at: datetime = ts_col(nullable=False)
    locked_by: str | None = None
    locked_until: datetime | None = ts_col()
    delivered_at: datetime | None = ts_col()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    result: dict[str, Any] = json_col(dict)
    # 0003: when the current run of real failures began (the give-up budget counts from here, never from
    # the time spent waiting in line), and when a write was handed to the service without an answer.
    failing_since: datetime | None = ts_col()
    in_doubt_at: datetime | None = ts_col()


class SlackPace(SQLModel, table=True):
    """Slack's budget shared by replicas (0003): per pacing key, the epoch second the next call may go."""

    __tablename__ = "slack_pace"

    key: str = Field(primary_key=True, max_length=200)
    next_at: float = 0.0


class DeliveryLedger(SQLModel, table=True):
    """What was sent to a helpdesk per decision: makes delivery exactly-once from its side."""

    __tablename__ = "delivery_ledger"

    key: str = Field(primary_key=True, max_length=200)
    state: str = Field(max_length=16)  # started | done
    started_at: datetime = ts_col(nullable=False)
    finished_at: datetime | None = ts_col()
    outcome: dict[str, Any] = json_col(dict)


class SlaPing(SQLModel, table=True):
    """A scheduled SLA step (warning, breach ping, escalation), claimed once in the database."""

    __tablename__ = "sla_pings"
    __table_args__ = (
        UniqueConstraint("review_id", "kind", name="uq_sla_pings_review_kind"),
        Index("ix_sla_pings_status_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    review_id: str = Field(foreign_key="reviews.id", max_length=32)
    kind: str = Field(max_length=64)
    due_at: datetime = ts_col(nullable=False)
    status: str = Field(default="pending", max_length=16)  # pending | fired | cancelled
    claimed_by: str | None = None
    fired_at: datetime | None = ts_col()


class ProcessedEvent(SQLModel, table=True):
    """Slack deliveries already handled (event ids, action keys): retries never act twice."""

    __tablename__ = "processed_events"

    key: str = Field(primary_key=True, max_length=255)
    seen_at: datetime = ts_col(nullable=False)


class AuditEvent(SQLModel, table=True):
    """Who did what, when: ingest, post, click, decision, write-back, ping, policy change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = ts_col(nullable=False)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64, index=True)
    review_id: str | None = Field(default=None, max_length=32, index=True)
    detail: dict[str, Any] = json_col(dict)


class SchedulerState(SQLModel, table=True):
    """Small key/value facts shared by replicas (last digest sent, policy hash seen)."""

    __tablename__ = "scheduler_state"

    key: str = Field(primary_key=True, max_length=100)
    value: dict[str, Any] = json_col(dict)
    updated_at: datetime = ts_col(nullable=False)


class Outcome(SQLModel, table=True):
    """What happened after a reply (CSAT, reopened, resolved), linked to the review and decision of its ticket.

    One row per (ticket, kind). `interaction_type` and `decision` are copied from the linked review so the
    oversight review aggregates outcomes from ix_outcomes_stats alone (0004)."""

    __tablename__ = "outcomes"
    __table_args__ = (
        UniqueConstraint("ticket_id", "kind", name="uq_outcomes_ticket_kind"),
        Index("ix_outcomes_stats", "interaction_type", "kind", "decision", "at", "satisfied", "score"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=100)
    kind: str = Field(max_length=16)  # csat | reopened | resolved
    value: str = Field(max_length=16)  # as sent: "1".."5", "good", "bad", "true", "false"
    score: int | None = None  # CSAT 1-5 (good = 5, bad = 1)
    satisfied: bool | None = None  # CSAT 4-5 or good; reopened/resolved: the flag itself
    at: datetime = ts_col(nullable=False)
    received_at: datetime = ts_col(nullable=False)
    review_id: str = Field(foreign_key="reviews.id", max_length=32, index=True)
    decision_id: int | None = None
    interaction_type: str = Field(max_length=64)
    decision: str | None = Field(default=None, max_length=16)  # the review's decision kind when linked


class OversightChange(SQLModel, table=True):
    """An oversight verdict a manager accepted (Slack button or `hitl review --apply`), with the policy diff.

    `before` / `after` are the type's thresholds ({auto_send_at, review_at}); `applied_at` is set once the
    running policy has the `after` threshold, and the review then shows the type before and after (0006)."""

    __tablename__ = "oversight_changes"
    __table_args__ = (Index("ix_oversight_changes_type_accepted", "interaction_type", "accepted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    interaction_type: str = Field(max_length=64)
    verdict: str = Field(max_length=16)  # expand | increase
    before: dict[str, Any] = json_col(dict)
    after: dict[str, Any] = json_col(dict)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)  # slack | cli
    period_days: int
    accepted_at: datetime = ts_col(nullable=False)
    diff: str = Field(sa_column=Column(Text, nullable=False))
    applied_at: datetime | None = ts_col()


class CalibrationSession(SQLModel, table=True):
    """A calibration session (0007): past decided reviews shown again, decision hidden, to the people who run it.

    `channel` is where `/hitl calibrate` was run; `posted_channel` where the cards went (that channel, or
    the runner's DM when the app may not post there)."""

    __tablename__ = "calibration_sessions"
    __table_args__ = (Index("ix_calibration_sessions_channel_created", "channel", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    created_by: str = Field(max_length=64)
    channel: str = Field(max_length=64)
    interaction_type: str | None = Field(default=None, max_length=64)
    n: int
    created_at: datetime = ts_col(nullable=False)
    closed_at: datetime | None = ts_col()
    closed_by: str | None = Field(default=None, max_length=64)
    posted_channel: str | None = Field(default=None, max_length=64)


class CalibrationItem(SQLModel, table=True):
    """One review of a session, with its original decision as a verdict (good / defect) and its card."""

    __tablename__ = "calibration_items"
    __table_args__ = (
        UniqueConstraint("session_id", "review_id", name="uq_calibration_items_session_review"),
        UniqueConstraint("session_id", "position", name="uq_calibration_items_session_position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_sessions.id")
    review_id: str = Field(foreign_key="reviews.id", max_length=32, index=True)
    position: int
    interaction_type: str = Field(max_length=64)
    original_decision: str = Field(max_length=16)  # approve | edit | take_over | reject | qa_good | qa_defect
    original_verdict: str = Field(max_length=16)  # good | defect (bot.qa.calibration.original_verdict)
    original_category: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    ts: str | None = Field(default=None, max_length=64)


class CalibrationVote(SQLModel, table=True):
    """One person's verdict on one review of a session; a second click replaces it (audited)."""

    __tablename__ = "calibration_votes"
    __table_args__ = (
        UniqueConstraint(
            "session_id", "review_id", "voter", name="uq_calibration_votes_session_review_voter"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_sessions.id", index=True)
    review_id: str = Field(foreign_key="reviews.id", max_length=32)
    voter: str = Field(max_length=64)
    voter_name: str | None = Field(default=None, max_length=200)
    verdict: str = Field(max_length=16)  # good | defect
    category: str | None = Field(default=None, max_length=32)
    voted_at: datetime = ts_col(nullable=False)
    changes: int = 0


class StatsRollup(SQLModel, table=True):
    """One closed UTC day or hour of the feedback store, aggregated once (0008; bot.reporting.stats.rollup).

    `params_key` names the policy parameters and constants the aggregates were computed with, so a policy
    change or an upgrade reads fresh rows; `generation` is the day's StatsRollupEpoch when it was
    computed: a late fact about the day (an outcome, a tier move) makes the row stale."""

    __tablename__ = "stats_rollup"

    params_key: str = Field(primary_key=True, max_length=64)
    start: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    unit: str = Field(primary_key=True, max_length=8)  # day | hour
    generation: int = 0
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON: the counts of each type
    computed_at: datetime = ts_col(nullable=False)


class StatsRollupEpoch(SQLModel, table=True):
    """Per UTC day, how many times something dated that day was written after the day could be cached."""

    __tablename__ = "stats_rollup_epochs"

    day: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    generation: int = 0
    updated_at: datetime = ts_col(nullable=False)


# 0008: one day's outcomes of every type as one index range (ix_outcomes_stats leads with the type).
_outcomes = Outcome.__table__.c  # type: ignore[attr-defined]
Index(
    "ix_outcomes_at",
    _outcomes.at,
    _outcomes.interaction_type,
    _outcomes.kind,
    _outcomes.decision,
    _outcomes.satisfied,
)
