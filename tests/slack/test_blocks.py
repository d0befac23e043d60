"""Block Kit builders as data: escaping, Slack's limits, fallback text, SLA states with a fixed `now`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, UserSelectElement

from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import People, Policy, load_policy
from bot.slack.blocks.card import outcome_line, review_message, sla_text, status_line
from bot.slack.blocks.modals import (
    details_modal,
    edit_modal,
    edited_text,
    full_text_modal,
    reject_modal,
    rejected_reason,
)
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
DUE_LINE = f"⏱ SLA due <!date^{DUE}^{{date_short_pretty}} {{time}}|2026-11-16 10:25 UTC>"


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


def with_supervisors(policy: Policy, *ids: str) -> Policy:
    people = People(
        usergroups=[i for i in ids if i.startswith("S")], users=[i for i in ids if i.startswith("U")]
    )
    tiers = {name: t.model_copy(update={"supervisors": people}) for name, t in policy.tiers.items()}
    return policy.model_copy(update={"tiers": tiers})


def decided(**overrides: Any) -> Review:
    values: dict[str, Any] = {
        "status": ReviewStatus.APPROVED,
        "decision": DecisionKind.APPROVE,
        "decided_by": "U0ALEX",
        "decided_by_name": "alex",
        "decided_at": NOW + timedelta(minutes=3),
        "final_text": "It ships Thursday.",
    }
    values.update(overrides)
    return make_review(**values)


def buttons(blocks: list[Any], block_id: str) -> dict[str, dict[str, Any]]:
    """The elements of an actions block, by action id, parsed back through slack_sdk's models."""
    (actions,) = [b for b in blocks if b.block_id == block_id]
    parsed = Block.parse(actions.to_dict())
    assert isinstance(parsed, ActionsBlock)
    return {e.action_id: e.to_dict() for e in parsed.elements}


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
        (20, f"⚠️ *SLA due soon*: <!date^{DUE}^"),
        (37, f"🔥 *SLA breached*: was due <!date^{DUE}^"),
    ],
)
def test_sla_line_shows_the_absolute_due_time_warns_and_breaches(minutes: int, expected: str) -> None:
    line = sla_text(make_review(), NOW + timedelta(minutes=minutes))
    assert line is not None and line.startswith(expected)
    assert " in " not in line and "ago" not in line, "no countdown that freezes between refreshes"


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
    assert sla_text(late, NOW) == "🔥 SLA missed by 12m"
    blocks = as_dicts(review_message(late, POLICY, NOW + timedelta(hours=1))[1])
    assert not [b for b in blocks if b.get("block_id") == BlockId.REVIEW_ACTIONS], "buttons are gone"
    decision = block(blocks, BlockId.REVIEW_DECISION)["text"]["text"]
    assert decision.startswith(f"✅ *Approved* by <@U0ALEX> · <!date^{int(late.decided_at.timestamp())}^")
    assert "SLA missed by 12m" in decision.splitlines()[1]


def test_tone_guardrail_hits_and_the_ai_summary_are_shown() -> None:
    review = make_review(
        draft="As an AI, I am 100% sure it ships.", extra={"summary": "Customer wants an ETA."}
    )
    blocks = as_dicts(review_message(review, POLICY, NOW)[1])
    assert "“as an ai”" in block(blocks, BlockId.REVIEW_TONE)["elements"][0]["text"]
    ids = [b["block_id"] for b in blocks]
    assert ids.index(BlockId.REVIEW_SUMMARY) < ids.index(BlockId.REVIEW_CUSTOMER)


def test_supervisor_only_decisions_are_flagged_on_the_card_without_pinging_the_group() -> None:
    policy = with_supervisors(POLICY, "S0SUPERVISORS")
    blocks = as_dicts(review_message(make_review(supervisor_decisions=["approve", "edit"]), policy, NOW)[1])
    state = block(blocks, BlockId.REVIEW_SLA)["text"]["text"]
    assert "🔒 *Approve and edit* need a supervisor of tier standard" in state
    assert "<!subteam^" not in json.dumps(blocks), "the group is mentioned only on breach pings"


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


