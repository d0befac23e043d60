"""Every Slack action_id, callback_id and block_id, and the small typed models carried in buttons and modals.

Register handlers with these members and build blocks with them, so grep finds producer and consumer.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActionId(StrEnum):
    """Interactive elements (buttons, inputs) of review cards and modals."""

    APPROVE = "review_approve"
    EDIT = "review_edit"
    TAKE_OVER = "review_take_over"
    REJECT = "review_reject"
    SHOW_FULL = "review_show_full"
    EDIT_TEXT = "edit_text"
    REJECT_CATEGORY = "reject_category"
    REJECT_COMMENT = "reject_comment"
    QA_GOOD = "qa_good"
    QA_DEFECT = "qa_defect"
    QA_DEFECT_CATEGORY = "qa_defect_category"
    QA_DEFECT_COMMENT = "qa_defect_comment"
    AI_INSTRUCTION = "ai_instruction"
    AI_REGENERATE = "ai_regenerate"
    # issue 13: claims, pings people act from, App Home, dead letters
    CLAIM = "review_claim"
    UNCLAIM = "review_unclaim"
    REASSIGN = "review_reassign"  # a users_select; its value is the new owner
    SNOOZE = "sla_snooze"
    SHOW_DETAILS = "review_show_details"  # a collapsed (decided) card's details
    OPEN_CARD = "review_open_card"  # a link button to the card's permalink (acked, nothing else)
    DEAD_LETTER_RETRY = "outbox_dead_letter_retry"
    HOME_REFRESH = "home_refresh"
    # issue 12: accepting an oversight verdict, calibration sessions
    OVERSIGHT_ACCEPT = "oversight_accept"
    CALIBRATE_GOOD = "calibrate_good"
    CALIBRATE_DEFECT = "calibrate_defect"
    # issue 13: the App Home tab (a manager's "open the oversight review")
    HOME_OPEN_REVIEW = "home_open_review"
    # issue 13 item 4: after a Reject, "Take over" makes the clicker the ticket's owner (not a decision)
    TAKE_OWNERSHIP = "review_take_ownership"
    # issue 12 item 6: the reason typed into the accept-verdict modal
    OVERSIGHT_REASON = "oversight_reason"


class CallbackId(StrEnum):
    """Modals (views) the app opens."""

    EDIT_MODAL = "review_edit_modal"
    REJECT_MODAL = "review_reject_modal"
    FULL_TEXT_MODAL = "review_full_text_modal"
    QA_DEFECT_MODAL = "qa_defect_modal"
    DETAILS_MODAL = "review_details_modal"  # a decided card's details (issue 13 item 1)
    OVERSIGHT_ACCEPT_MODAL = "oversight_accept_modal"  # why a verdict is accepted (issue 12 item 6)


class BlockId(StrEnum):
    """Blocks of review cards and modals (unique within one message or view)."""

    REVIEW_HEADER = "review_header"
    REVIEW_FACTS = "review_facts"
    REVIEW_SUMMARY = "review_summary"
    REVIEW_CUSTOMER = "review_customer"
    REVIEW_DRAFT = "review_draft"
    REVIEW_FINAL = "review_final"
    REVIEW_TONE = "review_tone"
    REVIEW_REASONS = "review_reasons"
    REVIEW_SLA = "review_sla"
    REVIEW_SUPERVISOR = "review_supervisor"
    REVIEW_ACTIONS = "review_actions"
    REVIEW_DECISION = "review_decision"
    REVIEW_MORE = "review_more"
    EDIT_TEXT = "edit_text"  # one input per 3,000-character part: "edit_text:0", "edit_text:1", ...
    REJECT_CATEGORY = "reject_category"
    REJECT_COMMENT = "reject_comment"
    FULL_TEXT = "full_text"  # "full_text:customer:0", "full_text:draft:0", ...
    QA_HEADER = "qa_header"
    QA_CUSTOMER = "qa_customer"
    QA_REPLY = "qa_reply"
    QA_FACTS = "qa_facts"
    QA_ACTIONS = "qa_actions"
    QA_RATING = "qa_rating"
    QA_DEFECT_CATEGORY = "qa_defect_category"
    QA_DEFECT_COMMENT = "qa_defect_comment"
    AI_INSTRUCTION = "ai_instruction"
    AI_ACTIONS = "ai_actions"
    AI_NOTE = "ai_note"
    # issue 13: the App Home tab ("home_line:<review id>", "home_line_actions:<review id>" per line)
    HOME_HEADER = "home_header"
    HOME_MY_CLAIMS = "home_my_claims"
    HOME_WAITING = "home_waiting"
    HOME_BREACHED = "home_breached"
    HOME_STATS = "home_stats"
    HOME_ACTIONS = "home_actions"
    HOME_LINE = "home_line"
    HOME_LINE_ACTIONS = "home_line_actions"
    # issue 13: SLA pings people act from, and the dead-letter alert
    SLA_PING_HEADLINE = "sla_ping_headline"
    SLA_PING_FACTS = "sla_ping_facts"
    SLA_PING_NOTE = "sla_ping_note"
    SLA_PING_ACTIONS = "sla_ping_actions"  # Claim, Reassign, Snooze, Open card
    SLA_PING_DECISIONS = "sla_ping_decisions"  # Approve, Take over, Reject
    DEAD_LETTER_SUMMARY = "dead_letter_summary"
    DEAD_LETTER_ERROR = "dead_letter_error"
    DEAD_LETTER_NOTE = "dead_letter_note"
    DEAD_LETTER_ACTIONS = "dead_letter_actions"
    # issue 13 items 1, 2: the card's state lines, who holds it, and Claim / Unclaim / Reassign
    # ("review_claim_actions:<review id>": a users_select carries no value, so the review rides in the id)
    REVIEW_CLAIM = "review_claim"
    REVIEW_CLAIM_ACTIONS = "review_claim_actions"
    DETAILS = "details"  # "details:decision", "details:customer:0", ... in the details modal
    # issue 12: calibration sessions (the intro, each card, the report; "calibration_reviews:<n>" per part)
    CALIBRATION_HEADER = "calibration_header"
    CALIBRATION_INTRO = "calibration_intro"
    CALIBRATION_FACTS = "calibration_facts"
    CALIBRATION_CUSTOMER = "calibration_customer"
    CALIBRATION_DRAFT = "calibration_draft"
    CALIBRATION_ACTIONS = "calibration_actions"  # Good, and the Defect menu of the taxonomy
    CALIBRATION_VOTES = "calibration_votes"
    CALIBRATION_RESULT = "calibration_result"
    CALIBRATION_KAPPA = "calibration_kappa"
    CALIBRATION_ORIGINAL = "calibration_original"
    CALIBRATION_REVIEWS = "calibration_reviews"
    # issue 12 item 6: accepting an oversight verdict (the modal, and the recorded change with its diff)
    OVERSIGHT_VERDICT = "oversight_verdict"
    OVERSIGHT_REASON = "oversight_reason"
    OVERSIGHT_RECORDED = "oversight_recorded"
    OVERSIGHT_DIFF = "oversight_diff"  # "oversight_diff:0", "oversight_diff:1", ... per part
    OVERSIGHT_HOWTO = "oversight_howto"


class ReviewRef(BaseModel):
    """A button value naming one review."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    review_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class ModalMeta(ReviewRef):
    """A modal's private_metadata: the review and the card it was opened from (view submissions have no channel)."""

    channel: str = Field(max_length=255, pattern=r"^[^\x00-\x1f]*$")
    ts: str = Field(max_length=64, pattern=r"^[0-9.]*$")


class SnoozeRef(ReviewRef):
    """The Snooze button's value: the review and the escalation level (of SLA round `round`) it quiets."""

    level: int = Field(ge=1, le=99)
    round: int = Field(default=0, ge=0, le=999)


class DeadLetterRef(BaseModel):
    """The Retry button's value on a dead-letter alert: the outbox row to put back in line."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    outbox_id: int = Field(ge=1)
