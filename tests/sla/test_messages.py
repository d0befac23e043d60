"""The SLA pings and the dead-letter alert as people read them in Slack: Block Kit built and checked as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock, UserSelectElement

from bot.slack.blocks.sla import (
    DeadLetterView,
    PingView,
    breach_headline,
    dead_letter_message,
    mention_of,
    moved_thread_text,
    reassigned_dm_text,
    reassigned_thread_text,
    sla_ping_message,
    warning_headline,
)
from bot.slack.ids import ActionId, BlockId, DeadLetterRef, ReviewRef, SnoozeRef
from storage.models import DecisionKind, Review, ReviewStatus, Route

DUE = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
LINK = "https://hitl-sandbox.slack.com/archives/C0REVIEW1/p1700000000000100"


def make_review(**overrides: Any) -> Review:
    values: dict[str, Any] = {
        "id": "r1",
        "idempotency_key": "k1",
        "ticket_id": "48101",
        "interaction_type": "order_status",
        "confidence": 0.75,
        "customer_message": "Where is my order?",
        "draft": "It ships Thursday.",
        "customer": {"name": "Maya Patel", "tier": "enterprise", "account_value": 12500.0},
        "ticket_url": "https://northwind.zendesk.com/agent/tickets/48101",
        "route": Route.REVIEW,
        "tier": "standard",
        "status": ReviewStatus.PENDING,
        "created_at": DUE - timedelta(minutes=30),
        "sla_warn_at": DUE - timedelta(minutes=5),
        "sla_due_at": DUE,
        "slack_channel": "C0REVIEW1",
        "slack_ts": "1700000000.000100",
    }
    values.update(overrides)
    return Review(**values)


def reparsed(blocks: list[Block]) -> list[dict[str, Any]]:
    """The blocks as Slack gets them, parsed back with slack_sdk's models (limits checked again)."""
    dicts = [b.to_dict() for b in blocks]
    for d in dicts:
        parsed = Block.parse(d)
        assert parsed is not None, d
        parsed.to_dict()
    return dicts


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for e in elements(blocks)]


def test_a_breach_ping_leads_with_the_time_over_then_the_customer_then_its_buttons() -> None:
    review = make_review()
    view = PingView(
        place="channel",
        level=1,
        mention="<!subteam^S0SUP>",
        permalink=LINK,
        currency="EUR",
        card_channel="C0REVIEW1",
        can_snooze=True,
    )
    text, blocks = sla_ping_message(review, view, DUE + timedelta(minutes=7))
    dicts = reparsed(blocks)
    assert dicts[0]["block_id"] == BlockId.SLA_PING_HEADLINE
    first = dicts[0]["text"]["text"]
    assert first.startswith(":rotating_light: *SLA breached*: ticket #48101 is 7m over")
    assert "in <#C0REVIEW1>" in first and "<!subteam^S0SUP>" in first
    facts = json.dumps(dicts[1])
    assert "*enterprise*" in facts and "12,500.00 EUR" in facts and LINK in facts
    assert action_ids(dicts) == [
        ActionId.CLAIM,
        ActionId.REASSIGN,
        ActionId.SNOOZE,
        ActionId.OPEN_CARD,
        ActionId.APPROVE,
        ActionId.TAKE_OVER,
        ActionId.REJECT,
    ]
    by_id = {e["action_id"]: e for e in elements(dicts)}
    assert ReviewRef.model_validate_json(by_id[ActionId.CLAIM]["value"]).review_id == "r1"
    assert ReviewRef.model_validate_json(by_id[ActionId.APPROVE]["value"]).review_id == "r1"
    assert SnoozeRef.model_validate_json(by_id[ActionId.SNOOZE]["value"]).level == 1
    assert by_id[ActionId.OPEN_CARD]["url"] == LINK
    assert by_id[ActionId.REASSIGN]["type"] == "users_select"
    assert (
        dicts[2]["block_id"] == f"{BlockId.SLA_PING_ACTIONS}:r1"
    )  # a users_select has no value: the id rides here
    assert text.startswith("SLA breached: 7m over — ticket #48101")