# ---------------------------------------------------------------- issue 13: state first, collapse, who may act


def test_an_open_card_says_its_state_first_then_the_texts_then_the_buttons() -> None:
    review = make_review(claimed_by="U0PRIYA", claimed_at=NOW, refund_amount=40.0)
    text, blocks = review_message(review, POLICY, NOW)
    dicts = slack_accepts(text, blocks)
    order = [b["block_id"] for b in dicts]
    assert order == [
        BlockId.REVIEW_HEADER,
        BlockId.REVIEW_REASONS,
        BlockId.REVIEW_SLA,
        BlockId.REVIEW_CLAIM,
        BlockId.REVIEW_FACTS,
        BlockId.REVIEW_CUSTOMER,
        BlockId.REVIEW_DRAFT,
        BlockId.REVIEW_ACTIONS,
        f"{BlockId.REVIEW_CLAIM_ACTIONS}:r1",
    ]
    assert block(dicts, BlockId.REVIEW_HEADER)["text"]["text"] == "🟡 Review: order status · ticket 48101"
    assert block(dicts, BlockId.REVIEW_REASONS)["text"]["text"] == "*Why a human is needed:* confidence 0.75"
    assert block(dicts, BlockId.REVIEW_SLA)["text"]["text"] == DUE_LINE
    assert block(dicts, BlockId.REVIEW_CLAIM)["text"]["text"].startswith(
        f"🙋 Claimed by <@U0PRIYA> <!date^{int(NOW.timestamp())}^{{time}}|"
    )
    assert (
        block(dicts, BlockId.REVIEW_CUSTOMER)["text"]["text"]
        == "*Customer wrote* — _Order NW-1_\n>Where is my order?"
    )
    assert block(dicts, BlockId.REVIEW_DRAFT)["text"]["text"] == "*AI draft*\nIt ships Thursday."
    facts = " ".join(f["text"] for f in block(dicts, BlockId.REVIEW_FACTS)["fields"])
    assert "value 214.50 USD" in facts and "*Refund*\n40.00 USD" in facts
    claim = buttons(blocks, f"{BlockId.REVIEW_CLAIM_ACTIONS}:r1")
    assert (
        list(claim) == [ActionId.UNCLAIM, ActionId.REASSIGN]
        and claim[ActionId.REASSIGN]["type"] == "users_select"
    )


def test_an_unclaimed_card_offers_claim_and_a_breached_card_says_so_in_its_header() -> None:
    _, blocks = review_message(make_review(), POLICY, NOW + timedelta(minutes=30))
    dicts = as_dicts(blocks)
    assert BlockId.REVIEW_CLAIM not in [b["block_id"] for b in dicts]
    assert list(buttons(blocks, f"{BlockId.REVIEW_CLAIM_ACTIONS}:r1")) == [ActionId.CLAIM, ActionId.REASSIGN]
    header = block(dicts, BlockId.REVIEW_HEADER)["text"]["text"]
    assert header.startswith("🔥 SLA breached · Review: order status")
    assert block(dicts, BlockId.REVIEW_SLA)["text"]["text"].startswith("🔥 *SLA breached*: was due <!date^")


def test_money_is_shown_with_the_customers_currency_when_it_names_one() -> None:
    review = make_review(
        customer={"name": "Jo", "account_value": 1200, "currency": "EUR"}, refund_amount=250.0
    )
    facts = json.dumps(block(as_dicts(review_message(review, POLICY, NOW)[1]), BlockId.REVIEW_FACTS))
    assert "value 1,200.00 EUR" in facts and "250.00 EUR (over the 100.00 EUR limit)" in facts


