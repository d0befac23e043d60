"""The dead-letter alert in the ops channel, through the real service, the Slack and Zendesk stand-ins.

An approved reply whose helpdesk write dies is announced with the review (type, ticket, customer), the
customer impact, a Retry button and a link to the card. Retry is for the people the policy names
(`ops.dead_letter_retry`, default the supervisors): anyone else is refused ephemerally; an allowed
press puts the row back in line exactly as `hitl outbox retry ID` does, audited, and the alert then
says who retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.app.settings import BUNDLED_POLICY
from bot.outbox.alerts import retriers
from bot.review.policy import People, load_policy
from bot.slack.ids import ActionId, DeadLetterRef
from sandbox.zendesk_standin import ZendeskStandin
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus, ReviewMessage
from tests.conftest import wait_for
from tests.slack.conftest import Loop, make_loop, policy_with_people  # noqa: F401 - make_loop: the fixture

APPROVER = "U0ALEX0001"
SUPERVISOR = "U0SUPER001"
OPS = "U0OPS00001"
OUTSIDER = "U0OUTSIDE1"
TICKET = 48101


def _policy(tmp_path: Path, *, retry: list[str] | None) -> Path:
    path = policy_with_people(tmp_path, approvers=[APPROVER, SUPERVISOR], supervisors=[SUPERVISOR])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["qa"] = {"sample_rate": 0.0}
    if retry is not None:
        data["ops"] = {"dead_letter_retry": {"users": retry}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def zendesk() -> Iterator[ZendeskStandin]:
    with ZendeskStandin() as standin:
        yield standin


@pytest.fixture
def desk_loop(
    make_loop: Callable[..., Loop],  # noqa: F811
    zendesk: ZendeskStandin,
    db_url: str,
    tmp_path: Path,
) -> Callable[..., Loop]:
    def build(retry: list[str] | None) -> Loop:
        return make_loop(
            HITL_DATABASE_URL=db_url,
            HITL_POLICY_FILE=str(_policy(tmp_path, retry=retry)),
            HITL_HELPDESK="zendesk",
            ZENDESK_URL=zendesk.base_url,
            ZENDESK_EMAIL=zendesk.email,
            ZENDESK_API_TOKEN=zendesk.api_token,
        )

    return build


def _dead_write(loop: Loop) -> tuple[str, OutboxItem, dict[str, Any]]:
    """Approve a draft whose ticket Zendesk does not have: the write dies; returns its alert message."""
    rid = loop.post_draft(ticket_id=str(TICKET), interaction_type="order_status")
    assert loop.click(loop.card(rid), ActionId.APPROVE, APPROVER).status_code == 200
    loop.decided(rid)
    [dead] = wait_for(
        lambda: [r for r in loop.outbox("helpdesk_write", rid) if r.status == OutboxStatus.DEAD],
        15,
        "a dead write",
    )
    alert = wait_for(lambda: loop.standin.messages("#ops"), 10, "the dead-letter alert")[0]
    return rid, dead, alert


def _elements(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def _status(loop: Loop, row_id: int | None) -> str:
    with session_scope(loop.runtime.engine, readonly=True) as s:
        return str(s.execute(select(OutboxItem.status).where(OutboxItem.id == row_id)).scalar_one())


def test_the_alert_names_the_review_and_the_impact_and_retry_is_for_the_people_the_policy_names(
    desk_loop: Callable[..., Loop], zendesk: ZendeskStandin
) -> None:
    loop = desk_loop([OPS])
    rid, dead, alert = _dead_write(loop)
    review = loop.review(rid)
    summary = alert["blocks"][0]["text"]["text"]
    assert summary.startswith(f":rotating_light: *Outbox #{dead.id} (helpdesk_write) was dead-lettered*")
    assert (
        f"ticket #{TICKET} (order status)" in summary and "Maya Patel" in summary and "*standard*" in summary
    )
    assert "*Impact*: the customer has not received the approved reply" in summary
    buttons = _elements(alert)
    assert list(buttons) == [ActionId.DEAD_LETTER_RETRY, ActionId.OPEN_CARD]
    assert (
        DeadLetterRef.model_validate_json(buttons[ActionId.DEAD_LETTER_RETRY]["value"]).outbox_id == dead.id
    )
    assert buttons[ActionId.OPEN_CARD]["url"].endswith(f"/p{(review.slack_ts or '').replace('.', '')}")
    with session_scope(loop.runtime.engine, readonly=True) as s:
        kinds = s.execute(select(ReviewMessage.kind).where(ReviewMessage.review_id == rid)).scalars().all()
    assert "dead_letter" in kinds

    # Someone the policy does not name is refused, and nothing moves.
    loop.click(alert, ActionId.DEAD_LETTER_RETRY, OUTSIDER, "olly")
    assert "ops.dead_letter_retry" in loop.ephemerals(OUTSIDER)[0]["text"]
    assert _status(loop, dead.id) == OutboxStatus.DEAD
    assert loop.audits("click_refused")

    # The ticket exists now: an allowed Retry puts the write back in line and it goes out.
    zendesk.add_ticket(TICKET, subject="Order #1234", description="Where is my order?")
    assert loop.click(alert, ActionId.DEAD_LETTER_RETRY, OPS, "opal").status_code == 200
    wait_for(lambda: _status(loop, dead.id) == OutboxStatus.DONE, 15, "the retried write delivered")
    [audit] = [a for a in loop.audits("outbox_retry") if a.actor == OPS]
    assert audit.detail["ids"] == [dead.id] and audit.detail["count"] == 1 and audit.detail["via"] == "slack"
    edited = wait_for(
        lambda: (m := loop.standin.message(alert["channel"], alert["ts"]))["history"] and m,
        30,  # an outbox row like the card refresh, behind it in chat.update's pacing on a loaded machine
        "the alert edited",
    )
    assert f":repeat: Retried by <@{OPS}>" in json.dumps(edited["blocks"])
    assert ActionId.DEAD_LETTER_RETRY not in _elements(edited)
    assert [r["body"] for r in zendesk.public_replies(TICKET)][-1] == review.draft  # the customer has it now

    # A second press on another copy of the button (Slack delivers it late) finds nothing dead.
    loop.click(alert, ActionId.DEAD_LETTER_RETRY, OPS, "opal")
    assert "not dead-lettered any more" in loop.ephemerals(OPS)[0]["text"]


def test_by_default_the_supervisors_may_retry(desk_loop: Callable[..., Loop]) -> None:
    loop = desk_loop(None)
    _, dead, alert = _dead_write(loop)
    loop.click(alert, ActionId.DEAD_LETTER_RETRY, APPROVER, "alex")  # an approver, not a supervisor
    assert "may retry" in loop.ephemerals(APPROVER)[0]["text"]
    assert loop.click(alert, ActionId.DEAD_LETTER_RETRY, SUPERVISOR, "sam").status_code == 200
    [audit] = wait_for(
        lambda: [a for a in loop.audits("outbox_retry") if a.actor == SUPERVISOR], 10, "the retry"
    )
    assert audit.detail["ids"] == [dead.id] and audit.detail["count"] == 1
    edited = wait_for(
        lambda: (m := loop.standin.message(alert["channel"], alert["ts"]))["history"] and m,
        30,  # an outbox row like the card refresh, behind it in chat.update's pacing on a loaded machine
        "the alert edited",
    )
    assert f":repeat: Retried by <@{SUPERVISOR}>" in json.dumps(edited["blocks"])


def test_a_retry_button_pasted_into_another_message_is_refused(desk_loop: Callable[..., Loop]) -> None:
    loop = desk_loop([OPS])
    _, dead, alert = _dead_write(loop)
    forged = {**alert, "ts": "1700000000.000777"}
    loop.click(forged, ActionId.DEAD_LETTER_RETRY, OPS, "opal")
    assert "does not belong" in loop.ephemerals(OPS)[0]["text"]
    assert _status(loop, dead.id) == OutboxStatus.DEAD


def test_who_may_retry_defaults_to_every_tiers_supervisors_and_fails_closed_without_any() -> None:
    bundled = load_policy(BUNDLED_POLICY)
    assert retriers(bundled).anyone  # the bundled policy names no supervisors: nobody may retry from Slack
    named = bundled.model_copy(
        update={"ops": bundled.ops.model_copy(update={"dead_letter_retry": People(users=["U1"])})}
    )
    assert retriers(named) == People(users=["U1"])
    tiers = {
        name: tier.model_copy(update={"supervisors": People(usergroups=["S0SUP"], users=[f"U{i}"])})
        for i, (name, tier) in enumerate(bundled.tiers.items())
    }
    supervised = bundled.model_copy(update={"tiers": tiers})
    assert retriers(supervised) == People(
        usergroups=["S0SUP"], users=sorted(f"U{i}" for i in range(len(tiers)))
    )
