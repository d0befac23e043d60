"""Block Kit builders as data: escaping, Slack's limits, fallback text, SLA states with a fixed `now`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import load_policy
from bot.slack.blocks.card import review_message, sla_text
from bot.slack.blocks.modals import edit_modal, edited_text, full_text_modal, reject_modal, rejected_reason
from bot.slack.blocks.text import clip_escaped, escape, link
from bot.slack.ids import ActionId, BlockId, ModalMeta
from sandbox.demo.runner import load_sample_tickets
from sandbox.slack_standin import (
    MAX_MESSAGE_BLOCK_TEXT,
    MAX_MESSAGE_BLOCKS,
    _text_length,
    validate_blocks,
    validate_view,
)
from storage.models import DecisionKind, Review, ReviewStatus, Route

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
POLICY = load_policy(BUNDLED_POLICY)
META = ModalMeta(review_id="r1", channel="C0REVIEW01", ts="1700000000.000100")
DUE = int((NOW + timedelta(minutes=25)).timestamp())
DUE_LINE = f"⏱ SLA due <!date^{DUE}^{{date_short_pretty}} {{time}}|2026-11-16 10:25 UTC> (in 25m)"


def make_review(**overrides: Any) -> Review:
    values: dict[str, Any] = {
        "id": "r1",
        "idempotency_key": "k1",
        "ticket_id": "48101",
        "interaction_type": "order_status",
        "confidence": 0.75,
        "customer_message": "Where is my order?",
        "draft": "It ships Thursday.",
        "subject": "Order NW-1",
        "customer": {"name": "Maya Patel", "tier": "standard", "account_value": 214.5},
        "ticket_url": "https://northwind.zendesk.com/agent/tickets/48101",
        "kb_sources": ["kb/shipping.md"],
        "extra": {},
        "route": Route.REVIEW,
        "tier": "standard",
        "reasons": [{"code": "confidence_medium", "message": "confidence 0.75"}],
        "supervisor_decisions": [],
        "status": ReviewStatus.PENDING,
        "created_at": NOW - timedelta(minutes=5),
        "sla_warn_at": NOW + timedelta(minutes=17, seconds=30),
        "sla_due_at": NOW + timedelta(minutes=25),
    }
    values.update(overrides)
    return Review(**values)


def as_dicts(blocks: list[Any]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


def block(blocks: list[dict[str, Any]], block_id: str) -> dict[str, Any]:
    return next(b for b in blocks if b.get("block_id") == block_id)


def slack_accepts(text: str, blocks: list[Any]) -> list[dict[str, Any]]:
    """What the Slack stand-in checks on chat.postMessage: slack_sdk models, 50 blocks, ~12k characters."""
    dicts = validate_blocks(as_dicts(blocks), limit=MAX_MESSAGE_BLOCKS)
    assert _text_length(dicts) <= MAX_MESSAGE_BLOCK_TEXT
    assert text and len(text) <= 40_000
    return dicts


def test_customer_text_cannot_mention_channel_or_fake_a_link() -> None:
    evil = "Hi <!channel> <!here> <@U0BOSS> click <https://evil.example|your refund> & win"
    _, blocks = review_message(
        make_review(customer_message=evil, customer={"name": "<!everyone>"}), POLICY, NOW
    )
    text = json.dumps(as_dicts(blocks))
    for raw in ("<!channel>", "<!here>", "<@U0BOSS>", "<https://evil", "<!everyone>"):
        assert raw not in text
    assert "&lt;!channel&gt;" in block(as_dicts(blocks), BlockId.REVIEW_CUSTOMER)["text"]["text"]
    assert "&amp; win" in text


def test_escape_only_touches_ampersand_and_angle_brackets() -> None:
    assert escape("a & b < c > d *bold* _it_") == "a &amp; b &lt; c &gt; d *bold* _it_"


def test_a_ticket_link_cannot_break_out_of_its_brackets() -> None:
    assert link("https://x.example/a>|<!channel>", "#1") == "<https://x.example/a&gt;%7C&lt;!channel&gt;|#1>"


def test_clipping_never_splits_an_escape_and_marks_the_cut() -> None:
    text, cut = clip_escaped("<" * 100, 10)
    assert cut and text == "&lt;&lt;…" and len(text) <= 10


def test_a_4000_character_message_is_trimmed_within_limits_with_show_full() -> None:
    review = make_review(customer_message="x" * 4000, draft="y" * 4000)
    text, blocks = review_message(review, POLICY, NOW)
    dicts = slack_accepts(text, blocks)
    customer = block(dicts, BlockId.REVIEW_CUSTOMER)["text"]["text"]
    assert customer.endswith("…") and len(customer) <= 3000
    actions = [e["action_id"] for e in block(dicts, BlockId.REVIEW_ACTIONS)["elements"]]
    assert actions == [
        ActionId.APPROVE,
        ActionId.EDIT,
        ActionId.TAKE_OVER,
        ActionId.REJECT,
        ActionId.SHOW_FULL,
    ]
    full = full_text_modal(review).to_dict()
    assert (
        "".join(b["text"]["text"] for b in full["blocks"] if b["block_id"].startswith("full_text:customer:"))
        == "x" * 4000
    )


def test_every_sample_ticket_and_a_huge_one_fit_slack() -> None:
    tickets = sorted(load_sample_tickets(), key=lambda t: -len(t["customer_message"]))
    huge = {
        **tickets[0],
        "customer_message": "é<&" * 33_000,
        "draft": "d " * 50_000,
        "subject": "s" * 1000,
        "ticket_id": "9" * 100,
    }
    for t in [*tickets, huge]:
        review = make_review(
            customer_message=t["customer_message"],
            draft=t["draft"],
            subject=t.get("subject"),
            customer=t.get("customer") or {},
            ticket_id=t["ticket_id"],
            extra={"summary": "s" * 5000},
            reasons=[{"code": "c", "message": "m" * 600}] * 8,
        )
        slack_accepts(*review_message(review, POLICY, NOW))
        for decided in (DecisionKind.EDIT, DecisionKind.REJECT):
            done = make_review(
                **{
                    **review.model_dump(),
                    "status": "edited",
                    "decision": decided,
                    "decided_by": "U1",
                    "decided_at": NOW,
                    "final_text": t["draft"] * 3,
                }
            )
            slack_accepts(*review_message(done, POLICY, NOW))
        validate_view(edit_modal(review, META).to_dict())
        validate_view(full_text_modal(review).to_dict())


def test_fallback_text_is_always_there_and_escaped() -> None:
    text, _ = review_message(make_review(customer_message="<!channel> where is it"), POLICY, NOW)
    assert text.startswith("Review needed: order_status ticket 48101") and "&lt;!channel&gt;" in text
    taken = make_review(
        status=ReviewStatus.TAKEN_OVER,
        decision=DecisionKind.TAKE_OVER,
        decided_by="U1",
        decided_by_name="sam",
        decided_at=NOW,
    )
    assert review_message(taken, POLICY, NOW)[0] == "Taken over by sam: order_status ticket 48101"


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, DUE_LINE),
        (20, "⚠️ *due in 5m*"),
        (37, "🔥 *SLA breached 12m ago*"),
    ],
)
def test_sla_line_counts_down_warns_and_breaches(minutes: int, expected: str) -> None:
    line = sla_text(make_review(), NOW + timedelta(minutes=minutes))
    assert line is not None and line.startswith(expected)


def test_a_decided_card_says_who_what_when_and_the_sla_outcome() -> None:
    on_time = make_review(
        status=ReviewStatus.APPROVED,
        decision=DecisionKind.APPROVE,
        decided_by="U0ALEX",
        decided_at=NOW + timedelta(minutes=3),
    )
    late = make_review(
        status=ReviewStatus.APPROVED,
        decision=DecisionKind.APPROVE,
        decided_by="U0ALEX",
        decided_at=NOW + timedelta(minutes=37),
    )
    assert sla_text(on_time, NOW) == "✅ SLA met"
    assert sla_text(late, NOW) == "🔥 SLA breached by 12m"
    blocks = as_dicts(review_message(late, POLICY, NOW + timedelta(hours=1))[1])
    assert not [b for b in blocks if b.get("block_id") == BlockId.REVIEW_ACTIONS], "buttons are gone"
    decision = block(blocks, BlockId.REVIEW_DECISION)["text"]["text"]
    assert decision.startswith(f"✅ *Approved* by <@U0ALEX> · <!date^{int(late.decided_at.timestamp())}^")
    assert "SLA breached by 12m" in block(blocks, BlockId.REVIEW_SLA)["elements"][0]["text"]


def test_tone_guardrail_hits_and_the_ai_summary_are_shown() -> None:
    review = make_review(
        draft="As an AI, I am 100% sure it ships.", extra={"summary": "Customer wants an ETA."}
    )
    blocks = as_dicts(review_message(review, POLICY, NOW)[1])
    assert "“as an ai”" in block(blocks, BlockId.REVIEW_TONE)["elements"][0]["text"]
    ids = [b["block_id"] for b in blocks]
    assert ids.index(BlockId.REVIEW_SUMMARY) < ids.index(BlockId.REVIEW_CUSTOMER)


def test_supervisor_only_decisions_are_flagged_on_the_card() -> None:
    blocks = as_dicts(review_message(make_review(supervisor_decisions=["approve", "edit"]), POLICY, NOW)[1])
    assert "🔒 Supervisor decision: approve, edit" in json.dumps(blocks, ensure_ascii=False)


def test_edit_modal_prefills_long_drafts_in_parts_that_join_back() -> None:
    draft = ("A paragraph about the refund policy.\n" * 200).strip()
    view = edit_modal(make_review(draft=draft), META).to_dict()
    validate_view(view)
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert len(inputs) == 3 and all(len(b["element"]["initial_value"]) <= 3000 for b in inputs)
    values = {b["block_id"]: {ActionId.EDIT_TEXT: {"value": b["element"]["initial_value"]}} for b in inputs}
    assert edited_text(values) == draft
    assert ModalMeta.model_validate_json(view["private_metadata"]) == META


def test_reject_modal_offers_the_five_defect_categories() -> None:
    view = reject_modal(make_review(), META).to_dict()
    validate_view(view)
    options = [o["value"] for o in block(view["blocks"], BlockId.REJECT_CATEGORY)["element"]["options"]]
    assert options == [
        "hallucination",
        "tone_mismatch",
        "policy_misapplication",
        "incomplete_resolution",
        "other",
    ]
    chosen = {
        BlockId.REJECT_CATEGORY: {ActionId.REJECT_CATEGORY: {"selected_option": {"value": "other"}}},
        BlockId.REJECT_COMMENT: {ActionId.REJECT_COMMENT: {"value": "  too vague "}},
    }
    assert rejected_reason(chosen) == ("other", "too vague")
    assert (
        rejected_reason({BlockId.REJECT_CATEGORY: {ActionId.REJECT_CATEGORY: {"selected_option": None}}})[0]
        is None
    )