def test_on_a_supervisor_only_card_approve_is_not_primary_and_says_who_may_press_it() -> None:
    refund = make_review(
        interaction_type="refund",
        tier="billing",
        refund_amount=250.0,
        supervisor_decisions=["approve", "edit"],
    )
    text, blocks = review_message(refund, with_supervisors(POLICY, "S0SUPERVISORS"), NOW)
    slack_accepts(text, blocks)
    found = buttons(blocks, BlockId.REVIEW_ACTIONS)
    approve, edit = found[ActionId.APPROVE], found[ActionId.EDIT]
    assert (approve["text"]["text"], approve.get("style")) == ("Approve (supervisor)", None)
    assert edit["text"]["text"] == "Edit (supervisor)"
    assert found[ActionId.REJECT]["text"]["text"] == "Reject…", "reject is open to every approver"
    assert not any(b.get("style") == "primary" for b in found.values())
    plain = buttons(review_message(make_review(), POLICY, NOW)[1], BlockId.REVIEW_ACTIONS)
    assert (plain[ActionId.APPROVE]["text"]["text"], plain[ActionId.APPROVE]["style"]) == (
        "Approve",
        "primary",
    )


def test_approve_of_a_refund_over_the_limit_and_take_over_ask_for_confirmation() -> None:
    refund = make_review(interaction_type="refund", tier="billing", refund_amount=250.0)
    found = buttons(review_message(refund, POLICY, NOW)[1], BlockId.REVIEW_ACTIONS)
    confirm = found[ActionId.APPROVE]["confirm"]
    assert confirm["title"]["text"] == "Approve this refund?"
    assert "250.00 USD" in confirm["text"]["text"] and "100.00 USD limit" in confirm["text"]["text"]
    assert confirm["confirm"]["text"] == "Approve and send" and confirm["deny"]["text"] == "Cancel"
    assert found[ActionId.TAKE_OVER]["confirm"]["title"]["text"] == "Take this ticket over?"
    assert "confirm" not in found[ActionId.EDIT] and "confirm" not in found[ActionId.REJECT]
    small = buttons(review_message(make_review(refund_amount=20.0), POLICY, NOW)[1], BlockId.REVIEW_ACTIONS)
    assert "confirm" not in small[ActionId.APPROVE], "a refund within the limit needs no dialog"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, "⏳ Writing to the helpdesk…"),
        ("sent", "📨 Reply sent to the customer"),
        ("conflict", "⚠️ *Not sent*: the ticket changed in the helpdesk meanwhile"),
        ("failed", "❌ *Not delivered*: the helpdesk write failed"),
        ("closed", "❌ *Not delivered*: the ticket is closed in the helpdesk"),
    ],
)
def test_a_decided_card_collapses_to_two_lines_with_its_delivery_state(
    state: str | None, expected: str
) -> None:
    review = decided(helpdesk_state=state, customer_message="x" * 4000, draft="y" * 4000)
    text, blocks = review_message(review, POLICY, NOW + timedelta(hours=1))
    dicts = slack_accepts(text, blocks)
    assert [b["block_id"] for b in dicts] == [BlockId.REVIEW_DECISION, BlockId.REVIEW_MORE]
    one, two = block(dicts, BlockId.REVIEW_DECISION)["text"]["text"].split("\n")
    assert one.startswith("✅ *Approved* by <@U0ALEX> · <!date^")
    assert "<https://northwind.zendesk.com/agent/tickets/48101|#48101>" in one
    assert two.startswith("✅ SLA met · " + expected)
    assert "x" * 20 not in json.dumps(dicts) and "y" * 20 not in json.dumps(dicts), (
        "no texts on a decided card"
    )
    assert list(buttons(blocks, BlockId.REVIEW_MORE)) == [ActionId.SHOW_DETAILS]


def test_an_edit_and_a_take_over_collapse_too_with_what_they_did() -> None:
    edit = decided(
        status="edited",
        decision=DecisionKind.EDIT,
        final_text="It ships Friday.",
        extra={"edit_distance": 0.35},
    )
    line = outcome_line(edit)
    assert line.startswith("✏️ *Edited* (35% changed) by <@U0ALEX>")
    taken = decided(
        status="taken_over", decision=DecisionKind.TAKE_OVER, final_text=None, helpdesk_state="assigned"
    )
    assert (
        status_line(taken, NOW, settings=None)
        == "✅ SLA met · 📌 Assigned in the helpdesk · owned by <@U0ALEX>"
    )


