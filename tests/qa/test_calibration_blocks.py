"""Calibration blocks as data: within Slack's limits (checked by slack_sdk's models), PII masked, customer
text inert, the decision hidden while open, and a 25-review report inside one message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot.qa.calibration import Verdict, Vote, agreement
from bot.slack.blocks.calibration import (
    CalibrationChoice,
    CardView,
    ReportView,
    card_blocks,
    card_text,
    intro_blocks,
    report_blocks,
)
from bot.slack.ids import ActionId, BlockId
from storage.models import CalibrationItem, CalibrationSession, CalibrationVote, Review

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def _session(closed: bool = False) -> CalibrationSession:
    return CalibrationSession(
        id=7,
        created_by="U0SUPER001",
        channel="C0ROOM",
        interaction_type="refund",
        n=25,
        created_at=NOW,
        closed_at=NOW if closed else None,
        closed_by="U0SUPER001" if closed else None,
        posted_channel="C0ROOM",
    )


def _review(i: int, message: str = "Where is my refund?") -> Review:
    return Review(
        id=f"r{i:031d}",
        idempotency_key=f"k{i}",
        ticket_id=str(5000 + i),
        interaction_type="refund",
        confidence=0.81,
        customer_message=message,
        draft="We refunded you <!channel> today.",
        route="review",
        tier="billing",
        created_at=NOW,
    )


def _item(i: int) -> CalibrationItem:
    return CalibrationItem(
        id=i,
        session_id=7,
        review_id=f"r{i:031d}",
        position=i,
        interaction_type="refund",
        original_decision="reject",
        original_verdict="defect",
        original_category="policy_misapplication",
        channel="C0ROOM",
        ts=f"1.{i}",
    )


def _votes(i: int) -> list[CalibrationVote]:
    return [
        CalibrationVote(
            session_id=7,
            review_id=f"r{i:031d}",
            voter=f"U0VOTER{v:03d}",
            verdict=verdict,
            category=category,
            voted_at=NOW,
        )
        for v, (verdict, category) in enumerate(
            [("good", None), ("defect", "hallucination"), ("defect", "other")]
        )
    ]


def _checked(blocks: list[Block]) -> str:
    """Every block through slack_sdk's validation, as Slack would get it; the JSON for assertions."""
    raw = [b.to_dict() for b in blocks]
    for block in raw:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    return json.dumps(raw, ensure_ascii=False)


def _section_texts(blocks: list[Block]) -> list[str]:
    return [str(b.to_dict()["text"]["text"]) for b in blocks if b.to_dict()["type"] == "section"]


def test_an_open_card_masks_pii_trims_long_text_and_shows_no_verdicts() -> None:
    long = "My email is maya@example.com, card 4242 4242 4242 4242. " + "Please help. " * 800
    view = CardView(_session(), _item(1), _review(1, long), _votes(1))
    blocks = card_blocks(view)
    text = _checked(blocks)
    assert "maya@example.com" not in text and "[email]" in text and "4242 4242 4242 4242" not in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # the draft cannot ping anyone
    assert all(len(t) <= 3000 for t in _section_texts(blocks)) and "…" in text
    assert "3 votes so far" in text
    for hidden in ("U0VOTER", "rejected", "Original decision", "Policy misapplication →"):
        assert hidden not in text
    assert len(card_text(view)) <= 3000


def test_the_defect_menu_offers_the_taxonomy_within_the_option_limits() -> None:
    blocks = card_blocks(CardView(_session(), _item(1), _review(1), []))
    actions: dict[str, Any] = next(
        b.to_dict() for b in blocks if b.to_dict().get("block_id") == BlockId.CALIBRATION_ACTIONS
    )
    good, menu = actions["elements"]
    assert good["action_id"] == ActionId.CALIBRATE_GOOD and menu["action_id"] == ActionId.CALIBRATE_DEFECT
    choices = [CalibrationChoice.model_validate_json(o["value"]) for o in menu["options"]]
    assert [c.category for c in choices] == [
        "hallucination",
        "tone_mismatch",
        "policy_misapplication",
        "incomplete_resolution",
        "other",
    ]
    assert all(
        len(o["value"]) <= 150 and c.session_id == 7 for o, c in zip(menu["options"], choices, strict=True)
    )


def test_a_closed_card_shows_the_original_decision_and_every_vote_without_buttons() -> None:
    text = _checked(card_blocks(CardView(_session(closed=True), _item(2), _review(2), _votes(2))))
    assert "rejected (Policy misapplication) → Defect" in text
    assert "Good: <@U0VOTER000>" in text and "<@U0VOTER001> (Hallucination)" in text
    assert ActionId.CALIBRATE_GOOD not in text and "closed" in text


def _report_of_25() -> ReportView:
    items = [_item(i) for i in range(1, 26)]
    votes = [v for i in range(1, 26) for v in _votes(i)]
    result = agreement(
        [Vote(v.review_id, v.voter, Verdict(v.verdict)) for v in votes],
        {i.review_id: Verdict.DEFECT for i in items},
    )
    tickets = {i.review_id: f"T{i.position}" for i in items}
    return ReportView(_session(closed=True), items, tickets, votes, result)


def test_a_25_review_report_fits_one_message() -> None:
    blocks = report_blocks(_report_of_25())
    text = _checked(blocks)
    assert len(blocks) <= 50 and all(len(t) <= 3000 for t in _section_texts(blocks))
    assert sum(len(t) for t in _section_texts(blocks)) < 12000  # under msg_blocks_too_long
    assert "*25.* ticket #T25" in text
    # Every review: Good, Defect, Defect -> P_i = (1 + 4 - 3) / 6 = 1/3 each; p_good = 1/3, p_defect = 2/3
    # P_e = 1/9 + 4/9 = 5/9; κ = (1/3 - 5/9) / (4/9) = -1/2
    assert "Fleiss' kappa -0.50 (poor; 3 reviewers, 25 reviews rated by 2+" in text


def test_the_intro_says_why_the_cards_are_in_a_dm() -> None:
    text = _checked(intro_blocks(_session(), not_posted_in="C0ROOM", why="not_in_channel"))
    assert "could not post in <#C0ROOM> (not_in_channel)" in text and "`/hitl calibrate report 7`" in text
