"""No card number, IBAN, email or phone number reaches Slack or the model, whichever field it came in.

Drafts go in through POST /v1/drafts with personal data in the customer message, the subject, the AI
draft, the customer's email, the AI summary (the model stand-in is scripted to repeat them), the
Regenerate output and the reviewer's own text; then every request the Slack stand-in and the model
stand-in received is searched for the raw values. The helpdesk still gets the reviewer's exact text.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app.settings import BUNDLED_POLICY
from bot.slack.ids import ActionId, BlockId
from sandbox.openai_standin import OpenAIStandin
from sandbox.slack_sim import view_submission_payload
from sandbox.slack_standin import TEAM_ID
from storage.models import ReviewStatus
from tests.conftest import wait_for
from tests.slack.conftest import Loop

CARD = "4242 4242 4242 4242"
CARD_2 = "4111111111111111"
IBAN = "DE89 3704 0044 0532 0130 00"
EMAIL = "maya.patel@example.com"
PHONE = "+44 20 7946 0958"
TYPED_PHONE = "+1 415 555 0100"
RAW = [CARD, CARD_2, IBAN, EMAIL, PHONE, TYPED_PHONE]
PII = f"card {CARD}, backup card {CARD_2}, IBAN {IBAN}, email {EMAIL}, phone {PHONE}"
ALEX = "U0ALEX0001"


def leaks(texts: list[str]) -> list[str]:
    """The raw values (and their digits-only forms) found in any of `texts`."""
    found = []
    for raw in RAW:
        for form in {raw, raw.replace(" ", "")}:
            if any(form in text for text in texts):
                found.append(form)
    return found


def slack_texts(loop: Loop) -> list[str]:
    return [json.dumps(call, ensure_ascii=False) for call in loop.standin.calls()]


@pytest.fixture
def openai() -> Iterator[OpenAIStandin]:
    standin = OpenAIStandin(api_key="sk-test").start()
    yield standin
    standin.stop()


@pytest.fixture
def ai_loop(make_loop: Callable[..., Loop], openai: OpenAIStandin, tmp_path: Path) -> Loop:
    policy = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    policy["qa"]["sample_rate"] = 1.0  # every auto-sent reply gets a QA card
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return make_loop(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=openai.base_url,
        HITL_OPENAI_TIMEOUT=2.0,
        HITL_POLICY_FILE=str(path),
    )


def pii_draft(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_message": f"Please refund me. My {PII}. " + "I have waited for weeks. " * 30,
        "subject": f"Refund to {IBAN} / {EMAIL}",
        "draft": f"Hi! We will refund your {CARD} and write to {EMAIL}; your IBAN {IBAN} is noted.",
        "customer": {"email": EMAIL, "tier": "standard"},
        "sentiment": 0.0,
        "confidence": 0.75,
    }
    body.update(overrides)
    return body


def regenerate(loop: Loop, view: dict[str, Any], text: str) -> None:
    """Click Regenerate in the Edit modal, with `text` in the reply field."""
    field = next(b["block_id"] for b in view["blocks"] if b["block_id"].startswith(f"{BlockId.EDIT_TEXT}:"))
    button = next(e for b in view["blocks"] if b["block_id"] == BlockId.AI_ACTIONS for e in b["elements"])
    values = {field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": text}}}
    payload = {
        "type": "block_actions",
        "user": {"id": ALEX, "username": "alex", "name": "alex", "team_id": TEAM_ID},
        "team": {"id": TEAM_ID, "domain": "sandbox"},
        "trigger_id": f"{secrets.randbelow(10**9)}.1.x",
        "container": {"type": "view", "view_id": view["id"]},
        "view": {**view, "state": {"values": values}},
        "actions": [
            {
                "action_id": ActionId.AI_REGENERATE,
                "block_id": BlockId.AI_ACTIONS,
                "type": "button",
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    assert loop.sim.post_action(payload).status_code == 200


def reply_field(view: dict[str, Any]) -> tuple[str, str]:
    block = next(b for b in view["blocks"] if b["block_id"].startswith(f"{BlockId.EDIT_TEXT}:"))
    return block["block_id"], block["element"]["initial_value"]


def test_no_raw_personal_data_reaches_slack_or_the_model_and_the_helpdesk_gets_the_reviewers_text(
    ai_loop: Loop, openai: OpenAIStandin
) -> None:
    loop = ai_loop
    openai.script("summarize", {"summary": f"Wants a refund to {IBAN}; card {CARD}; reach at {PHONE}."})
    openai.script("regenerate", {"reply": f"Refund to {IBAN} is on its way; call {PHONE} or mail {EMAIL}."})

    edited = loop.post_draft(**pii_draft())
    taken = loop.post_draft(**pii_draft())
    rejected = loop.post_draft(**pii_draft())
    auto = loop.post_draft(
        **pii_draft(
            confidence=0.99,
            interaction_type="order_status",
            customer_message=f"Where is my parcel? {PII}",
            customer={"id": "cus_auto", "email": "x@example.org"},
            draft=f"Your parcel ships today; we will text {PHONE} and mail {EMAIL}.",
            subject=f"Parcel for {EMAIL}",
        )
    )
    assert loop.review(auto).route == "auto_send", loop.review(auto).reasons
    wait_for(lambda: loop.review(edited).extra.get("summary"), 15, "the AI summary")

    # Edit: the modal shows the draft masked; Regenerate's output is shown masked too.
    card = wait_for(
        lambda: (
            (c := loop.card(edited))
            and any(b["block_id"] == BlockId.REVIEW_SUMMARY for b in c["blocks"])
            and c
        ),
        15,
        "the AI summary on the open card",
    )
    assert loop.click(card, ActionId.EDIT, ALEX, modal=True).status_code == 200
    view = wait_for(lambda: loop.standin.views(), 10, "the Edit modal")[-1]
    field, shown = reply_field(view)
    assert "[card ••••4242]" in shown and "[email]" in shown and "[IBAN]" in shown
    regenerate(loop, view, shown)
    updated = wait_for(
        lambda: (v := loop.standin.views()[-1]) and "Regenerated" in json.dumps(v, ensure_ascii=False) and v,
        10,
        "the regenerated text",
    )
    assert "[IBAN]" in reply_field(updated)[1]
    # The reviewer sends the first text, untouched placeholders and a phone number of their own.
    typed = shown + f" Call me on {TYPED_PHONE}."
    submission = view_submission_payload(
        view=updated,
        user_id=ALEX,
        values={field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": typed}}},
    )
    assert loop.sim.post_view_submission(submission).status_code == 200
    review = loop.decided(edited)
    assert review.status == ReviewStatus.EDITED
    assert (
        review.final_text == review.draft + f" Call me on {TYPED_PHONE}."
    )  # the helpdesk gets the real text
    assert [r.payload["review_id"] for r in loop.outbox("helpdesk_write", edited)] == [edited]

    # Take over: the draft goes to the thread (masked). Reject: the reviewer's comment, masked.
    assert loop.click(loop.card(taken), ActionId.TAKE_OVER, ALEX).status_code == 200
    loop.decided(taken)
    reject_card = loop.card(rejected)
    assert loop.click(reject_card, ActionId.REJECT, ALEX, modal=True).status_code == 200
    reject_view = wait_for(
        lambda: [v for v in loop.standin.views() if v.get("callback_id") == "review_reject_modal"],
        10,
        "Reject",
    )[-1]
    values = {
        "reject_category": {
            "reject_category": {"type": "static_select", "selected_option": {"value": "other"}}
        },
        "reject_comment": {"reject_comment": {"type": "plain_text_input", "value": f"Never quote {CARD_2}!"}},
    }
    assert loop.sim.post_view_submission(
        view_submission_payload(view=reject_view, user_id=ALEX, values=values)
    )
    loop.decided(rejected)
    wait_for(lambda: loop.review(auto).extra.get("qa_card"), 15, "the QA card")
    loop.settled(15)

    # Each text did reach Slack, masked: the summary on the card, the draft in the take-over thread,
    # the reviewer's comment in the reject thread, the reply on the QA card.
    blocks = card["blocks"]  # the open card: a decided card collapses to two lines (issue 13)
    summary = next(b for b in blocks if b["block_id"] == BlockId.REVIEW_SUMMARY)["text"]["text"]
    assert "[IBAN]" in summary and "[card ••••4242]" in summary and "[phone]" in summary
    taken_card = loop.card(taken)
    assert "[card ••••4242]" in loop.standin.thread(taken_card["channel"], taken_card["ts"])[0]["text"]
    assert "[card ••••1111]" in loop.standin.thread(reject_card["channel"], reject_card["ts"])[0]["text"]
    qa = loop.review(auto).extra["qa_card"]
    assert "[phone]" in json.dumps(
        loop.standin.message(qa["channel"], qa["ts"])["blocks"], ensure_ascii=False
    )
    assert len(loop.standin.calls("chat.postMessage")) >= 7  # 3 cards, 3 thread replies, the QA card
    assert not leaks(slack_texts(loop)), leaks(slack_texts(loop))
    model_texts = [json.dumps(r, ensure_ascii=False) for r in openai.requests()]
    assert model_texts and not leaks(model_texts), leaks(model_texts)


def test_with_masking_off_the_card_shows_the_draft_as_written(
    make_loop: Callable[..., Loop],
) -> None:
    loop = make_loop(HITL_MASK_PII=False)
    review_id = loop.post_draft(draft=f"We will write to {EMAIL}.", sentiment=0.0)
    card = loop.card(review_id)
    draft = next(b for b in card["blocks"] if b["block_id"] == BlockId.REVIEW_DRAFT)["text"]["text"]
    assert EMAIL in draft


def test_an_edit_keeping_a_placeholder_that_cannot_be_put_back_gets_a_field_error(loop: Loop) -> None:
    review_id = loop.post_draft(draft="Write to a@example.com or b@example.com.", sentiment=0.0)
    card = loop.card(review_id)
    assert loop.click(card, ActionId.EDIT, ALEX, modal=True).status_code == 200
    view = wait_for(lambda: loop.standin.views(), 10, "the Edit modal")[-1]
    field, shown = reply_field(view)
    assert shown == "Write to [email] or [email]."
    values = {field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": shown}}}
    resp = loop.sim.post_view_submission(view_submission_payload(view=view, user_id=ALEX, values=values))
    assert resp.status_code == 200
    assert resp.json() == {
        "response_action": "errors",
        "errors": {field: "Replace [email] with the real detail (the draft held more than one)."},
    }
    assert loop.review(review_id).status == ReviewStatus.PENDING
