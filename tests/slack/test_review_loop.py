"""The review loop end to end: signed requests to /slack/events over real HTTP, the Slack stand-in, the store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot.slack.clicks import stored_team
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_sim import block_action_payload, event_callback, sign, signed_headers
from storage.models import AuditEvent, DecisionKind, ReviewStatus
from tests.conftest import SIGNING_SECRET
from tests.slack.conftest import APPROVERS, SUPERVISOR, Loop, policy_with_people, wait_for


def action_ids(message: dict[str, Any]) -> set[str]:
    return {
        e.get("action_id")
        for b in message.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    }


def test_review_draft_is_posted_to_its_tier_channel_with_the_four_buttons(loop: Loop) -> None:
    review_id = loop.post_draft(customer_message="Where is it? <!channel> <https://evil.example|click me>")
    card = loop.card(review_id)
    assert card["channel"] == "#support-review"
    assert {ActionId.APPROVE, ActionId.EDIT, ActionId.TAKE_OVER, ActionId.REJECT} <= action_ids(card)
    assert card["text"], "the fallback text is always sent"
    customer = next(b for b in card["blocks"] if b["block_id"] == BlockId.REVIEW_CUSTOMER)["text"]["text"]
    assert "&lt;!channel&gt;" in customer and "<!channel>" not in customer
    assert "&lt;https://evil.example|click me&gt;" in customer
    assert not loop.standin.warnings()


def test_approve_acks_updates_the_card_threads_and_queues_the_helpdesk_write(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    resp = loop.click(card, ActionId.APPROVE, "U0ALEX0001", "alex")
    assert resp.status_code == 200
    review = loop.decided(review_id)
    assert (review.status, review.decided_by, review.final_text) == (
        ReviewStatus.APPROVED,
        "U0ALEX0001",
        review.draft,
    )
    updated = loop.standin.message(card["channel"], card["ts"])
    assert not action_ids(updated) & {ActionId.APPROVE, ActionId.EDIT, ActionId.TAKE_OVER, ActionId.REJECT}
    decision = next(b for b in updated["blocks"] if b["block_id"] == BlockId.REVIEW_DECISION)["text"]["text"]
    assert "Approved" in decision and "<@U0ALEX0001>" in decision and "<!date^" in decision
    assert "Approved" in loop.standin.thread(card["channel"], card["ts"])[0]["text"]
    assert [r.payload["decision"] for r in loop.outbox("helpdesk_write", review_id)] == [DecisionKind.APPROVE]
    assert loop.decisions(review_id) == 1
    assert loop.audits("click", review_id) and loop.audits("decision", review_id)


def test_edit_opens_a_prefilled_modal_rejects_empty_and_records_the_final_text(loop: Loop) -> None:
    review_id = loop.post_draft(draft="Hi! Your order ships Thursday.")
    card = loop.card(review_id)
    assert loop.click(card, ActionId.EDIT, modal=True).status_code == 200
    view = wait_for(lambda: loop.standin.views(), 5, "the edit modal")[-1]
    field = f"{BlockId.EDIT_TEXT}:0"
    assert view["blocks"][1]["element"]["initial_value"] == "Hi! Your order ships Thursday."

    empty = loop.submit(view, {field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": "   "}}})
    assert empty.status_code == 200
    assert empty.json() == {
        "response_action": "errors",
        "errors": {field: "Write the reply to send, or Cancel."},
    }
    assert loop.review(review_id).status == ReviewStatus.PENDING

    final = "Hi Maya! Your order ships Thursday and arrives Monday."
    ok = loop.submit(view, {field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": final}}})
    assert ok.status_code == 200 and not ok.content
    review = loop.decided(review_id)
    assert (review.status, review.final_text) == (ReviewStatus.EDITED, final)
    assert 0 < review.extra["edit_distance"] < 1
    collapsed = loop.standin.message(card["channel"], card["ts"])
    line = next(b for b in collapsed["blocks"] if b["block_id"] == BlockId.REVIEW_DECISION)["text"]["text"]
    assert line.startswith("✏️ *Edited* (") and final not in json.dumps(collapsed["blocks"])
    loop.click(collapsed, ActionId.SHOW_DETAILS, modal=True)
    details = wait_for(
        lambda: [v for v in loop.standin.views() if v.get("callback_id") == "review_details_modal"],
        5,
        "details",
    )[-1]
    sent = "".join(
        b["text"]["text"] for b in details["blocks"] if b["block_id"].startswith("full_text:sent:")
    )
    assert sent == final, "the details modal holds the text sent"
    assert [r.payload["decision"] for r in loop.outbox("helpdesk_write", review_id)] == [DecisionKind.EDIT]


def test_take_over_assigns_the_clicker_and_posts_the_draft_in_the_thread(loop: Loop) -> None:
    review_id = loop.post_draft(draft="Here is a refund plan: …", kb_sources=["kb/refunds.md"])
    card = loop.card(review_id)
    loop.click(card, ActionId.TAKE_OVER, "U0SAM00001", "sam")
    review = loop.decided(review_id)
    assert (review.status, review.assignee) == (ReviewStatus.TAKEN_OVER, "U0SAM00001")
    reply = loop.standin.thread(card["channel"], card["ts"])[0]["text"]
    assert "Here is a refund plan" in reply and "kb/refunds.md" in reply and "<@U0SAM00001>" in reply
    assert [r.payload["decision"] for r in loop.outbox("helpdesk_write", review_id)] == [
        DecisionKind.TAKE_OVER
    ]


def test_reject_needs_a_reason_and_stores_it_in_the_feedback_row(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    loop.click(card, ActionId.REJECT, modal=True)
    view = wait_for(lambda: loop.standin.views(), 5, "the reject modal")[-1]
    missing = loop.submit(
        view, {BlockId.REJECT_CATEGORY: {ActionId.REJECT_CATEGORY: {"selected_option": None}}}
    )
    assert missing.json()["response_action"] == "errors"
    values = {
        BlockId.REJECT_CATEGORY: {
            ActionId.REJECT_CATEGORY: {"type": "static_select", "selected_option": {"value": "hallucination"}}
        },
        BlockId.REJECT_COMMENT: {
            ActionId.REJECT_COMMENT: {"type": "plain_text_input", "value": "No such order"}
        },
    }
    assert loop.submit(view, values).status_code == 200
    assert loop.decided(review_id).status == ReviewStatus.REJECTED
    from sqlalchemy import select

    from storage.db import session_scope
    from storage.models import Decision

    with session_scope(loop.runtime.engine, readonly=True) as session:
        row = session.execute(select(Decision).where(Decision.review_id == review_id)).scalar_one()
    assert (row.decision, row.defect_category, row.defect_comment) == (
        "reject",
        "hallucination",
        "No such order",
    )
    assert "Hallucination" in loop.standin.thread(card["channel"], card["ts"])[0]["text"]


def test_show_full_message_opens_the_whole_text(loop: Loop) -> None:
    long_message = "word " * 1200
    review_id = loop.post_draft(customer_message=long_message)
    card = loop.card(review_id)
    assert ActionId.SHOW_FULL in action_ids(card)
    loop.click(card, ActionId.SHOW_FULL, modal=True)
    view = wait_for(lambda: loop.standin.views(), 5, "the full-text modal")[-1]
    shown = "".join(
        b["text"]["text"] for b in view["blocks"] if b["block_id"].startswith("full_text:customer:")
    )
    assert shown == long_message.strip()


def test_a_second_click_changes_nothing_and_is_told_who_decided_first(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    loop.click(card, ActionId.APPROVE, "U0ALEX0001", "alex")
    assert loop.decided(review_id).decided_by == "U0ALEX0001"
    started = time.monotonic()
    late = loop.click(card, ActionId.REJECT, "U0SAM00001", "sam", modal=True)
    assert late.status_code == 200 and time.monotonic() - started < 2.5, "acked at once, not after Bolt's 3 s"
    (note,) = loop.ephemerals("U0SAM00001")
    assert "Already approved by <@U0ALEX0001>" in note["text"] and "<!date^" in note["text"]
    assert not loop.standin.views(), "no modal opens on a decided review"


def test_a_redelivered_click_acts_once(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    payload = block_action_payload(
        message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id="U0ALEX0001"
    )
    body = urlencode({"payload": json.dumps(payload)}).encode()
    for retry in (None, 1, 2):
        assert (
            loop.sim.post_raw(body, signed_headers(SIGNING_SECRET, body, retry_num=retry)).status_code == 200
        )
    loop.decided(review_id)
    time.sleep(0.2)
    loop.settled()
    assert loop.decisions(review_id) == 1
    assert len(loop.audits("click", review_id)) == 1
    assert loop.standin.ephemerals() == [], "a duplicate is not even told it was late"
    assert len(loop.standin.thread(card["channel"], card["ts"])) == 1


def test_an_event_retried_by_slack_is_handled_once(loop: Loop) -> None:
    body = event_callback(
        {"type": "tokens_revoked", "tokens": {"bot": ["U0HITLBOT1"]}}, event_id="Ev0RETRY01"
    )
    for retry in (None, 1, 2):
        assert loop.sim.post_event(body, retry_num=retry).status_code == 200
    wait_for(lambda: loop.audits("tokens_revoked"), 5, "the event to be recorded")
    time.sleep(0.2)
    assert len(loop.audits("tokens_revoked")) == 1
    uninstall = event_callback({"type": "app_uninstalled"})
    assert loop.sim.post_event(uninstall).status_code == 200
    wait_for(lambda: loop.audits("app_uninstalled"), 5, "the uninstall to be recorded")


def test_forged_or_stale_signatures_get_401_and_change_nothing(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    payload = block_action_payload(
        message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id="U1"
    )
    body = urlencode({"payload": json.dumps(payload)}).encode()
    forged = signed_headers("not-the-secret", body)
    assert loop.sim.post_raw(body, forged).status_code == 401
    stale_ts = int(time.time()) - 6 * 60
    stale = signed_headers(SIGNING_SECRET, body, timestamp=stale_ts)
    assert stale["X-Slack-Signature"] == sign(SIGNING_SECRET, body, stale_ts)
    assert loop.sim.post_raw(body, stale).status_code == 401
    tampered = signed_headers(SIGNING_SECRET, body)
    assert loop.sim.post_raw(body.replace(b"U1", b"U2"), tampered).status_code == 401
    time.sleep(0.2)
    assert loop.review(review_id).status == ReviewStatus.PENDING


def test_a_non_approver_is_refused_and_the_attempt_is_audited(make_loop: Any, tmp_path: Path) -> None:
    policy = policy_with_people(tmp_path, approvers=[APPROVERS], supervisors=[SUPERVISOR])
    loop = make_loop(HITL_POLICY_FILE=str(policy))
    loop.standin.add_usergroup(APPROVERS, ["U0ALEX0001"])
    refund = loop.post_draft(interaction_type="refund", confidence=0.8, refund_amount=250.0)
    card = loop.card(refund)

    loop.click(card, ActionId.APPROVE, "U0STRANGER", "stranger")
    loop.click(card, ActionId.APPROVE, "U0ALEX0001", "alex")  # an approver, but a refund over the limit
    assert "Only approvers" in loop.ephemerals("U0STRANGER")[0]["text"]
    assert "Only a supervisor" in loop.ephemerals("U0ALEX0001")[0]["text"]
    assert loop.review(refund).status == ReviewStatus.PENDING
    refused = loop.audits("click_refused", refund)
    assert {a.actor for a in refused} == {"U0STRANGER", "U0ALEX0001"}

    loop.click(card, ActionId.TAKE_OVER, "U0ALEX0001", "alex")  # take over is not supervisor-only here
    assert loop.decided(refund).status == ReviewStatus.TAKEN_OVER

    other = loop.post_draft(interaction_type="refund", confidence=0.8, refund_amount=250.0)
    loop.click(loop.card(other), ActionId.APPROVE, SUPERVISOR, "sup")
    assert loop.decided(other).status == ReviewStatus.APPROVED


def test_a_429_storm_on_post_still_delivers_the_card_once(loop: Loop) -> None:
    loop.standin.force_ratelimit("chat.postMessage", times=3, retry_after=1)
    review_id = loop.post_draft()
    card = loop.card(review_id, timeout=15)
    posts = loop.standin.calls("chat.postMessage")
    assert [c["status"] for c in posts].count(429) == 3
    assert len([m for m in loop.standin.messages() if m.get("thread_ts") in (None, m["ts"])]) == 1
    assert card["ts"] == loop.review(review_id).slack_ts


def test_a_slack_outage_loses_nothing(loop: Loop) -> None:
    loop.standin.set_outage(True)
    review_id = loop.post_draft()
    wait_for(lambda: [c for c in loop.standin.calls() if c["status"] == 503], 5, "a failed post")
    loop.standin.set_outage(False)
    card = loop.card(review_id, timeout=15)
    # Clicks are checked against our workspace, which a service learns (auth.test) once Slack answers.
    wait_for(lambda: stored_team(loop.runtime), 15, "the service to learn its workspace")

    loop.standin.set_outage(True)
    assert loop.click(card, ActionId.APPROVE).status_code == 200
    assert wait_for(lambda: loop.review(review_id).status == ReviewStatus.APPROVED, 5, "the decision")
    time.sleep(0.3)
    loop.standin.set_outage(False)
    wait_for(
        lambda: loop.standin.thread(card["channel"], card["ts"]), 15, "the thread reply after the outage"
    )
    wait_for(lambda: loop.standin.message(card["channel"], card["ts"]).get("edited"), 15, "the card update")
    assert len(loop.standin.messages(card["channel"])) == 2
    assert not loop.count(AuditEvent, AuditEvent.action == "outbox_dead")
