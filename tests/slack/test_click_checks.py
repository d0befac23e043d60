"""A click acts only on the review whose card (or modal) it came from, and only from our workspace.

Everything else is refused with an ephemeral message (a DM where there is no channel), audited as
`click_refused`, and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from bot.slack.ids import ActionId, ModalMeta, ReviewRef
from sandbox.slack_sim import block_action_payload
from storage.models import Decision, OutboxItem, ReviewStatus
from tests.conftest import wait_for
from tests.slack.conftest import Loop

ALEX = "U0ALEX0001"


def vip_and_billing(loop: Loop) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    vip = loop.post_draft(customer={"name": "Ada VIP", "tier": "vip", "account_value": 50_000.0})
    billing = loop.post_draft(interaction_type="billing", confidence=0.8)
    return vip, loop.card(vip), billing, loop.card(billing)


def nothing_changed(loop: Loop, review_id: str) -> None:
    loop.settled()
    assert loop.review(review_id).status == ReviewStatus.PENDING
    assert loop.decisions(review_id) == 0
    assert not loop.outbox("helpdesk_write", review_id)


def test_a_click_on_a_billing_card_whose_button_names_a_vip_review_is_refused_and_changes_nothing(
    loop: Loop,
) -> None:
    vip, vip_card, billing, billing_card = vip_and_billing(loop)
    assert (vip_card["channel"], billing_card["channel"]) == ("#support-vip", "#support-billing")
    payload = block_action_payload(
        message=billing_card,
        channel=billing_card["channel"],
        action_id=ActionId.APPROVE,
        value=ReviewRef(review_id=vip).model_dump_json(),
        user_id=ALEX,
    )
    assert loop.sim.post_action(payload).status_code == 200

    told = loop.ephemerals(ALEX)
    assert told[0]["channel"] == "#support-billing"
    assert "does not belong to the message" in told[0]["text"]
    nothing_changed(loop, vip)
    nothing_changed(loop, billing)
    refused = loop.audits("click_refused", vip)
    assert refused and refused[0].detail["result"] == "ClickRefused"


def test_a_click_claiming_another_workspace_is_refused(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    payload = block_action_payload(
        message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id=ALEX
    )
    payload["team"] = {"id": "T0OTHERORG", "domain": "elsewhere"}
    payload["user"]["team_id"] = "T0OTHERORG"
    assert loop.sim.post_action(payload).status_code == 200

    assert "another Slack workspace (T0OTHERORG)" in loop.ephemerals(ALEX)[0]["text"]
    nothing_changed(loop, review_id)
    assert loop.audits("click_refused", review_id)


def test_the_same_click_from_our_workspace_and_its_own_card_is_recorded(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    assert loop.click(card, ActionId.APPROVE, ALEX).status_code == 200
    assert loop.decided(review_id).status == ReviewStatus.APPROVED
    assert not loop.audits("click_refused", review_id)


def test_a_button_in_a_modal_without_a_channel_that_names_another_review_is_answered_by_dm(
    loop: Loop,
) -> None:
    shown, other = loop.post_draft(), loop.post_draft()
    card = loop.card(shown)
    payload = block_action_payload(
        message=card,
        channel=card["channel"],
        action_id=ActionId.APPROVE,
        user_id=ALEX,
        value=ReviewRef(review_id=other).model_dump_json(),
    )
    # A click inside a modal: no channel, no message; the view names the review it shows.
    for key in ("channel", "message", "response_url"):
        payload.pop(key)
    payload["container"] = {"type": "view", "view_id": "V0MODAL001"}
    payload["view"] = {
        "id": "V0MODAL001",
        "type": "modal",
        "callback_id": "review_edit_modal",
        "private_metadata": ModalMeta(
            review_id=shown, channel=card["channel"], ts=card["ts"]
        ).model_dump_json(),
        "state": {"values": {}},
    }
    assert loop.sim.post_action(payload).status_code == 200

    # The payload has no channel: the answer goes where the modal's card is (its private_metadata).
    told = loop.ephemerals(ALEX)
    assert told[0]["channel"] == card["channel"]
    assert "does not belong to the review this window shows" in told[0]["text"]
    nothing_changed(loop, other)


def test_an_app_home_click_from_another_workspace_is_refused_by_dm(loop: Loop) -> None:
    # Home clicks are accepted from our own workspace (tests/slack/test_home.py); the workspace check holds.
    review_id = loop.post_draft()
    card = loop.card(review_id)
    payload = block_action_payload(
        message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id=ALEX
    )
    for key in ("channel", "message", "response_url"):
        payload.pop(key)
    payload["team"] = {"id": "T0ELSEWHERE", "domain": "elsewhere"}
    payload["user"]["team_id"] = "T0ELSEWHERE"
    payload["container"] = {"type": "view", "view_id": "V0HOME0001"}
    payload["view"] = {"id": "V0HOME0001", "type": "home", "private_metadata": "", "state": {"values": {}}}
    assert loop.sim.post_action(payload).status_code == 200

    dms = wait_for(lambda: [m for m in loop.standin.messages() if m["channel"].startswith("D")], 10, "a DM")
    assert "Nothing changed" in dms[0]["text"]
    nothing_changed(loop, review_id)


def test_a_foreign_button_value_gets_an_ephemeral_and_changes_nothing(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    for value in ("not-json", json.dumps({"ticket": 5}), json.dumps({"review_id": "../../etc"})):
        payload = block_action_payload(
            message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id=ALEX, value=value
        )
        assert loop.sim.post_action(payload).status_code == 200
    told = loop.ephemerals(ALEX, n=3)
    assert all("not one of this app's review buttons" in t["text"] for t in told)
    nothing_changed(loop, review_id)


def test_a_click_naming_a_review_that_does_not_exist_gets_an_ephemeral(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    payload = block_action_payload(
        message=card,
        channel=card["channel"],
        action_id=ActionId.EDIT,
        user_id=ALEX,
        value=ReviewRef(review_id="nosuchreview0000").model_dump_json(),
        trigger_id=loop.standin.issue_trigger_id(),
    )
    assert loop.sim.post_action(payload).status_code == 200
    assert "no longer in the store" in loop.ephemerals(ALEX)[0]["text"]
    assert not loop.standin.views()
    assert loop.count(Decision) == 0
    assert loop.count(OutboxItem, OutboxItem.kind == "helpdesk_write") == 0
