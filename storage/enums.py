"""The enums of the store, one definition each: routes, review states, decisions, defects, outbox states.

They live in storage (which imports nothing from `bot`) so tables, queries and the domain share them.
"""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """Where a draft goes, in order of growing human involvement (human-on/in/as-the-loop)."""

    AUTO_SEND = "auto_send"
    REVIEW = "review"
    TAKE_OVER = "take_over"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EDITED = "edited"
    TAKEN_OVER = "taken_over"
    REJECTED = "rejected"
    AUTO_SENT = "auto_sent"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    TAKE_OVER = "take_over"
    REJECT = "reject"
    AUTO_SEND = "auto_send"
    QA_GOOD = "qa_good"
    QA_DEFECT = "qa_defect"


# What a person may decide on a review card (the policy's `supervisor_for` / `supervisor_decisions`).
HUMAN_DECISION_KINDS: tuple[DecisionKind, ...] = (
    DecisionKind.APPROVE,
    DecisionKind.EDIT,
    DecisionKind.TAKE_OVER,
    DecisionKind.REJECT,
)


class DefectCategory(StrEnum):
    HALLUCINATION = "hallucination"
    TONE_MISMATCH = "tone_mismatch"
    POLICY_MISAPPLICATION = "policy_misapplication"
    INCOMPLETE_RESOLUTION = "incomplete_resolution"
    OTHER = "other"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"
