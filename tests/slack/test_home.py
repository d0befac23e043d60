"""The App Home tab end to end: signed app_home_opened events and Home clicks over real HTTP, the Slack
stand-in's views.publish, and the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import update

from bot.app.settings import BUNDLED_POLICY
from bot.reporting.home import HomeData, HomeLine
from bot.slack.blocks.home import home_view
from bot.slack.clicks import stored_team
from bot.slack.home import home_publisher
from bot.slack.ids import ActionId, BlockId, ReviewRef
from sandbox.slack_sim import app_home_opened, event_callback, home_action_payload
from sandbox.slack_standin import SlackStandin
from storage.db import session_scope
from storage.models import DecisionKind, Review, ReviewStatus
from tests.conftest import FakeClock, Service
from tests.slack.conftest import Loop, wait_for

APPROVERS = "S0APPROVERS"
ALEX = "U0ALEX0001"  # an approver of every tier
SUPERVISOR = "U0SUPER001"
MANAGER = "U0MANAGER1"  # a manager, approver of no tier
DECISION_BUTTONS = {ActionId.APPROVE, ActionId.EDIT, ActionId.TAKE_OVER, ActionId.REJECT}


def home_policy(tmp_path: Path) -> Path:
    """The bundled policy with approvers (a group), a supervisor and one manager."""
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    for tier in data["tiers"].values():
        tier["approvers"] = {"usergroups": [APPROVERS], "users": []}
        tier["supervisors"] = {"usergroups": [], "users": [SUPERVISOR]}
    data["managers"] = {"usergroups": [], "users": [MANAGER]}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def start_home_loop(
    make_settings: Callable[..., Any],
    standin: SlackStandin,
    start_service: Callable[..., Service],
    db_url: str,
    tmp_path: Path,
) -> Loop:
    settings = make_settings(
        SLACK_API_URL=standin.base_url,
        HITL_OPS_CHANNEL="#ops",
        HITL_DATABASE_URL=db_url,
        HITL_POLICY_FILE=str(home_policy(tmp_path)),
        HITL_SCHEDULER=False,
    )
    loop = Loop(start_service(settings, clock=FakeClock()), standin)
    wait_for(lambda: stored_team(loop.runtime), 15, "the service to learn its workspace")
    return loop


@pytest.fixture
def home_loop(
    make_settings: Callable[..., Any],
    slack_standin: SlackStandin,
    start_service: Callable[..., Service],
    db_url: str,
    tmp_path: Path,
) -> Loop:
    """The service on a clock the test moves (SLA states), with approvers, a supervisor and a manager."""
    slack_standin.add_usergroup(APPROVERS, [ALEX])
    return start_home_loop(make_settings, slack_standin, start_service, db_url, tmp_path)


# ---------------------------------------------------------------- helpers


def settled_home(loop: Loop, user: str, timeout: float = 15.0) -> dict[str, Any]:
    """The user's Home once every publish asked for so far is done."""
    publisher = home_publisher(loop.runtime)
    wait_for(lambda: publisher.idle() and loop.standin.home(user), timeout, f"the Home of {user}")
    home = loop.standin.home(user)
    assert home is not None
    return home


def gone_from_home(loop: Loop, user: str, review_id: str) -> dict[str, Any] | None:
    """The user's Home once it no longer lists `review_id` (None while it still does)."""
    home = loop.standin.home(user)
    listed = home is not None and any(str(i).endswith(f":{review_id}") for i in ids(home))
    return home if home is not None and not listed else None


def open_home(loop: Loop, user: str, **event: Any) -> dict[str, Any]:
    resp = loop.sim.post_event(event_callback(app_home_opened(user, **event)))
    assert resp.status_code == 200
    return settled_home(loop, user)


def valid(view: dict[str, Any]) -> dict[str, Any]:
    """The view, re-read with slack_sdk's models: a home view of at most 100 valid blocks."""
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    blocks = [Block.parse(b) for b in view["blocks"]]
    assert all(b is not None for b in blocks)
    View(type="home", blocks=blocks).validate_json()
    return view


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def ids(view: dict[str, Any]) -> list[str]:
    return [str(b.get("block_id", "")) for b in view["blocks"]]


def line_ids(view: dict[str, Any], section: BlockId) -> list[str]:
    prefix = f"{BlockId.HOME_LINE}:{section}:"
    return [i.removeprefix(prefix) for i in ids(view) if i.startswith(prefix)]


