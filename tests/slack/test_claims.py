"""Claim, Unclaim and Reassign through signed requests to the real service, on SQLite and PostgreSQL.

Claiming never decides; a claim is a conditional UPDATE (two racing claimers: exactly one holds it), it
is audited and refreshes the card; supervisors unclaim others and reassign; the buttons work from the
card, from any message recorded for the review (an SLA ping, a DM) and from the App Home tab.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.slack.ids import ActionId, BlockId, ReviewRef
from sandbox.slack_sim import SlackSim, block_action_payload
from sandbox.slack_standin import TEAM_DOMAIN, TEAM_ID
from storage.db import session_scope
from storage.models import ReviewMessage, ReviewStatus
from tests.conftest import SIGNING_SECRET, wait_for
from tests.slack.conftest import APPROVERS, SUPERVISOR, Loop, policy_with_people

ALEX, PRIYA, STRANGER = "U0ALEX0001", "U0PRIYA001", "U0STRANGER"


@pytest.fixture
def team(make_loop: Callable[..., Loop], tmp_path: Path, db_url: str) -> Loop:
    """A service whose tiers have approvers (a user group: Alex, Priya) and one supervisor."""
    policy = policy_with_people(tmp_path, approvers=[APPROVERS], supervisors=[SUPERVISOR])
    loop = make_loop(HITL_POLICY_FILE=str(policy), HITL_DATABASE_URL=db_url)
    loop.standin.add_usergroup(APPROVERS, [ALEX, PRIYA])
    return loop


def claim_block(message: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in message["blocks"] if b["block_id"].startswith(BlockId.REVIEW_CLAIM_ACTIONS))


def holder_line(message: dict[str, Any]) -> str | None:
    found = [b for b in message["blocks"] if b["block_id"] == BlockId.REVIEW_CLAIM]
    return found[0]["text"]["text"] if found else None


def refreshed(loop: Loop, card: dict[str, Any], check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The card once the stand-in holds a version that passes `check`."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: (m := loop.standin.message(card["channel"], card["ts"])) and check(m) and m,
        10,
        "the card to be refreshed",
    )


def reassign_payload(message: dict[str, Any], user_id: str, to: str) -> dict[str, Any]:
    """A users_select choice as Slack sends it: `selected_user`, no value, the review in the block id."""
    payload = block_action_payload(
        message=message, channel=message["channel"], action_id=ActionId.REASSIGN, user_id=user_id
    )
    payload["actions"][0]["selected_user"] = to
    return payload


def test_claim_shows_on_the_card_and_decides_nothing(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)
    assert [e["action_id"] for e in claim_block(card)["elements"]] == [ActionId.CLAIM, ActionId.REASSIGN]
    assert team.click(card, ActionId.CLAIM, ALEX, "alex").status_code == 200

    updated = refreshed(team, card, lambda m: holder_line(m) is not None)
    assert (holder_line(updated) or "").startswith(f"🙋 Claimed by <@{ALEX}> <!date^")
    assert [e["action_id"] for e in claim_block(updated)["elements"]] == [ActionId.UNCLAIM, ActionId.REASSIGN]
    review = team.review(review_id)
    assert (review.status, review.claimed_by, review.claimed_by_name) == (ReviewStatus.PENDING, ALEX, "alex")
    assert review.decision is None and team.decisions(review_id) == 0
    (audit,) = team.audits("claim", review_id)
    assert (audit.actor, audit.detail["holder"], audit.detail["previous"]) == (ALEX, ALEX, None)
    team.settled()
    assert not team.standin.ephemerals(ALEX), "the card itself shows the claim: no extra message"

    team.click(card, ActionId.CLAIM, ALEX, "alex")  # again: nothing changes, and Alex is told so
    assert "You already hold" in team.ephemerals(ALEX)[0]["text"]
    assert team.review(review_id).claimed_at == review.claimed_at


def test_two_claimers_racing_leave_exactly_one_holder_and_the_other_is_told_who(team: Loop) -> None:
    review_ids = [team.post_draft() for _ in range(3)]
    cards = [team.card(r) for r in review_ids]
    sims = {ALEX: SlackSim(team.svc.url, SIGNING_SECRET), PRIYA: SlackSim(team.svc.url, SIGNING_SECRET)}
    try:
        for card in cards:
            gate = threading.Barrier(2)
            codes: list[int] = []

            def race(
                user: str,
                card: dict[str, Any] = card,
                gate: threading.Barrier = gate,
                codes: list[int] = codes,
            ) -> None:
                gate.wait()
                codes.append(team.click(card, ActionId.CLAIM, user, user.lower(), sim=sims[user]).status_code)

            threads = [threading.Thread(target=race, args=(u,)) for u in (ALEX, PRIYA)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert codes == [200, 200]
    finally:
        for sim in sims.values():
            sim.close()

    for review_id in review_ids:
        holder = wait_for(lambda r=review_id: team.review(r).claimed_by, 10, "a holder")
        assert holder in (ALEX, PRIYA)
        assert len(team.audits("claim", review_id)) == 1, "exactly one claim won"
        (refused,) = wait_for(lambda r=review_id: team.audits("claim_refused", r), 10, "the refusal")
        loser = PRIYA if holder == ALEX else ALEX
        assert refused.actor == loser
    team.settled()
    told = [e["text"] for user in (ALEX, PRIYA) for e in team.standin.ephemerals(user)]
    assert len(told) == 3 and all("has claimed this review" in t for t in told)


def test_unclaim_is_for_the_holder_or_a_supervisor(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)
    team.click(card, ActionId.CLAIM, ALEX, "alex")
    card = refreshed(team, card, lambda m: holder_line(m) is not None)

    team.click(card, ActionId.UNCLAIM, PRIYA, "priya")
    assert "Only a supervisor of tier standard may unclaim" in team.ephemerals(PRIYA)[0]["text"]
    assert team.review(review_id).claimed_by == ALEX
    assert [a.actor for a in team.audits("click_refused", review_id)] == [PRIYA]

    team.click(card, ActionId.UNCLAIM, SUPERVISOR, "sup")
    card = refreshed(team, card, lambda m: holder_line(m) is None)
    assert team.review(review_id).claimed_by is None
    (audit,) = team.audits("unclaim", review_id)
    assert (audit.actor, audit.detail["previous"]) == (SUPERVISOR, ALEX)

    team.click(card, ActionId.CLAIM, PRIYA, "priya")
    card = refreshed(team, card, lambda m: holder_line(m) is not None)
    team.click(card, ActionId.UNCLAIM, PRIYA, "priya")  # her own claim: no supervisor needed
    wait_for(lambda: team.review(review_id).claimed_by is None, 10, "Priya's unclaim")


def test_reassign_is_for_supervisors_and_tells_the_new_holder(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)

    assert team.sim.post_action(reassign_payload(card, PRIYA, PRIYA)).status_code == 200
    assert "Only a supervisor of tier standard may reassign" in team.ephemerals(PRIYA)[0]["text"]
    team.sim.post_action(reassign_payload(card, SUPERVISOR, STRANGER))
    assert "may not decide reviews of tier standard" in team.ephemerals(SUPERVISOR)[0]["text"]
    assert team.review(review_id).claimed_by is None

    team.sim.post_action(reassign_payload(card, SUPERVISOR, PRIYA))
    wait_for(lambda: team.review(review_id).claimed_by == PRIYA, 10, "the reassignment")
    updated = refreshed(team, card, lambda m: holder_line(m) is not None)
    assert f"<@{PRIYA}>" in (holder_line(updated) or "")
    (audit,) = team.audits("reassign", review_id)
    assert (audit.actor, audit.detail["holder"]) == (SUPERVISOR, PRIYA)
    team.settled()
    dms = [m for m in team.standin.messages() if "assigned you" in m.get("text", "")]
    assert len(dms) == 1 and f"<@{SUPERVISOR}> assigned you ticket #" in dms[0]["text"]
    assert team.review(review_id).status == ReviewStatus.PENDING


def test_a_non_approver_cannot_claim_and_a_decided_review_cannot_be_claimed(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)
    team.click(card, ActionId.CLAIM, STRANGER, "stranger")
    assert "Only approvers of tier standard" in team.ephemerals(STRANGER)[0]["text"]
    team.click(card, ActionId.APPROVE, ALEX, "alex")
    team.decided(review_id)
    team.click(card, ActionId.CLAIM, PRIYA, "priya")  # the old card, clicked late
    assert f"Already approved by <@{ALEX}>" in team.ephemerals(PRIYA)[0]["text"]
    assert team.review(review_id).claimed_by is None


def test_claim_works_from_a_recorded_ping_or_dm_but_not_from_another_message(team: Loop) -> None:
    review_id = team.post_draft()
    team.card(review_id)
    ref = ReviewRef(review_id=review_id).model_dump_json()
    ping = {
        "ts": "1800000000.000100",
        "channel": "D0PRIYADM1",
        "text": "SLA warning",
        "blocks": [
            {
                "type": "actions",
                "block_id": f"{BlockId.SLA_PING_ACTIONS}:{review_id}",
                "elements": [{"type": "button", "action_id": ActionId.CLAIM, "value": ref, "text": {}}],
            }
        ],
    }
    team.click(ping, ActionId.CLAIM, PRIYA, "priya")
    assert "does not belong to the message" in team.ephemerals(PRIYA)[0]["text"]
    assert team.review(review_id).claimed_by is None

    with session_scope(team.runtime.engine) as session:
        session.add(
            ReviewMessage(
                review_id=review_id,
                kind="sla_dm",
                channel=ping["channel"],
                ts=ping["ts"],
                created_at=team.runtime.clock.now(),
            )
        )
    team.click(ping, ActionId.CLAIM, PRIYA, "priya")
    wait_for(lambda: team.review(review_id).claimed_by == PRIYA, 10, "the claim from the DM")
    told = team.ephemerals(PRIYA, 2)[1]
    assert told["channel"] == ping["channel"] and "You claimed ticket #" in told["text"]
    (audit,) = team.audits("claim", review_id)
    assert audit.detail["channel"] == ping["channel"]


def home_click(loop: Loop, action_id: str, review_id: str, user_id: str) -> httpx.Response:
    """A click on the clicker's App Home tab (a view of type "home": no channel, no message)."""
    ref = ReviewRef(review_id=review_id).model_dump_json()
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "priya", "name": "priya", "team_id": TEAM_ID},
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "container": {"type": "view", "view_id": "V0HOME0001"},
        "view": {
            "id": "V0HOME0001",
            "type": "home",
            "callback_id": "",
            "private_metadata": "",
            "team_id": TEAM_ID,
        },
        "trigger_id": "1.2.3",
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"{BlockId.HOME_LINE_ACTIONS}:{review_id}",
                "type": "button",
                "value": ref,
                "action_ts": "1800000000.1",
            }
        ],
    }
    return loop.sim.post_action(payload)


def test_claim_and_unclaim_from_the_app_home_tab(team: Loop) -> None:
    review_id = team.post_draft()
    card = team.card(review_id)
    assert home_click(team, ActionId.CLAIM, review_id, PRIYA).status_code == 200
    wait_for(lambda: team.review(review_id).claimed_by == PRIYA, 10, "the claim from Home")
    refreshed(team, card, lambda m: f"<@{PRIYA}>" in (holder_line(m) or ""))
    assert team.audits("claim", review_id)[0].detail["surface"] == "home"
    assert home_click(team, ActionId.UNCLAIM, review_id, PRIYA).status_code == 200
    wait_for(lambda: team.review(review_id).claimed_by is None, 10, "the unclaim from Home")
    refreshed(team, card, lambda m: holder_line(m) is None)
