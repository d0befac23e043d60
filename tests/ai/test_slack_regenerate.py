"""Regenerate in the Edit modal, end to end: signed Slack clicks, the Slack stand-in, the model stand-in."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.ai.assist import REGENERATE_UNAVAILABLE
from bot.app.settings import Settings
from bot.slack.ids import ActionId, BlockId
from sandbox.openai_standin import OpenAIStandin
from sandbox.slack_sim import SlackSim, block_action_payload, view_submission_payload
from sandbox.slack_standin import TEAM_ID, SlackStandin
from storage.models import ReviewStatus
from tests.conftest import SIGNING_SECRET, Service, sample_draft, wait_for

from .conftest import load_review

DRAFT = (
    "Hi Maya,\n\nYour order NW-318204 has shipped.\n\nIt should arrive within 3-5 business days.\n\n"
    "You can track it under Account > Orders.\n\nBest,\nNorthwind Outfitters Support"
)
USER = "U0ALEX0001"


class Modal:
    """A running service with Slack and the model stood in, and the reviewer's steps in the Edit modal."""

    def __init__(self, svc: Service, slack: SlackStandin) -> None:
        self.svc, self.slack = svc, slack
        self.sim = SlackSim(svc.url, SIGNING_SECRET)

    def open_edit(self, **draft: Any) -> tuple[str, dict[str, Any]]:
        resp = self.svc.api.post("/v1/drafts", json=sample_draft(**draft))
        assert resp.status_code == 201, resp.text
        review_id = resp.json()["id"]
        review = wait_for(lambda: (r := load_review(self.svc.runtime.engine, review_id)).slack_ts and r)
        card = self.slack.message(review.slack_channel, review.slack_ts)
        payload = block_action_payload(
            message=card,
            channel=card["channel"],
            action_id=ActionId.EDIT,
            user_id=USER,
            trigger_id=self.slack.issue_trigger_id(),
        )
        assert self.sim.post_action(payload).status_code == 200
        return review_id, wait_for(lambda: self.slack.views())[-1]

    def regenerate(self, view: dict[str, Any], text: str, instruction: str) -> None:
        field = next(
            b["block_id"] for b in view["blocks"] if b["block_id"].startswith(f"{BlockId.EDIT_TEXT}:")
        )
        values = {
            field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": text}},
            BlockId.AI_INSTRUCTION: {
                ActionId.AI_INSTRUCTION: {"type": "plain_text_input", "value": instruction}
            },
        }
        button = next(e for b in view["blocks"] if b["block_id"] == BlockId.AI_ACTIONS for e in b["elements"])
        payload = {
            "type": "block_actions",
            "user": {"id": USER, "username": "alex", "name": "alex", "team_id": TEAM_ID},
            "api_app_id": "A0HITL",
            "token": "legacy",
            "trigger_id": f"{secrets.randbelow(10**9)}.1.x",
            "team": {"id": TEAM_ID, "domain": "northwind"},
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
        assert self.sim.post_action(payload).status_code == 200

    def shown(self, note_contains: str) -> dict[str, Any]:
        """The modal once its AI note says `note_contains`."""

        def ready() -> dict[str, Any] | None:
            view = self.slack.views()[-1]
            notes = [b for b in view["blocks"] if b.get("block_id") == BlockId.AI_NOTE]
            return view if notes and note_contains in json.dumps(notes, ensure_ascii=False) else None

        return wait_for(ready)  # type: ignore[no-any-return]


def reply_of(view: dict[str, Any]) -> tuple[str, str]:
    block = next(b for b in view["blocks"] if b["block_id"].startswith(f"{BlockId.EDIT_TEXT}:"))
    return block["block_id"], block["element"]["initial_value"]


@pytest.fixture
def modal(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], slack_standin: SlackStandin
) -> Iterator[Modal]:
    m = Modal(
        start_service(
            ai_settings(
                SLACK_API_URL=slack_standin.base_url, HITL_OPS_CHANNEL="#ops", HITL_OUTBOX_WORKER=True
            )
        ),
        slack_standin,
    )
    yield m
    m.sim.close()


def test_regenerate_rewrites_the_reply_to_the_instruction_and_the_edit_sends_it(
    modal: Modal, openai_standin: OpenAIStandin
) -> None:
    review_id, view = modal.open_edit(
        draft=DRAFT,
        kb_sources=["kb/order-tracking.md"],
        confidence=0.7,
        customer_message="Where is NW-318204? Call 614-555-0183.",
        sentiment=0.0,
    )
    assert {b["block_id"] for b in view["blocks"]} >= {BlockId.AI_INSTRUCTION, BlockId.AI_ACTIONS}
    modal.regenerate(view, DRAFT, "shorter, apologise for the delay")
    updated = modal.shown("Regenerated by AI")
    field, text = reply_of(updated)
    assert field == f"{BlockId.EDIT_TEXT}:0:r1"  # new block id, so Slack shows the new text
    assert "sorry for the delay" in text and len(text) < len(DRAFT) + 60
    assert updated["private_metadata"] == view["private_metadata"]

    sent = openai_standin.requests("regenerate")[0]["user"]
    assert "shorter, apologise for the delay" in sent and "Order tracking" in sent  # grounded in kb_sources
    assert "614-555-0183" not in sent and "[phone]" in sent

    submitted = view_submission_payload(
        view=updated,
        user_id=USER,
        values={field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": text}}},
    )
    assert modal.sim.post_view_submission(submitted).status_code == 200
    review = wait_for(
        lambda: (r := load_review(modal.svc.runtime.engine, review_id)).status != "pending" and r
    )
    assert review.status == ReviewStatus.EDITED and review.final_text == text  # the reviewer's exact text


def test_when_the_model_fails_the_modal_says_so_quietly_and_keeps_the_text(
    modal: Modal, openai_standin: OpenAIStandin
) -> None:
    _, view = modal.open_edit(draft=DRAFT, confidence=0.7, sentiment=0.0)
    openai_standin.force_status(500, times=10)
    mine = DRAFT.replace("Hi Maya", "Hello Maya")
    modal.regenerate(view, mine, "shorter")
    updated = modal.shown(REGENERATE_UNAVAILABLE)
    assert reply_of(updated)[1] == mine


def test_without_a_model_the_edit_modal_has_no_regenerate(
    start_service: Callable[..., Service], ai_settings: Callable[..., Settings], slack_standin: SlackStandin
) -> None:
    m = Modal(
        start_service(
            ai_settings(SLACK_API_URL=slack_standin.base_url, OPENAI_API_KEY="", HITL_OUTBOX_WORKER=True)
        ),
        slack_standin,
    )
    _, view = m.open_edit(confidence=0.7, sentiment=0.0)
    assert BlockId.AI_ACTIONS not in {b["block_id"] for b in view["blocks"]}
    m.sim.close()