def buttons(view: dict[str, Any], section: BlockId, review_id: str) -> set[str]:
    wanted = f"{BlockId.HOME_LINE_ACTIONS}:{section}:{review_id}"
    found = [b for b in view["blocks"] if b.get("block_id") == wanted]
    return {e["action_id"] for b in found for e in b["elements"]}


def claim_in_store(loop: Loop, review_id: str, user: str) -> None:
    """Set up a claim as bot.review.claims would leave it (the Claim flow itself is tested with claims)."""
    with session_scope(loop.runtime.engine) as session:
        session.execute(
            update(Review)
            .where(Review.id == review_id)  # type: ignore[arg-type]
            .values(claimed_by=user, claimed_by_name="alex", claimed_at=loop.runtime.clock.now())
        )


def three_reviews(loop: Loop) -> tuple[str, str, str]:
    """(breached, waiting, claimed by Alex): the standard tier's SLA is 30m, the clock ends 35m on."""
    breached = loop.post_draft(customer={"tier": "standard", "account_value": 420.0, "name": "Maya"})
    loop.runtime.clock.advance(minutes=20)
    waiting = loop.post_draft(customer={"tier": "gold", "account_value": 5200.0, "name": "Ann"})
    claimed = loop.post_draft()
    for rid in (breached, waiting, claimed):
        loop.card(rid)
    loop.runtime.clock.advance(minutes=15)
    claim_in_store(loop, claimed, ALEX)
    return breached, waiting, claimed


def home_click(
    loop: Loop, view: dict[str, Any], section: BlockId, review_id: str, action: str, user: str, **kw: Any
) -> Any:
    payload = home_action_payload(
        view=view,
        action_id=action,
        user_id=user,
        block_id=f"{BlockId.HOME_LINE_ACTIONS}:{section}:{review_id}",
        **kw,
    )
    return payload, loop.sim.post_action(payload)


def dms(loop: Loop, user: str) -> list[dict[str, Any]]:
    """Messages the bot sent `user` directly (conversations.open answers the same DM id again)."""
    if not [c for c in loop.standin.calls("conversations.open") if c["args"].get("users") == user]:
        return []
    client = WebClient(base_url=loop.standin.base_url, token="xoxb-test")
    channel = client.conversations_open(users=user)["channel"]["id"]
    return loop.standin.messages(channel)


# ---------------------------------------------------------------- what Home shows


def assert_sections_in_order(view: dict[str, Any], breached: str, waiting: str, claimed: str) -> None:
    order = ids(view)
    assert order[0] == BlockId.HOME_HEADER
    my, wait, late = (
        order.index(b) for b in (BlockId.HOME_MY_CLAIMS, BlockId.HOME_WAITING, BlockId.HOME_BREACHED)
    )
    assert my < wait < late
    assert line_ids(view, BlockId.HOME_MY_CLAIMS) == [claimed]
    assert line_ids(view, BlockId.HOME_WAITING) == [waiting]
    assert line_ids(view, BlockId.HOME_BREACHED) == [breached]
    assert BlockId.HOME_STATS not in order, "the stats snapshot is for managers only"


def assert_line_texts(view: dict[str, Any], breached: str, waiting: str) -> None:
    text = block(view, f"{BlockId.HOME_LINE}:{BlockId.HOME_WAITING}:{waiting}")["text"]["text"]
    for part in (
        "order_status",
        "gold",
        "value 5,200",
        "waiting 15m",
        "due in 15m",
        "open the card",
        "https://",
    ):
        assert part in text, part
    late = block(view, f"{BlockId.HOME_LINE}:{BlockId.HOME_BREACHED}:{breached}")["text"]["text"]
    assert "breached 5m ago" in late and "waiting 35m" in late


def test_an_agent_sees_claims_then_waiting_then_breached_with_their_buttons(home_loop: Loop) -> None:
    loop = home_loop
    breached, waiting, claimed = three_reviews(loop)
    view = valid(open_home(loop, ALEX))
    assert_sections_in_order(view, breached, waiting, claimed)
    assert_line_texts(view, breached, waiting)
    assert buttons(view, BlockId.HOME_WAITING, waiting) == {ActionId.CLAIM, *DECISION_BUTTONS}
    assert buttons(view, BlockId.HOME_MY_CLAIMS, claimed) == {ActionId.UNCLAIM, *DECISION_BUTTONS}
    line = block(view, f"{BlockId.HOME_LINE_ACTIONS}:{BlockId.HOME_WAITING}:{waiting}")
    approve = next(e for e in line["elements"] if e["action_id"] == ActionId.APPROVE)
    assert ReviewRef.model_validate_json(approve["value"]).review_id == waiting
    assert ActionId.HOME_REFRESH in {e["action_id"] for e in block(view, BlockId.HOME_ACTIONS)["elements"]}
    # Links to the cards come from the workspace URL auth.test gave: no chat.getPermalink per line.
    card = loop.review(waiting)
    link = f"https://hitl-sandbox.slack.com/archives/{str(card.slack_channel).lstrip('#')}/p{str(card.slack_ts).replace('.', '')}"
    assert link in str(block(view, f"{BlockId.HOME_LINE}:{BlockId.HOME_WAITING}:{waiting}")["text"]["text"])
    assert not loop.standin.calls("chat.getPermalink")