def test_a_warning_says_the_time_left_and_mentions_no_group() -> None:
    review = make_review()
    view = PingView(place="thread", level=0, mention="<!subteam^S0SUP>", permalink=LINK)
    text, blocks = sla_ping_message(review, view, DUE - timedelta(minutes=3))
    dicts = reparsed(blocks)
    first = dicts[0]["text"]["text"]
    assert first.startswith(":hourglass_flowing_sand: *SLA warning*: 3m left to decide on ticket #48101")
    assert "subteam" not in json.dumps(dicts)
    assert ActionId.SNOOZE not in action_ids(dicts)  # a warning has no later step of its own to postpone
    assert text.startswith("SLA warning: 3m left")


def test_a_claimed_review_has_no_claim_button_and_names_who_has_it() -> None:
    review = make_review(claimed_by="U0DANA0001")
    _, blocks = sla_ping_message(review, PingView(place="dm", level=2), DUE + timedelta(minutes=30))
    dicts = reparsed(blocks)
    assert "Claimed by <@U0DANA0001>" in dicts[0]["text"]["text"]
    assert ActionId.CLAIM not in action_ids(dicts) and ActionId.REASSIGN in action_ids(dicts)
    assert ActionId.OPEN_CARD not in action_ids(dicts)  # no permalink known: no dead link


def test_money_takes_the_customers_currency_when_the_data_names_one() -> None:
    review = make_review(customer={"name": "Ana", "tier": "vip", "account_value": 99.5, "currency": "GBP"})
    _, blocks = sla_ping_message(review, PingView(place="channel", level=1, currency="EUR"), DUE)
    assert "99.50 GBP" in json.dumps(reparsed(blocks))


def test_a_snoozed_ping_says_who_snoozed_until_when_and_loses_its_snooze_button() -> None:
    later = DUE + timedelta(minutes=25)
    view = PingView(
        place="channel",
        level=1,
        can_snooze=True,
        snoozed_by="U0SAM00001",
        snoozed_at=DUE + timedelta(minutes=6),
        next_at=later,
    )
    _, blocks = sla_ping_message(make_review(), view, DUE + timedelta(minutes=6))
    dicts = reparsed(blocks)
    note = next(b for b in dicts if b["block_id"] == BlockId.SLA_PING_NOTE)
    assert ":zzz: Snoozed by <@U0SAM00001>" in json.dumps(note)
    assert f"<!date^{int(later.timestamp())}^" in json.dumps(note)
    assert ActionId.SNOOZE not in action_ids(dicts)


def test_a_handled_ping_says_who_decided_how_and_has_no_buttons() -> None:
    review = make_review(
        status=ReviewStatus.APPROVED,
        decision=DecisionKind.APPROVE,
        decided_by="U0ALEX0001",
        decided_by_name="alex",
        decided_at=DUE + timedelta(minutes=12),
    )
    text, blocks = sla_ping_message(review, PingView(place="channel", level=1, permalink=LINK), DUE)
    dicts = reparsed(blocks)
    assert not [b for b in dicts if b["type"] == "actions"]
    first = dicts[0]["text"]["text"]
    assert first.startswith("✅ *Approved* by <@U0ALEX0001>") and "SLA breached by 12m" in first
    assert text == "Approved by alex (SLA breached by 12m) — ticket #48101 (order_status) · enterprise"


def test_outside_text_cannot_ping_the_channel() -> None:
    review = make_review(ticket_id="<!channel>", customer={"name": "<!here> Bob", "tier": "<@U1>"})
    _, blocks = sla_ping_message(review, PingView(place="dm", level=1), DUE)
    raw = json.dumps(reparsed(blocks))
    assert "<!channel>" not in raw and "<!here>" not in raw and "<@U1>" not in raw


def test_headlines_read_differently_for_a_breach_an_escalation_and_a_reminder() -> None:
    later = DUE + timedelta(minutes=20)
    assert breach_headline(ticket_id="42", due=DUE, now=DUE, level=1, repeat=0).startswith(
        ":rotating_light: *SLA breached*: ticket #42 is 0s over (was due <!date^"
    )
    assert breach_headline(ticket_id="42", due=DUE, now=later, level=2, repeat=0).startswith(
        ":sos: *SLA escalation, level 2*: ticket #42 breached its SLA 20m ago"
    )
    assert breach_headline(ticket_id="42", due=DUE, now=later, level=1, repeat=2).startswith(
        ":rotating_light: *SLA breached 20m ago* (level 1, reminder 2)"
    )
    assert "|2026-11-16 10:00:00 UTC>" in warning_headline(ticket_id="42", due=DUE, now=DUE)


