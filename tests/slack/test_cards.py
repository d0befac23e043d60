"""Review cards as reviewers see them in the Slack stand-in: state first, collapsed once decided, delivery
state on the card (Zendesk stand-in: sent, 409 conflict, closed ticket), buttons that match who may act,
and Take over after a Reject. Real service, signed requests, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.slack.ids import ActionId, BlockId
from sandbox.zendesk_standin import ZendeskStandin
from storage.models import ReviewStatus
from tests.conftest import wait_for
from tests.slack.conftest import APPROVERS, SUPERVISOR, Loop, policy_with_people

ALEX, PRIYA = "U0ALEX0001", "U0PRIYA001"


def by_id(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in message["blocks"]}


def elements(message: dict[str, Any], block_id: str) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for e in by_id(message)[block_id]["elements"]}


def parsed(message: dict[str, Any]) -> list[Block]:
    """The blocks as slack_sdk reads them back (each must be a known Block Kit block)."""
    blocks = [Block.parse(b) for b in message["blocks"]]
    assert all(b is not None for b in blocks)
    return [b for b in blocks if b is not None]


def decision_lines(message: dict[str, Any]) -> list[str]:
    return str(by_id(message)[BlockId.REVIEW_DECISION]["text"]["text"]).split("\n")


def settled_card(loop: Loop, review_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    review = loop.review(review_id)
    return wait_for(  # type: ignore[no-any-return]
        lambda: (m := loop.standin.message(review.slack_channel, review.slack_ts)) and check(m) and m,
        15,
        "the card to show the new state",
    )


@pytest.fixture
def team(make_loop: Callable[..., Loop], tmp_path: Path, db_url: str) -> Loop:
    policy = policy_with_people(tmp_path, approvers=[APPROVERS], supervisors=[SUPERVISOR])
    loop = make_loop(HITL_POLICY_FILE=str(policy), HITL_DATABASE_URL=db_url)
    loop.standin.add_usergroup(APPROVERS, [ALEX, PRIYA])
    return loop


def test_the_posted_card_leads_with_its_state_and_quotes_the_customer(team: Loop) -> None:
    review_id = team.post_draft(customer_message="Where is it?\n> not a quote <!channel>")
    card = team.card(review_id)
    parsed(card)
    order = [b["block_id"] for b in card["blocks"]]
    assert order[:3] == [BlockId.REVIEW_HEADER, BlockId.REVIEW_REASONS, BlockId.REVIEW_SLA]
    assert (
        order.index(BlockId.REVIEW_FACTS)
        < order.index(BlockId.REVIEW_CUSTOMER)
        < order.index(BlockId.REVIEW_DRAFT)
    )
    assert order[-2:] == [BlockId.REVIEW_ACTIONS, f"{BlockId.REVIEW_CLAIM_ACTIONS}:{review_id}"]
    blocks = by_id(card)
    assert blocks[BlockId.REVIEW_HEADER]["text"]["text"].startswith("🟡 Review: order status · ticket T")
    assert blocks[BlockId.REVIEW_SLA]["text"]["text"].startswith("⏱ SLA due <!date^")
    customer = blocks[BlockId.REVIEW_CUSTOMER]["text"]["text"]
    assert customer.split("\n")[1:] == [">Where is it?", ">&gt; not a quote &lt;!channel&gt;"]
    assert "value 420.00 USD" in json.dumps(blocks[BlockId.REVIEW_FACTS])
    assert not team.standin.warnings()


def test_a_decided_card_collapses_in_place_and_details_open_the_full_story(team: Loop) -> None:
    review_id = team.post_draft(customer_message="word " * 800)
    card = team.card(review_id)
    team.click(card, ActionId.APPROVE, ALEX, "alex")
    team.decided(review_id)
    collapsed = settled_card(team, review_id, lambda m: BlockId.REVIEW_DECISION in by_id(m))
    parsed(collapsed)
    assert [b["block_id"] for b in collapsed["blocks"]] == [BlockId.REVIEW_DECISION, BlockId.REVIEW_MORE]
    one, two = decision_lines(collapsed)
    assert one.startswith(f"✅ *Approved* by <@{ALEX}> · <!date^") and "|#T" in one
    assert two == "✅ SLA met", "no helpdesk configured: nothing to deliver, so no delivery state"
    assert list(elements(collapsed, BlockId.REVIEW_MORE)) == [ActionId.SHOW_DETAILS]
    assert collapsed["ts"] == card["ts"], "the same message, edited in place"

    team.click(collapsed, ActionId.SHOW_DETAILS, PRIYA, "priya", modal=True)
    view = wait_for(lambda: team.standin.views(), 10, "the details modal")[-1]
    assert view["callback_id"] == "review_details_modal"
    assert view["blocks"][0]["text"]["text"].startswith(f"✅ *Approved* by <@{ALEX}>")
    customer = "".join(
        b["text"]["text"] for b in view["blocks"] if b["block_id"].startswith("full_text:customer:")
    )
    assert customer == ("word " * 800).strip()


def test_supervisor_only_cards_say_so_and_ask_before_approving_a_big_refund(team: Loop) -> None:
    review_id = team.post_draft(interaction_type="refund", confidence=0.8, refund_amount=250.0)
    card = team.card(review_id)
    parsed(card)
    buttons = elements(card, BlockId.REVIEW_ACTIONS)
    approve = buttons[ActionId.APPROVE]
    assert approve["text"]["text"] == "Approve (supervisor)" and "style" not in approve
    assert "250.00 USD" in approve["confirm"]["text"]["text"]
    assert buttons[ActionId.TAKE_OVER]["confirm"]["confirm"]["text"] == "Take over"
    assert "<!subteam^" not in json.dumps(card["blocks"]) and f"<@{SUPERVISOR}>" not in json.dumps(
        card["blocks"]
    )
    assert "need a supervisor of tier billing" in by_id(card)[BlockId.REVIEW_SLA]["text"]["text"]


def test_take_over_after_a_reject_makes_the_clicker_owner_without_a_second_decision(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)
    team.click(card, ActionId.REJECT, ALEX, "alex", modal=True)
    view = wait_for(lambda: team.standin.views(), 5, "the reject modal")[-1]
    choice = {"type": "static_select", "selected_option": {"value": "hallucination"}}
    team.submit(view, {BlockId.REJECT_CATEGORY: {ActionId.REJECT_CATEGORY: choice}}, ALEX)
    team.decided(review_id)
    rejected = settled_card(team, review_id, lambda m: BlockId.REVIEW_MORE in by_id(m))
    assert decision_lines(rejected)[1].endswith("nobody owns the ticket yet")
    take = elements(rejected, BlockId.REVIEW_MORE)[ActionId.TAKE_OWNERSHIP]
    assert take["confirm"]["title"]["text"] == "Own this ticket?"

    team.click(rejected, ActionId.TAKE_OWNERSHIP, PRIYA, "priya")
    owned = settled_card(team, review_id, lambda m: "owned by" in decision_lines(m)[1])
    assert f"🙋 owned by <@{PRIYA}> since <!date^" in decision_lines(owned)[1]
    assert list(elements(owned, BlockId.REVIEW_MORE)) == [ActionId.SHOW_DETAILS]
    review = team.review(review_id)
    assert (review.status, review.claimed_by, review.assignee) == (ReviewStatus.REJECTED, PRIYA, PRIYA)
    assert team.decisions(review_id) == 1, "not a second decision"
    assert [a.actor for a in team.audits("take_ownership", review_id)] == [PRIYA]
    team.settled()
    notes = [m["text"] for m in team.standin.thread(card["channel"], card["ts"])]
    assert any(f"<@{PRIYA}> took ticket #" in n and "stays rejected" in n for n in notes)

    team.click(rejected, ActionId.TAKE_OWNERSHIP, ALEX, "alex")  # the old card: Alex is too late
    assert f"<@{PRIYA}> already owns this ticket" in team.ephemerals(ALEX)[0]["text"]
    assert team.review(review_id).claimed_by == PRIYA


# ---------------------------------------------------------------- the helpdesk write shows on the card


@pytest.fixture
def desk(
    make_loop: Callable[..., Loop], zendesk_standin: ZendeskStandin, db_url: str
) -> tuple[Loop, ZendeskStandin]:
    loop = make_loop(
        HITL_DATABASE_URL=db_url,
        HITL_HELPDESK="zendesk",
        ZENDESK_URL=zendesk_standin.base_url,
        ZENDESK_EMAIL=zendesk_standin.email,
        ZENDESK_API_TOKEN=zendesk_standin.api_token,
    )
    return loop, zendesk_standin


def approve_ticket(
    loop: Loop, zendesk: ZendeskStandin, number: int, before: Callable[[], Any], *, stamp: bool = True
) -> str:
    """Post a draft for a Zendesk ticket (with the stamp the AI saw), let `before` change it, approve it."""
    seen = zendesk.add_ticket(number, subject="Order", description="Where is my order?")["updated_at"]
    review_id = loop.post_draft(ticket_id=str(number), **({"ticket_updated_at": seen} if stamp else {}))
    card = loop.card(review_id)
    before()
    loop.click(card, ActionId.APPROVE, ALEX, "alex")
    loop.decided(review_id)
    return review_id


def test_the_card_says_whether_the_reply_was_sent_held_by_a_conflict_or_refused(
    desk: tuple[Loop, ZendeskStandin],
) -> None:
    loop, zendesk = desk
    sent = approve_ticket(loop, zendesk, 701, lambda: None)
    conflict = approve_ticket(loop, zendesk, 702, lambda: zendesk.human_update(702, "Sorted by phone"))
    # No stamp from the pipeline: the write reads the ticket as it is, so the closed ticket refuses it (422).
    closed = approve_ticket(loop, zendesk, 703, lambda: zendesk.close_ticket(703), stamp=False)

    card = settled_card(loop, sent, lambda m: "Reply sent" in decision_lines(m)[1])
    assert decision_lines(card)[1] == "✅ SLA met · 📨 Reply sent to the customer"
    card = settled_card(loop, conflict, lambda m: "Not sent" in decision_lines(m)[1])
    assert "⚠️ *Not sent*: the ticket changed in the helpdesk meanwhile" in decision_lines(card)[1]
    assert loop.review(conflict).helpdesk_state == "conflict"
    card = settled_card(loop, closed, lambda m: "Not delivered" in decision_lines(m)[1])
    assert "❌ *Not delivered*: the ticket is closed in the helpdesk" in decision_lines(card)[1]
    replies = [r["body"] for r in zendesk.public_replies(702)]
    assert replies[-1] == "Sorted by phone" and loop.review(conflict).draft not in replies, (
        "never overwritten"
    )
    for review_id in (sent, conflict, closed):
        assert len(decision_lines(settled_card(loop, review_id, lambda m: True))) == 2