def test_a_manager_sees_the_week_and_no_decision_buttons(home_loop: Loop) -> None:
    loop = home_loop
    breached, waiting, claimed = three_reviews(loop)
    view = valid(open_home(loop, MANAGER))

    order = ids(view)
    assert order.index(BlockId.HOME_BREACHED) < order.index(BlockId.HOME_STATS), "the stats come last"
    stats = block(view, BlockId.HOME_STATS)
    fields = " ".join(f["text"] for f in stats["fields"])
    assert "*Drafts*\n3" in fields and "*Auto-sent*\n0%" in fields and "*SLA breaches*\n0" in fields
    assert "*Pending now*\n3 (1 past SLA)" in fields
    assert ActionId.HOME_OPEN_REVIEW in {
        e["action_id"] for e in block(view, BlockId.HOME_ACTIONS)["elements"]
    }
    # Not an approver anywhere: the whole queue, read-only.
    assert set(line_ids(view, BlockId.HOME_WAITING)) == {waiting, claimed}
    assert line_ids(view, BlockId.HOME_BREACHED) == [breached]
    assert not [i for i in ids(view) if i.startswith(BlockId.HOME_LINE_ACTIONS)]
    assert "not an approver" in block(view, f"{BlockId.HOME_HEADER}:overview")["elements"][0]["text"]


# ---------------------------------------------------------------- clicks from Home