def test_the_dead_letter_alert_names_the_review_the_impact_and_offers_retry_and_the_card() -> None:
    view = DeadLetterView(
        outbox_id=17,
        kind="helpdesk_write",
        error="helpdesk: HTTP 422 closed ticket",
        impact="the customer has not received the approved reply",
        review=make_review(),
        permalink=LINK,
        currency="EUR",
    )
    text, blocks = dead_letter_message(view)
    dicts = reparsed(blocks)
    summary = dicts[0]["text"]["text"]
    assert summary.startswith(":rotating_light: *Outbox #17 (helpdesk_write) was dead-lettered*")
    assert (
        "ticket #48101 (order status)" in summary and "Maya Patel" in summary and "12,500.00 EUR" in summary
    )
    assert "*Impact*: the customer has not received the approved reply" in summary
    assert action_ids(dicts) == [ActionId.DEAD_LETTER_RETRY, ActionId.OPEN_CARD]
    retry = elements(dicts)[0]
    assert DeadLetterRef.model_validate_json(retry["value"]).outbox_id == 17
    assert "hitl outbox retry 17" in json.dumps(dicts)
    assert "order_status ticket 48101" in text


def test_a_retried_alert_says_who_retried_and_keeps_only_the_card_link() -> None:
    view = DeadLetterView(
        outbox_id=3,
        kind="slack_post_review",
        error="boom",
        impact="no card",
        permalink=LINK,
        retried_by="U0SAM00001",
        retried_at=DUE,
    )
    _, blocks = dead_letter_message(view)
    dicts = reparsed(blocks)
    assert ":repeat: Retried by <@U0SAM00001>" in json.dumps(dicts)
    assert action_ids(dicts) == [ActionId.OPEN_CARD]


def test_blocks_are_slack_sdk_models() -> None:
    _, blocks = sla_ping_message(make_review(), PingView(place="channel", level=1, can_snooze=True), DUE)
    assert isinstance(blocks[0], SectionBlock)
    actions = [b for b in blocks if isinstance(b, ActionsBlock)]
    assert any(isinstance(e, UserSelectElement) for e in actions[0].elements)
    assert all(isinstance(e, ButtonElement) for e in actions[1].elements)


def test_timeout_notes_say_who_has_it_now_or_where_it_went() -> None:
    assert reassigned_thread_text(ticket_id="42", waited=timedelta(minutes=30), to="U9").endswith(
        "ticket #42 is reassigned to <@U9>."
    )
    assert mention_of("S123") == "<!subteam^S123>" and mention_of("<@U1>") == "<@U1>"
    assert "&lt;" in reassigned_dm_text(ticket_id="1", channel="<#C1>")
    moved = moved_thread_text(
        waited=timedelta(hours=1), channel="#tier-2", tier="priority", sla=timedelta(hours=2)
    )
    assert (
        moved == ":arrow_right: *No decision 1h after the SLA breach*: moved to #tier-2 (priority, SLA 2h)."
    )


def test_the_pings_policy_keys_are_checked_with_the_key_and_line_named() -> None:
    import pytest

    from bot.app.settings import BUNDLED_POLICY
    from bot.review.policy import PolicyError, parse_policy

    text = BUNDLED_POLICY.read_text(encoding="utf-8")
    good = parse_policy(text)
    assert good.pings.currency == "USD" and good.pings.snooze == timedelta(minutes=15)
    with pytest.raises(PolicyError, match=r"pings\.snooze: .*more than 0"):
        parse_policy(text.replace("snooze: 15m", "snooze: 0s"))
    with pytest.raises(PolicyError, match=r"pings\.currency"):
        parse_policy(text.replace("currency: USD", "currency: euro"))
    with pytest.raises(PolicyError, match=r"ops\.dead_letter_retry\.user: unknown key"):
        parse_policy(text.replace("    users: []\n", "    user: []\n"))
