"""Pings people act from, through the real service: real short SLAs, the Slack stand-in, signed clicks.

A decision clicked from a breach ping in a channel or from a DM is recorded like one from the card;
afterwards every ping about the review says who handled it and has no buttons left. Snooze postpones
the level's next ping once (a second press is refused), audited. The group is mentioned on breach only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.sla.plan import ping_plan
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_standin import SlackStandin
from storage.db import session_scope
from storage.models import ReviewMessage, SlaPing
from tests.conftest import wait_for
from tests.slack.conftest import Loop, make_loop  # noqa: F401 - the fixture, used by name

POLICY = Path(__file__).with_name("policy_pings.yml")
SUPERVISOR = "U0SUPER001"
OUTSIDER = "U0OUTSIDE1"


@pytest.fixture
def pings_loop(make_loop: Callable[..., Loop], slack_standin: SlackStandin, db_url: str) -> Loop:  # noqa: F811
    slack_standin.add_user(SUPERVISOR, "sam")
    slack_standin.add_usergroup("S0SUPERS", [SUPERVISOR])
    return make_loop(HITL_DATABASE_URL=db_url, HITL_POLICY_FILE=str(POLICY))


def recorded(loop: Loop, review_id: str) -> list[ReviewMessage]:
    with session_scope(loop.runtime.engine, readonly=True) as s:
        q = select(ReviewMessage).where(ReviewMessage.review_id == review_id).order_by(ReviewMessage.id)
        return list(s.execute(q).scalars())


def fired(loop: Loop, review_id: str) -> list[SlaPing]:
    with session_scope(loop.runtime.engine, readonly=True) as s:
        q = select(SlaPing).where(SlaPing.review_id == review_id, SlaPing.status == "fired")
        return list(s.execute(q.order_by(SlaPing.due_at)).scalars())


def ping_of(loop: Loop, review_id: str, kind: str, n: int = 1) -> dict[str, Any]:
    """The first stand-in message recorded with `kind`, once `n` of that kind are recorded."""
    found = wait_for(
        lambda: len(m := [r for r in recorded(loop, review_id) if r.kind == kind]) >= n and m,
        12,
        f"{n} {kind} message(s)",
    )
    return loop.standin.message(found[0].channel, found[0].ts)


def first_version(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks a message was posted with (before any edit)."""
    history = message.get("history") or []
    return list(history[0]["blocks"] if history else message["blocks"])


def actions_in(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks or [] if b["type"] == "actions" for e in b["elements"]]


def all_handled(loop: Loop, review_id: str) -> bool:
    for row in recorded(loop, review_id):
        message = loop.standin.message(row.channel, row.ts)
        text = json.dumps(message["blocks"])
        if actions_in(message["blocks"]) or not ("Approved" in text or "Taken over" in text):
            return False
    return True


def test_a_decision_from_a_breach_ping_in_a_channel_counts_and_every_ping_then_says_who_handled_it(
    pings_loop: Loop,
) -> None:
    loop = pings_loop
    rid = loop.post_draft(interaction_type="order_status")
    ping = ping_of(loop, rid, "sla_breach", n=2)  # the thread copy and the #supervisors one
    supervisors = next(m for m in loop.standin.messages("#supervisors"))
    assert supervisors["ts"] in {r.ts for r in recorded(loop, rid)}
    blocks = supervisors["blocks"]
    # What is first: the breach and its time over; then the customer (tier, value in the policy's currency).
    assert blocks[0]["text"]["text"].startswith(":rotating_light: *SLA breached*")
    assert "<!subteam^S0SUPERS>" in blocks[0]["text"]["text"]
    assert "*standard*" in json.dumps(blocks[1]) and "420.00 EUR" in json.dumps(blocks[1])
    assert actions_in(blocks)[:3] == [ActionId.CLAIM, ActionId.REASSIGN, ActionId.OPEN_CARD]
    assert actions_in(blocks)[-3:] == [ActionId.APPROVE, ActionId.TAKE_OVER, ActionId.REJECT]
    open_card = next(
        e
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.OPEN_CARD
    )
    review = loop.review(rid)
    assert open_card["url"].endswith(f"/p{review.slack_ts.replace('.', '')}")  # the card's permalink
    # The warning (in the card's thread) mentions no group: the supervisors hear of a breach only.
    warning = ping_of(loop, rid, "sla_warning")
    assert "subteam" not in json.dumps(first_version(warning))
    assert ping["ts"]

    resp = loop.click(supervisors, ActionId.APPROVE, SUPERVISOR, "sam")
    assert resp.status_code == 200
    decided = loop.decided(rid)
    assert decided.status == "approved" and decided.decided_by == SUPERVISOR
    wait_for(lambda: all_handled(loop, rid), 10, "every ping edited to say who handled it")
    assert len(recorded(loop, rid)) == 3  # warning + breach in the thread, breach in #supervisors
    edited = loop.standin.message(supervisors["channel"], supervisors["ts"])
    assert f"*Approved* by <@{SUPERVISOR}>" in json.dumps(edited["blocks"])
    assert edited["text"].startswith("Approved by sam")


