"""The feedback store as training data: OpenAI fine-tuning files (SFT, DPO) and the raw rows.

Which decisions teach what:
- SFT (supervised): the reply a human stood behind. Approved drafts, edited drafts (the human's text),
  and auto-sent replies a QA reviewer rated Good. Unrated auto-sends are left out: nobody looked at them.
- DPO (preference): edited drafts only, one pair each: the human's text preferred over the AI draft.
- jsonl: every decision row as stored (review and QA stages), for your own analysis, then every
  calibration vote (stage "calibration": the voter's verdict beside the review's original decision).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any, TextIO

from sqlmodel import Session, col, select

from bot.ai.pii import mask_pii
from storage.models import CalibrationItem, CalibrationVote, Decision, DecisionKind

FORMATS = ("sft", "dpo", "jsonl")
SYSTEM_PROMPT = (
    "You are a customer support agent. Reply to the customer's message accurately, "
    "kindly and concisely, following company policy."
)


def decision_rows(
    *,
    session: Session,
    since: datetime | None = None,
    interaction_type: str | None = None,
    stage: str | None = None,
) -> list[Decision]:
    """Feedback rows, oldest first, filtered by decision time, interaction type and stage."""
    q = select(Decision)
    if since is not None:
        q = q.where(Decision.decided_at >= since)
    if interaction_type:
        q = q.where(Decision.interaction_type == interaction_type.lower())
    if stage:
        q = q.where(Decision.stage == stage)
    return list(session.execute(q.order_by(col(Decision.decided_at), col(Decision.id))).scalars())


def qa_good_reviews(*, session: Session) -> set[str]:
    """Reviews whose auto-sent reply a human rated Good."""
    q = select(col(Decision.review_id)).where(
        Decision.stage == "qa", Decision.decision == DecisionKind.QA_GOOD
    )
    return set(session.execute(q).scalars())


def _prompt(row: Decision, mask: bool) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _text(row.customer_message, mask)},
    ]


def _text(text: str, mask: bool) -> str:
    return mask_pii(text, enabled=True) if mask else text


def sft_records(
    rows: Iterable[Decision], *, good_auto_sends: set[str], mask: bool = False
) -> Iterator[dict[str, Any]]:
    """`{"messages": [system, user, assistant]}` per reply a human stood behind."""
    for row in rows:
        if row.stage != "review" or not row.final_text:
            continue
        if row.decision in (DecisionKind.APPROVE, DecisionKind.EDIT) or (
            row.decision == DecisionKind.AUTO_SEND and row.review_id in good_auto_sends
        ):
            yield {
                "messages": [
                    *_prompt(row, mask),
                    {"role": "assistant", "content": _text(row.final_text, mask)},
                ]
            }


def dpo_records(rows: Iterable[Decision], *, mask: bool = False) -> Iterator[dict[str, Any]]:
    """One preference pair per edited draft: the human's text over the AI's."""
    for row in rows:
        if row.stage != "review" or row.decision != DecisionKind.EDIT or not row.final_text:
            continue
        if row.final_text.strip() == row.ai_draft.strip():
            continue
        yield {
            "input": {"messages": _prompt(row, mask)},
            "preferred_output": [{"role": "assistant", "content": _text(row.final_text, mask)}],
            "non_preferred_output": [{"role": "assistant", "content": _text(row.ai_draft, mask)}],
        }


RAW_FIELDS = (
    "id",
    "review_id",
    "stage",
    "ticket_id",
    "interaction_type",
    "confidence",
    "route",
    "tier",
    "reasons",
    "customer_message",
    "ai_draft",
    "final_text",
    "decision",
    "actor_id",
    "actor_name",
    "decided_at",
    "seconds_to_decision",
    "edit_distance",
    "defect_category",
    "defect_comment",
    "sla_breached",
    "model",
    "prompt_version",
)


def raw_records(rows: Iterable[Decision], *, mask: bool = False) -> Iterator[dict[str, Any]]:
    """Every feedback row as stored."""
    for row in rows:
        record = {name: getattr(row, name) for name in RAW_FIELDS}
        record["decided_at"] = row.decided_at.isoformat()
        if mask:
            for name in ("customer_message", "ai_draft", "final_text", "defect_comment"):
                if record[name]:
                    record[name] = _text(record[name], True)
        yield record


def export(
    *,
    session: Session,
    fmt: str,
    out: TextIO,
    since: datetime | None = None,
    interaction_type: str | None = None,
    mask: bool = False,
) -> int:
    """Write one JSON object a line in `fmt`; returns how many lines."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    records: Iterator[dict[str, Any]]
    if fmt == "jsonl":
        records = chain(
            raw_records(
                decision_rows(session=session, since=since, interaction_type=interaction_type), mask=mask
            ),
            calibration_records(session=session, since=since, interaction_type=interaction_type),
        )
    else:
        rows = decision_rows(session=session, since=since, interaction_type=interaction_type, stage="review")
        records = (
            sft_records(rows, good_auto_sends=qa_good_reviews(session=session), mask=mask)
            if fmt == "sft"
            else dpo_records(rows, mask=mask)
        )
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def calibration_records(
    *, session: Session, since: datetime | None = None, interaction_type: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every calibration vote, oldest first, with the original decision of the review it judged."""
    q = select(CalibrationVote, CalibrationItem).join(
        CalibrationItem,
        (col(CalibrationItem.session_id) == col(CalibrationVote.session_id))
        & (col(CalibrationItem.review_id) == col(CalibrationVote.review_id)),
    )
    if since is not None:
        q = q.where(col(CalibrationVote.voted_at) >= since)
    if interaction_type:
        q = q.where(col(CalibrationItem.interaction_type) == interaction_type.lower())
    for vote, item in session.execute(q.order_by(col(CalibrationVote.voted_at), col(CalibrationVote.id))):
        yield {
            "stage": "calibration",
            "session_id": vote.session_id,
            "review_id": vote.review_id,
            "interaction_type": item.interaction_type,
            "verdict": vote.verdict,
            "defect_category": vote.category,
            "actor_id": vote.voter,
            "actor_name": vote.voter_name,
            "decided_at": vote.voted_at.isoformat(),
            "changes": vote.changes,
            "original_decision": item.original_decision,
            "original_verdict": item.original_verdict,
            "original_category": item.original_category,
        }
