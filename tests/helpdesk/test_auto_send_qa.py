"""Auto-send through the real service: the reply reaches Zendesk at once, the sampled share is rated in Slack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.app.settings import BUNDLED_POLICY
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_sim import SlackSim, block_action_payload, view_submission_payload
from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import API_USER_ID, ZendeskStandin
from storage.db import session_scope
from storage.models import AuditEvent, Decision, Review
from tests.conftest import SIGNING_SECRET, Service, sample_draft, wait_for

QA_CHANNEL = "#support-qa"


class QaWorld:
    def __init__(self, svc: Service, slack: SlackStandin, zendesk: ZendeskStandin) -> None:
        self.svc, self.slack, self.zendesk = svc, slack, zendesk
        self.sim = SlackSim(svc.url, SIGNING_SECRET)
        self.next_ticket = 900

    def auto_send(self, **overrides: Any) -> str:
        self.next_ticket += 1
        self.zendesk.add_ticket(
            self.next_ticket, subject="Password", description="I can't log in", requester_id=7
        )
        body = sample_draft(
            ticket_id=str(self.next_ticket),
            interaction_type="password_reset",
            confidence=0.97,
            customer_message="I can't log in <!channel>, help",
            draft="Here is your reset link.",
            **overrides,
        )
        resp = self.svc.api.post("/v1/drafts", json=body)
        assert resp.status_code == 201 and resp.json()["route"] == "auto_send", resp.text
        return str(resp.json()["id"])

    def settled(self) -> None:
        assert self.svc.runtime.services.outbox.drain(15)

    def card(self, review_id: str) -> dict[str, Any]:
        review = wait_for(
            lambda: (r := self.review(review_id)).extra.get("qa_card") and r, what="the QA card"
        )
        card = review.extra["qa_card"]
        return self.slack.message(card["channel"], card["ts"])

    def review(self, review_id: str) -> Review:
        with session_scope(self.svc.runtime.engine, readonly=True) as session:
            review = session.get(Review, review_id)
            assert review is not None
            return review

    def qa_rows(self, review_id: str) -> list[Decision]:
        with session_scope(self.svc.runtime.engine, readonly=True) as session:
            return list(
                session.execute(
                    select(Decision).where(Decision.review_id == review_id, Decision.stage == "qa")
                ).scalars()
            )

    def click(self, message: dict[str, Any], action_id: str, user_id: str, modal: bool = False) -> None:
        trigger = self.slack.issue_trigger_id() if modal else None
        resp = self.sim.post_action(
            block_action_payload(
                message=message,
                channel=message["channel"],
                action_id=action_id,
                user_id=user_id,
                user_name=user_id.lower(),
                trigger_id=trigger,
            )
        )
        assert resp.status_code == 200, resp.text


@pytest.fixture
def world(
    tmp_path: Path, make_settings: Callable[..., Any], start_service: Callable[..., Service], sqlite_url: str
) -> Iterator[QaWorld]:
    policy = yaml.safe_load(BUNDLED_POLICY.read_text())
    policy["qa"] = {"sample_rate": 1.0, "channel": QA_CHANNEL}
    (tmp_path / "policy.yml").write_text(yaml.safe_dump(policy))
    with SlackStandin(token="xoxb-test") as slack, ZendeskStandin() as zendesk:
        zendesk.add_user(7, "maya@example.com", "Maya Patel", role="end-user")
        settings = make_settings(
            HITL_DATABASE_URL=sqlite_url,
            SLACK_API_URL=slack.base_url,
            HITL_POLICY_FILE=str(tmp_path / "policy.yml"),
            HITL_HELPDESK="zendesk",
            ZENDESK_URL=zendesk.base_url,
            ZENDESK_EMAIL="bot@example.com",
            ZENDESK_API_TOKEN="zd-test-token",
        )
        w = QaWorld(start_service(settings), slack, zendesk)
        yield w
        w.sim.close()


def test_an_auto_sent_reply_reaches_zendesk_at_once_and_its_qa_card_is_rated_good_once(
    world: QaWorld,
) -> None:
    review_id = world.auto_send()
    world.settled()
    ticket = world.next_ticket
    assert [(r["body"], r["author_id"]) for r in world.zendesk.public_replies(ticket)] == [
        ("Here is your reset link.", API_USER_ID)
    ]
    assert world.review(review_id).helpdesk_state == "sent"

    card = world.card(review_id)
    assert card["channel"] == QA_CHANNEL
    text = str(card["blocks"])
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # customer text cannot ping anyone
    assert "Here is your reset link." in text and "0.97" in text and "password_reset" in text

    world.click(card, ActionId.QA_GOOD, "U0QA000001")
    rows = wait_for(lambda: world.qa_rows(review_id), what="the rating")
    assert [(r.decision, r.actor_id) for r in rows] == [("qa_good", "U0QA000001")]
    world.settled()
    rated = world.card(review_id)
    assert "Rated *Good* by <@U0QA000001>" in str(rated["blocks"])
    assert ActionId.QA_GOOD not in str(rated["blocks"])

    # A second rater, on a card that still showed the buttons: told who was first, nothing recorded.
    world.click(card, ActionId.QA_GOOD, "U0QA000002")
    world.click(card, ActionId.QA_DEFECT, "U0QA000002", modal=True)
    ephemerals = wait_for(
        lambda: len(e := world.slack.ephemerals("U0QA000002")) == 2 and e, what="2 ephemerals"
    )
    assert all("already rated *Good* by <@U0QA000001>" in e["text"] for e in ephemerals)
    assert world.slack.views() == [] and len(world.qa_rows(review_id)) == 1
    with session_scope(world.svc.runtime.engine, readonly=True) as session:
        assert session.execute(select(AuditEvent).where(AuditEvent.action == "qa_rated")).scalars().all()


def test_a_defect_is_recorded_with_its_category_and_comment(world: QaWorld) -> None:
    review_id = world.auto_send()
    world.settled()
    card = world.card(review_id)
    world.click(card, ActionId.QA_DEFECT, "U0QA000003", modal=True)
    view = wait_for(lambda: world.slack.views(), what="the defect modal")[-1]
    assert "Hallucination" in str(view["blocks"]) and "Tone mismatch" in str(view["blocks"])

    empty = world.sim.post_view_submission(
        view_submission_payload(view=view, user_id="U0QA000003", values={})
    )
    assert empty.json()["response_action"] == "errors"
    values = {
        BlockId.QA_DEFECT_CATEGORY: {
            ActionId.QA_DEFECT_CATEGORY: {
                "type": "static_select",
                "selected_option": {"value": "policy_misapplication"},
            }
        },
        BlockId.QA_DEFECT_COMMENT: {
            ActionId.QA_DEFECT_COMMENT: {"type": "plain_text_input", "value": "Reset links need 2FA first."}
        },
    }
    ok = world.sim.post_view_submission(
        view_submission_payload(view=view, user_id="U0QA000003", values=values)
    )
    assert ok.status_code == 200
    row = wait_for(lambda: world.qa_rows(review_id), what="the defect")[0]
    assert (row.decision, row.defect_category, row.defect_comment) == (
        "qa_defect",
        "policy_misapplication",
        "Reset links need 2FA first.",
    )
    world.settled()
    assert "Defect: Policy misapplication" in str(world.card(review_id)["blocks"])