def test_a_decision_from_a_dm_ping_counts(pings_loop: Loop) -> None:
    loop = pings_loop
    customer = {"id": "cus_9", "name": "Ana Silva", "tier": "vip", "account_value": 1250.5, "currency": "GBP"}
    rid = loop.post_draft(interaction_type="shipping", customer=customer)
    dm = ping_of(loop, rid, "sla_dm")
    assert dm["channel"].startswith("D")
    assert "*vip*" in json.dumps(dm["blocks"]) and "1,250.50 GBP" in json.dumps(
        dm["blocks"]
    )  # the customer's own
    assert {"Claim", "Take over"} <= {
        e["text"]["text"]
        for b in dm["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if "text" in e
    }
    assert loop.click(dm, ActionId.TAKE_OVER, SUPERVISOR, "sam").status_code == 200
    decided = loop.decided(rid)
    assert decided.status == "taken_over" and decided.assignee == SUPERVISOR
    wait_for(
        lambda: not actions_in(loop.standin.message(dm["channel"], dm["ts"])["blocks"]), 10, "the DM edited"
    )
    assert "*Taken over* by" in json.dumps(loop.standin.message(dm["channel"], dm["ts"])["blocks"])


def test_a_click_from_someone_elses_copy_of_a_ping_is_refused(pings_loop: Loop) -> None:
    """A button on a message the review never posted (a forged copy in another channel) decides nothing."""
    loop = pings_loop
    rid = loop.post_draft(interaction_type="order_status")
    supervisors = ping_of(loop, rid, "sla_breach", n=2) and loop.standin.messages("#supervisors")[0]
    forged = {**supervisors, "channel": "C0ELSEWHERE", "ts": "1700000000.000999"}
    loop.click(forged, ActionId.APPROVE, SUPERVISOR, "sam")
    assert "does not belong" in loop.ephemerals(SUPERVISOR)[0]["text"]
    assert loop.review(rid).status == "pending"


def test_snooze_postpones_the_levels_next_ping_once_and_is_audited(pings_loop: Loop) -> None:
    loop = pings_loop
    rid = loop.post_draft(interaction_type="billing")
    created = loop.review(rid).created_at
    planned = {s.kind: s.due_at for s in ping_plan(loop.review(rid), loop.runtime.policy)}
    ping = ping_of(loop, rid, "sla_breach", n=2)
    channel_ping = loop.standin.messages("#supervisors")[0]
    assert ActionId.SNOOZE in actions_in(channel_ping["blocks"])
    assert loop.click(channel_ping, ActionId.SNOOZE, SUPERVISOR, "sam").status_code == 200
    [audit] = wait_for(lambda: loop.audits("sla_snoozed", rid), 5, "the snooze audit")
    assert audit.actor == SUPERVISOR and audit.detail["level"] == 1 and audit.detail["seconds"] == 3.0
    # It says so in place: who snoozed, when the next ping comes; its Snooze button is gone.
    edited = wait_for(
        lambda: (m := loop.standin.message(channel_ping["channel"], channel_ping["ts"]))["history"] and m,
        5,
        "the ping edited",
    )
    assert f":zzz: Snoozed by <@{SUPERVISOR}>" in json.dumps(edited["blocks"])
    assert ActionId.SNOOZE not in actions_in(edited["blocks"])
    # The next level-1 ping moved 3 s later; nothing else of the plan changed.
    moved = {s.kind: s.due_at for s in ping_plan(loop.review(rid), loop.runtime.policy)}
    assert (moved["breach:L1:1"] - planned["breach:L1:1"]).total_seconds() == 3.0
    assert moved["breach:L1:0"] == planned["breach:L1:0"] and moved["warn"] == planned["warn"]

    # A second Snooze of the same level (from the thread copy, which still shows it) is refused.
    thread_copy = ping if ping["ts"] != channel_ping["ts"] else loop.standin.message(*_other(loop, rid, ping))
    assert ActionId.SNOOZE in actions_in(thread_copy["blocks"])
    loop.click(thread_copy, ActionId.SNOOZE, SUPERVISOR, "sam")
    refusal = loop.ephemerals(SUPERVISOR)[0]["text"]
    assert "already snoozed" in refusal and "once" in refusal
    assert len(loop.audits("sla_snoozed", rid)) == 1

    wait_before = planned["breach:L1:1"].timestamp() + 0.8 - time.time()
    time.sleep(max(0.0, wait_before))  # past the original reminder time: it did not go out
    assert "breach:L1:1" not in [p.kind for p in fired(loop, rid)]  # (a late warning may have been skipped)
    reminder = wait_for(
        lambda: next((p for p in fired(loop, rid) if p.kind == "breach:L1:1"), None),
        8,
        "the postponed reminder",
    )
    assert reminder.due_at == moved["breach:L1:1"] and reminder.fired_at is not None
    assert (reminder.fired_at - created).total_seconds() >= (moved["breach:L1:1"] - created).total_seconds()


def _other(loop: Loop, rid: str, message: dict[str, Any]) -> tuple[str, str]:
    row = next(r for r in recorded(loop, rid) if r.kind == "sla_breach" and r.ts != message["ts"])
    return row.channel, row.ts


def test_snooze_is_refused_for_someone_the_tier_does_not_list(
    make_loop: Callable[..., Loop],  # noqa: F811
    slack_standin: SlackStandin,
    tmp_path: Path,
) -> None:
    # Only U0SUPER001 approves in the snoozy tier (its supervisors are the S0SUPERS group).
    policy = POLICY.read_text(encoding="utf-8").replace(
        "    sla: 1.5s\n", "    sla: 1.5s\n    approvers: {users: [U0SUPER001]}\n"
    )
    path = tmp_path / "policy.yml"
    path.write_text(policy, encoding="utf-8")
    slack_standin.add_usergroup("S0SUPERS", [SUPERVISOR])
    loop = make_loop(HITL_POLICY_FILE=str(path))
    rid = loop.post_draft(interaction_type="billing")
    ping_of(loop, rid, "sla_breach", n=2)
    channel_ping = loop.standin.messages("#supervisors")[0]
    loop.click(channel_ping, ActionId.SNOOZE, OUTSIDER, "olly")
    assert "may snooze" in loop.ephemerals(OUTSIDER)[0]["text"]
    assert loop.audits("sla_snoozed", rid) == []


def test_a_claim_from_a_ping_shows_on_every_ping_about_the_review(pings_loop: Loop) -> None:
    loop = pings_loop
    rid = loop.post_draft(interaction_type="order_status")
    ping_of(loop, rid, "sla_breach", n=2)
    supervisors = loop.standin.messages("#supervisors")[0]
    assert ActionId.CLAIM in actions_in(supervisors["blocks"])
    assert loop.click(supervisors, ActionId.CLAIM, SUPERVISOR, "sam").status_code == 200
    wait_for(lambda: loop.review(rid).claimed_by == SUPERVISOR, 5, "the claim")

    def shows_holder() -> bool:
        for row in recorded(loop, rid):
            blocks = loop.standin.message(row.channel, row.ts)["blocks"]
            if ActionId.CLAIM in actions_in(blocks) or f"Claimed by <@{SUPERVISOR}>" not in json.dumps(
                blocks
            ):
                return False
        return True

    wait_for(shows_holder, 10, "every ping to name who holds the review, without a Claim button")
    edited = loop.standin.message(supervisors["channel"], supervisors["ts"])
    assert edited["blocks"][0]["text"]["text"].startswith(
        ":rotating_light: *SLA breached*"
    )  # still the breach
    assert "<!subteam^S0SUPERS>" in edited["blocks"][0]["text"]["text"]
    assert ActionId.APPROVE in actions_in(edited["blocks"]) and ActionId.REASSIGN in actions_in(
        edited["blocks"]
    )


def test_reject_from_a_ping_opens_the_modal_and_records_the_reason(pings_loop: Loop) -> None:
    loop = pings_loop
    rid = loop.post_draft(interaction_type="order_status")
    ping_of(loop, rid, "sla_breach", n=2)
    supervisors = loop.standin.messages("#supervisors")[0]
    loop.click(supervisors, ActionId.REJECT, SUPERVISOR, "sam", modal=True)
    view = wait_for(lambda: loop.standin.views(), 5, "the reject modal")[-1]
    values = {
        BlockId.REJECT_CATEGORY: {
            ActionId.REJECT_CATEGORY: {"type": "static_select", "selected_option": {"value": "tone_mismatch"}}
        },
        BlockId.REJECT_COMMENT: {ActionId.REJECT_COMMENT: {"type": "plain_text_input", "value": "Too curt"}},
    }
    assert loop.submit(view, values, user_id=SUPERVISOR).status_code == 200
    decided = loop.decided(rid)
    assert decided.status == "rejected" and decided.extra["reject_category"] == "tone_mismatch"
    wait_for(lambda: all_handled_as(loop, rid, "Rejected"), 10, "every ping edited to say it was rejected")


def all_handled_as(loop: Loop, review_id: str, word: str) -> bool:
    messages = [loop.standin.message(r.channel, r.ts) for r in recorded(loop, review_id)]
    return bool(messages) and all(
        not actions_in(m["blocks"]) and f"*{word}* by" in json.dumps(m["blocks"]) for m in messages
    )