def test_after_a_reject_the_card_offers_take_over_until_someone_owns_the_ticket() -> None:
    rejected = decided(
        status="rejected",
        decision=DecisionKind.REJECT,
        final_text=None,
        extra={"reject_category": "hallucination", "reject_comment": "no such order"},
        helpdesk_state="noted",
    )
    _, blocks = review_message(rejected, POLICY, NOW + timedelta(hours=1))
    line = block(as_dicts(blocks), BlockId.REVIEW_DECISION)["text"]["text"]
    assert line.startswith("⛔ *Rejected* (hallucination) by <@U0ALEX>")
    assert line.splitlines()[1] == "✅ SLA met · 📝 Noted on the ticket · nobody owns the ticket yet"
    more = buttons(blocks, BlockId.REVIEW_MORE)
    assert list(more) == [ActionId.SHOW_DETAILS, ActionId.TAKE_OWNERSHIP]
    assert more[ActionId.TAKE_OWNERSHIP]["confirm"]["title"]["text"] == "Own this ticket?"

    # A claim from before the decision is not ownership; one made after it is.
    early = decided(**{**rejected.model_dump(), "claimed_by": "U0PRIYA", "claimed_at": NOW})
    assert ActionId.TAKE_OWNERSHIP in buttons(review_message(early, POLICY, NOW)[1], BlockId.REVIEW_MORE)
    owned = decided(
        **{**rejected.model_dump(), "claimed_by": "U0PRIYA", "claimed_at": NOW + timedelta(minutes=9)}
    )
    _, blocks = review_message(owned, POLICY, NOW + timedelta(hours=1))
    assert list(buttons(blocks, BlockId.REVIEW_MORE)) == [ActionId.SHOW_DETAILS]
    assert (
        "🙋 owned by <@U0PRIYA> since <!date^"
        in block(as_dicts(blocks), BlockId.REVIEW_DECISION)["text"]["text"]
    )


def test_the_details_modal_holds_the_decision_reason_and_every_text_in_full() -> None:
    review = decided(
        status="rejected",
        decision=DecisionKind.REJECT,
        customer_message="c" * 5000,
        final_text=None,
        extra={"reject_category": "tone_mismatch", "reject_comment": "too cold"},
    )
    lines = outcome_line(review) + "\n" + status_line(review, NOW, settings=None)
    view = details_modal(review, lines).to_dict()
    validate_view(view)
    first = view["blocks"][0]["text"]["text"]
    assert (
        first.startswith("⛔ *Rejected* (tone mismatch)") and "*Reason:* Tone mismatch: “too cold”" in first
    )
    customer = "".join(
        b["text"]["text"] for b in view["blocks"] if b["block_id"].startswith("full_text:customer:")
    )
    assert customer == "c" * 5000
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "header"] == [
        "full_text:customer",
        "full_text:draft",
    ]
    edited = decided(status="edited", decision=DecisionKind.EDIT, final_text="It ships Friday.")
    sent = details_modal(edited, outcome_line(edited)).to_dict()
    assert (
        "".join(b["text"]["text"] for b in sent["blocks"] if b["block_id"] == "full_text:sent:0")
        == "It ships Friday."
    )


def test_claim_buttons_are_slack_sdk_elements_and_reassign_is_a_users_select() -> None:
    (claim_block,) = [
        b
        for b in review_message(make_review(), POLICY, NOW)[1]
        if b.block_id.startswith("review_claim_actions")
    ]
    assert isinstance(claim_block, ActionsBlock)
    kinds = [type(e) for e in claim_block.elements]
    assert kinds == [ButtonElement, UserSelectElement]