def assert_card_decided(loop: Loop, review: Review) -> None:
    """The card in the channel lost its buttons and its thread says who approved it."""
    assert review.slack_channel and review.slack_ts
    card = loop.standin.message(review.slack_channel, review.slack_ts)
    card_actions = {e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert not card_actions & DECISION_BUTTONS
    assert "Approved" in loop.standin.thread(review.slack_channel, review.slack_ts)[0]["text"]


def test_approve_from_home_decides_once_updates_the_card_and_republishes_home(home_loop: Loop) -> None:
    loop = home_loop
    _, waiting, _ = three_reviews(loop)
    view = open_home(loop, ALEX)
    payload, resp = home_click(loop, view, BlockId.HOME_WAITING, waiting, ActionId.APPROVE, ALEX)
    assert resp.status_code == 200
    review = loop.decided(waiting)
    assert (review.status, review.decided_by) == (ReviewStatus.APPROVED, ALEX)

    again = loop.sim.post_action(payload)  # Slack redelivers the same click
    assert again.status_code == 200
    loop.settled()
    assert loop.decisions(waiting) == 1
    assert len(loop.audits("decision", waiting)) == 1
    assert_card_decided(loop, review)

    home = wait_for(lambda: gone_from_home(loop, ALEX, waiting), 10, "Home published again without it")
    valid(home)
    assert not dms(loop, ALEX) and not loop.standin.ephemerals(ALEX), "nothing to tell: it worked"


def test_edit_from_home_opens_the_modal_and_its_submission_decides(home_loop: Loop) -> None:
    loop = home_loop
    _, waiting, _ = three_reviews(loop)
    view = open_home(loop, ALEX)
    trigger = loop.standin.issue_trigger_id()
    _, resp = home_click(loop, view, BlockId.HOME_WAITING, waiting, ActionId.EDIT, ALEX, trigger_id=trigger)
    assert resp.status_code == 200
    modal = wait_for(lambda: [v for v in loop.standin.views() if v["type"] == "modal"], 5, "the edit modal")[
        -1
    ]
    field = f"{BlockId.EDIT_TEXT}:0"
    final = "Hi Ann, your order ships Thursday."
    ok = loop.submit(modal, {field: {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": final}}}, ALEX)
    assert ok.status_code == 200
    review = loop.decided(waiting)
    assert (review.decision, review.final_text) == (DecisionKind.EDIT, final)
    wait_for(lambda: gone_from_home(loop, ALEX, waiting), 10, "Home published again without it")


def test_a_forged_decision_from_home_is_refused_by_dm(home_loop: Loop) -> None:
    loop = home_loop
    _, waiting, _ = three_reviews(loop)
    view = open_home(loop, MANAGER)  # no buttons for the manager: forge one
    forged = home_action_payload(
        view=view,
        action_id=ActionId.APPROVE,
        user_id=MANAGER,
        value=ReviewRef(review_id=waiting).model_dump_json(),
        block_id=f"{BlockId.HOME_LINE}:{BlockId.HOME_WAITING}:{waiting}",
    )
    assert loop.sim.post_action(forged).status_code == 200
    wait_for(lambda: loop.audits("click_refused", waiting), 10, "the refusal")
    loop.settled()
    assert loop.review(waiting).status == ReviewStatus.PENDING and loop.decisions(waiting) == 0
    told = wait_for(lambda: dms(loop, MANAGER), 10, "the DM")
    assert "Only approvers" in told[-1]["text"]


def test_the_manager_gets_the_oversight_review_by_dm_from_home(home_loop: Loop) -> None:
    loop = home_loop
    three_reviews(loop)
    view = open_home(loop, MANAGER)
    payload = home_action_payload(view=view, action_id=ActionId.HOME_OPEN_REVIEW, user_id=MANAGER)
    assert loop.sim.post_action(payload).status_code == 200
    assert loop.sim.post_action(payload).status_code == 200  # redelivered: one DM
    loop.settled()
    sent = wait_for(lambda: dms(loop, MANAGER), 10, "the review DM")
    assert len(sent) == 1 and sent[0]["blocks"]
    agent = open_home(loop, ALEX)
    assert ActionId.HOME_OPEN_REVIEW not in {
        e["action_id"] for e in block(agent, BlockId.HOME_ACTIONS)["elements"]
    }
    refused = home_action_payload(
        view=agent,
        action_id=ActionId.HOME_OPEN_REVIEW,
        user_id=ALEX,
        value="review",
        block_id=BlockId.HOME_ACTIONS,
    )
    assert loop.sim.post_action(refused).status_code == 200
    loop.settled()
    told = wait_for(lambda: [m for m in dms(loop, ALEX) if "for managers" in m["text"]], 10, "the refusal DM")
    assert told


# ---------------------------------------------------------------- events, retries and bursts


def test_a_retried_open_publishes_once_and_the_messages_tab_publishes_nothing(home_loop: Loop) -> None:
    loop = home_loop
    three_reviews(loop)
    body = event_callback(app_home_opened(ALEX))
    assert loop.sim.post_event(body).status_code == 200
    settled_home(loop, ALEX)
    assert loop.sim.post_event(body, retry_num=1).status_code == 200
    assert loop.sim.post_event(body, retry_num=2).status_code == 200
    settled_home(loop, ALEX)
    assert len(loop.standin.calls("views.publish")) == 1

    # A new open with nothing changed: the same view is not sent again.
    open_home(loop, ALEX)
    assert len(loop.standin.calls("views.publish")) == 1

    assert loop.sim.post_event(event_callback(app_home_opened(SUPERVISOR, tab="messages"))).status_code == 200
    time.sleep(0.5)  # the event is acked first, handled right after
    assert home_publisher(loop.runtime).idle() and loop.standin.home(SUPERVISOR) is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_burst_of_opens_publishes_every_home_within_slacks_limit(home_loop: Loop) -> None:
    loop = home_loop
    three_reviews(loop)
    users = [f"U0BURST{i:03d}" for i in range(24)]
    for user in users:
        loop.sim.post_event(event_callback(app_home_opened(user)))
        loop.sim.post_event(event_callback(app_home_opened(user)))  # each opens twice
    wait_for(
        lambda: home_publisher(loop.runtime).idle() and len(loop.standin.homes()) == len(users),
        40,
        "every Home",
    )
    calls = loop.standin.calls("views.publish")
    assert [c["status"] for c in calls].count(429) == 0, "paced below Tier 4"
    assert len(calls) == len(users), "one publish per user, however often they opened it"


def test_claim_from_home_moves_the_line_to_my_claims_once(home_loop: Loop) -> None:
    loop = home_loop
    _, waiting, _ = three_reviews(loop)
    view = open_home(loop, ALEX)
    payload, resp = home_click(loop, view, BlockId.HOME_WAITING, waiting, ActionId.CLAIM, ALEX)
    assert resp.status_code == 200
    wait_for(lambda: loop.review(waiting).claimed_by == ALEX, 10, "the claim")
    assert loop.sim.post_action(payload).status_code == 200  # redelivered
    home = wait_for(
        lambda: (h := loop.standin.home(ALEX)) and waiting in line_ids(h, BlockId.HOME_MY_CLAIMS) and h,
        10,
        "the claim on Home",
    )
    valid(home)
    assert waiting not in line_ids(home, BlockId.HOME_WAITING)
    assert buttons(home, BlockId.HOME_MY_CLAIMS, waiting) == {ActionId.UNCLAIM, *DECISION_BUTTONS}
    loop.settled()
    assert len(loop.audits("claim", waiting)) == 1
    assert loop.review(waiting).status == ReviewStatus.PENDING, "claiming decides nothing"


def test_refresh_publishes_what_arrived_since(home_loop: Loop) -> None:
    loop = home_loop
    three_reviews(loop)
    view = open_home(loop, ALEX)
    newer = loop.post_draft()
    loop.card(newer)
    payload = home_action_payload(view=view, action_id=ActionId.HOME_REFRESH, user_id=ALEX)
    assert loop.sim.post_action(payload).status_code == 200
    home = wait_for(
        lambda: (h := loop.standin.home(ALEX)) and newer in line_ids(h, BlockId.HOME_WAITING) and h,
        10,
        "the new review on Home",
    )
    assert valid(home)["hash"] != view["hash"]


def test_customer_text_on_a_home_line_cannot_ping_or_fake_a_link() -> None:
    now = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
    line = HomeLine(
        review_id="r1",
        ticket_id="<!channel>",
        interaction_type="refund",
        tier="standard",
        route="review",
        customer_tier="<https://evil.example|vip>",
        account_value=12.5,
        created_at=now - timedelta(minutes=3),
        sla_warn_at=None,
        sla_due_at=None,
        channel="C0CARDS001",
        ts="1.2",
        claimed_by=None,
        ticket_url=None,
        actions=(ActionId.APPROVE,),
    )
    data = HomeData(
        user_id=ALEX, now=now, my_claims=[], waiting=[line], breached=[], pending_total=1, breached_total=0
    )
    view = home_view(data).to_dict()
    text = block(view, f"{BlockId.HOME_LINE}:{BlockId.HOME_WAITING}:r1")["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example" not in text and "no SLA" in text and "card in <#C0CARDS001>" in text
    assert valid({"type": "home", **view})["blocks"][0]["block_id"] == BlockId.HOME_HEADER


def test_a_review_someone_else_claimed_shows_who_and_offers_no_claim(home_loop: Loop) -> None:
    loop = home_loop
    _, _, claimed = three_reviews(loop)  # claimed by Alex
    view = valid(open_home(loop, SUPERVISOR))
    assert claimed in line_ids(view, BlockId.HOME_WAITING)
    text = block(view, f"{BlockId.HOME_LINE}:{BlockId.HOME_WAITING}:{claimed}")["text"]["text"]
    assert f"claimed by <@{ALEX}>" in text
    assert buttons(view, BlockId.HOME_WAITING, claimed) == DECISION_BUTTONS, (
        "claiming does not block deciding"
    )


def test_while_slack_will_not_say_who_is_in_a_group_home_says_so_and_catches_up(
    make_settings: Callable[..., Any],
    slack_standin: SlackStandin,
    start_service: Callable[..., Service],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    loop = start_home_loop(make_settings, slack_standin, start_service, sqlite_url, tmp_path)  # group unknown
    _, waiting, _ = three_reviews(loop)
    view = valid(open_home(loop, ALEX))
    note = " ".join(e["text"] for i in ids(view) if ":note:" in i for e in block(view, i)["elements"])
    assert "did not say" in note and "not an approver" not in str(view)
    assert not [i for i in ids(view) if i.startswith(BlockId.HOME_LINE_ACTIONS)], "fail closed: no buttons"

    slack_standin.add_usergroup(APPROVERS, [ALEX])  # Slack answers again
    payload = home_action_payload(view=view, action_id=ActionId.HOME_REFRESH, user_id=ALEX)
    assert loop.sim.post_action(payload).status_code == 200
    home = wait_for(
        lambda: (h := loop.standin.home(ALEX)) and buttons(h, BlockId.HOME_WAITING, waiting) and h,
        10,
        "the buttons",
    )
    assert buttons(home, BlockId.HOME_WAITING, waiting) == {ActionId.CLAIM, *DECISION_BUTTONS}
