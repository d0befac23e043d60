"""Calibration sessions end to end: decisions made through the real API and signed clicks, then
`/hitl calibrate` as a signed slash command, votes as signed clicks on the cards the Slack stand-in holds,
and the report's kappa and agreement against numbers worked out by hand below."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.models.blocks import Block
from sqlalchemy import select
from sqlmodel import col

from bot.app.settings import BUNDLED_POLICY
from bot.reporting.oversight.review import build_review
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_sim import block_action_payload, slash_command_form
from sandbox.slack_standin import SlackStandin
from storage.db import make_engine, session_scope
from storage.models import AuditEvent, CalibrationSession, CalibrationVote
from tests.conftest import BOT_TOKEN, Service, wait_for
from tests.reporting.factory import Store
from tests.slack import conftest as slack_fixtures
from tests.slack.conftest import Loop

REVIEWERS = "S0REVIEWERS"
ANA, BEN, CHO = "U0ANA00001", "U0BEN00001", "U0CHO00001"  # approvers: may decide, so may vote
SUPERVISOR = "U0SUPER001"  # runs the session (a tier supervisor, not a manager)
MANAGER = "U0MANAGER1"
OUTSIDER = "U0OUTSIDE1"  # in the workspace, neither approver nor manager
ROOM = "C0CALIBRATE"
make_loop = slack_fixtures.make_loop  # the review loop's fixture


def _policy(tmp_path: Path) -> Path:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    data["managers"] = {"usergroups": [], "users": [MANAGER]}
    for tier in data["tiers"].values():
        tier["approvers"] = {"usergroups": [REVIEWERS], "users": []}
        tier["supervisors"] = {"usergroups": [], "users": [SUPERVISOR]}
    data["qa"] = {**data["qa"], "sample_rate": 1.0, "human_sample_rate": 0.0}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def loop(make_loop: Callable[..., Loop], tmp_path: Path, slack_standin: Any) -> Loop:
    slack_standin.add_usergroup(REVIEWERS, [ANA, BEN, CHO])
    return make_loop(HITL_POLICY_FILE=str(_policy(tmp_path)))


@pytest.fixture
def db_loop(make_loop: Callable[..., Loop], tmp_path: Path, slack_standin: Any, db_url: str) -> Loop:
    """The loop on SQLite and on PostgreSQL."""
    slack_standin.add_usergroup(REVIEWERS, [ANA, BEN, CHO])
    return make_loop(HITL_POLICY_FILE=str(_policy(tmp_path)), HITL_DATABASE_URL=db_url)


# ---------------------------------------------------------------- steps


def command(loop: Loop, text: str, user: str = SUPERVISOR, channel: str = ROOM) -> Any:
    resp = loop.sim.post_command(slash_command_form(text=text, user_id=user, channel_id=channel))
    assert resp.status_code == 200, resp.text
    return resp


def ephemeral(loop: Loop, user: str, contains: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: next((e for e in loop.standin.ephemerals(user) if contains in e["text"]), None),
        what=f"an ephemeral to {user} with {contains!r}",
    )
    return found


def decide_history(loop: Loop) -> list[str]:
    """R1 approved, R2 rejected (hallucination), R3 auto-sent and rated Good in QA, R4 approved; in that order."""
    r1 = loop.post_draft(confidence=0.75)
    loop.click(loop.card(r1), ActionId.APPROVE, ANA, "ana")
    loop.decided(r1)
    r2 = loop.post_draft(confidence=0.75)
    loop.click(loop.card(r2), ActionId.REJECT, ANA, "ana", modal=True)
    view = wait_for(lambda: loop.standin.views(), 5, "the reject modal")[-1]
    values = {
        BlockId.REJECT_CATEGORY: {
            ActionId.REJECT_CATEGORY: {"type": "static_select", "selected_option": {"value": "hallucination"}}
        }
    }
    assert loop.submit(view, values, user_id=ANA).status_code == 200
    loop.decided(r2)
    r3 = loop.post_draft(confidence=0.99)
    qa = wait_for(lambda: loop.review(r3).extra.get("qa_card"), what="the QA card")
    loop.click(loop.standin.message(qa["channel"], qa["ts"]), ActionId.QA_GOOD, ANA, "ana")
    wait_for(lambda: loop.count(AuditEvent, col(AuditEvent.action) == "qa_rated"), what="the QA rating")
    r4 = loop.post_draft(confidence=0.75)
    loop.click(loop.card(r4), ActionId.APPROVE, ANA, "ana")
    loop.decided(r4)
    return [r1, r2, r3, r4]


def cards(loop: Loop, n: int) -> list[dict[str, Any]]:
    """The session's cards in the room, by position (the intro left out)."""

    def posted() -> list[dict[str, Any]] | None:
        found = [m for m in loop.standin.messages(ROOM) if " of " in _header(m)]
        return found if len(found) >= n else None

    return sorted(wait_for(posted, what=f"{n} calibration cards"), key=_header)


def _header(message: dict[str, Any]) -> str:
    blocks = message.get("blocks") or []
    return str(blocks[0]["text"]["text"]) if blocks and blocks[0]["type"] == "header" else ""


def fresh(loop: Loop, card: dict[str, Any]) -> dict[str, Any]:
    return loop.standin.message(card["channel"], card["ts"])


def good(loop: Loop, card: dict[str, Any], user: str) -> Any:
    return loop.click(fresh(loop, card), ActionId.CALIBRATE_GOOD, user, user.lower())


def defect(loop: Loop, card: dict[str, Any], user: str, category: str) -> Any:
    message = fresh(loop, card)
    block = next(b for b in message["blocks"] if b.get("block_id") == BlockId.CALIBRATION_ACTIONS)
    menu = next(e for e in block["elements"] if e["action_id"] == ActionId.CALIBRATE_DEFECT)
    option = next(o for o in menu["options"] if json.loads(o["value"])["category"] == category)
    payload = block_action_payload(
        message=message,
        channel=message["channel"],
        action_id=ActionId.CALIBRATE_DEFECT,
        user_id=user,
        selected_option=option,
        block_id=BlockId.CALIBRATION_ACTIONS,
    )
    return loop.sim.post_action(payload)


def votes(loop: Loop) -> list[tuple[str, str, str, str | None, int]]:
    with session_scope(loop.runtime.engine, readonly=True) as session:
        rows = session.execute(select(CalibrationVote).order_by(col(CalibrationVote.id))).scalars().all()
        return [(r.review_id, r.voter, r.verdict, r.category, r.changes) for r in rows]


def valid(message: dict[str, Any]) -> str:
    """The message's blocks, each parsed and validated by slack_sdk's models; their text for assertions."""
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
    return json.dumps(message["blocks"], ensure_ascii=False)


# ---------------------------------------------------------------- the session


def test_a_session_hides_the_decisions_counts_votes_once_and_reports_the_hand_computed_kappa(
    db_loop: Loop,
) -> None:
    loop = db_loop
    history = decide_history(loop)
    command(loop, "calibrate order_status 4")
    started = ephemeral(loop, SUPERVISOR, "Calibration session *#1* started")
    assert "4 past reviews" in started["text"]
    shown = cards(loop, 4)
    order = check_cards_hide_the_decision(shown, history)
    cast_the_votes(loop, shown)
    check_each_vote_counted_once(loop, shown, order)
    command(loop, "calibrate report")
    ephemeral(loop, SUPERVISOR, "Calibration session *#1* is closed (12 votes)")
    check_the_report(loop)
    check_closed_cards(loop, shown)
    check_the_next_review(loop)


def check_cards_hide_the_decision(shown: list[dict[str, Any]], history: list[str]) -> list[str]:
    """Newest decision first: R4 (approved), R3 (QA Good), R2 (rejected), R1 (approved); nothing tells which."""
    names = {review_id: f"R{i}" for i, review_id in enumerate(history, 1)}
    order = [json.loads(_value(c))["review_id"] for c in shown]
    assert [names[r] for r in order] == ["R4", "R3", "R2", "R1"]
    for card in shown:
        text = valid(card)
        assert "Where is my order" in text and "AI draft" in text and "0 votes so far" in text
        leaks = [
            word for word in ("approved", "rejected", "QA Good", "Original decision", ANA) if word in text
        ]
        assert leaks == []
    return order


# Votes on p1..p4: Ana G G D(hallucination) G; Ben G D(tone) D(hallucination) G; Cho G G D(other) D(other).
PLAN = [
    (0, ANA, None), (1, ANA, None), (2, ANA, "hallucination"), (3, ANA, None),
    (0, BEN, None), (1, BEN, "tone_mismatch"), (2, BEN, "hallucination"), (3, BEN, None),
    (0, CHO, None), (1, CHO, None), (2, CHO, "other"), (3, CHO, "other"),
]  # fmt: skip


def cast_the_votes(loop: Loop, shown: list[dict[str, Any]]) -> None:
    """Ben first votes Defect on p1 and changes it to Good; then the plan; then a redelivery and an outsider."""
    defect(loop, shown[0], BEN, "other")
    wait_for(lambda: votes(loop), what="Ben's first vote")
    for position, user, category in PLAN:
        card = shown[position]
        clicked = good(loop, card, user) if category is None else defect(loop, card, user, category)
        assert clicked.status_code == 200
        wait_for(lambda u=user, c=card: _voted(loop, u, c), what=f"{user}'s vote")
    # A redelivered click (the same payload twice) counts once.
    again = block_action_payload(
        message=fresh(loop, shown[3]),
        channel=ROOM,
        action_id=ActionId.CALIBRATE_GOOD,
        user_id=ANA,
        user_name="ana",
    )
    loop.sim.post_action(again)
    loop.sim.post_action(again)
    # An outsider's click is refused, and counts nothing.
    good(loop, shown[0], OUTSIDER)
    ephemeral(loop, OUTSIDER, "Only people who may decide")
    loop.settled()


def check_each_vote_counted_once(loop: Loop, shown: list[dict[str, Any]], order: list[str]) -> None:
    rows = votes(loop)
    assert len(rows) == 12 and not [r for r in rows if r[1] == OUTSIDER]
    assert [r[2:] for r in rows if (r[0], r[1]) == (order[0], BEN)] == [("good", None, 1)]  # replaced, once
    assert [r[2:] for r in rows if (r[0], r[1]) == (order[3], ANA)] == [("good", None, 0)]
    assert loop.count(AuditEvent, col(AuditEvent.action) == "calibration_vote_changed") == 1  # Ben's
    assert loop.count(AuditEvent, col(AuditEvent.action) == "calibration_vote_repeated") == 1  # Ana's, once
    # Cards show how many voted, never who or what, while the session is open.
    p1 = valid(fresh(loop, shown[0]))
    assert "3 votes so far" in p1 and BEN not in p1
    assert "Defect: " not in p1.replace("Defect: what kind?", "")


def check_the_report(loop: Loop) -> None:
    report = wait_for(
        lambda: next(
            (m for m in loop.standin.messages(ROOM) if _header(m) == "Calibration #1 · report"), None
        ),
        what="the report",
    )
    text = valid(report)
    # Fleiss' kappa, 3 reviewers x 4 reviews (counts good/defect per review):
    #   p1 G3 -> P = (9-3)/6 = 1;  p2 G2 D1 -> (4+1-3)/6 = 1/3;  p3 D3 -> 1;  p4 G2 D1 -> 1/3
    #   P̄ = (1 + 1/3 + 1 + 1/3) / 4 = 2/3 = 67%
    #   good 7 of 12, defect 5 of 12 -> P_e = (49 + 25) / 144 = 0.5139 = 51%
    #   κ = (96/144 - 74/144) / (70/144) = 22/70 = 0.314 -> "fair" (Landis & Koch: 0.21-0.40)
    assert (
        "Fleiss' kappa 0.31 (fair; 3 reviewers, 4 reviews rated by 2+; observed 67%, by chance 51%)" in text
    )
    # With the original decisions (R4 good, R3 good, R2 defect, R1 good):
    #   Ana 4 of 4; Ben 3 of 4 (Defect on R3); Cho 3 of 4 (Defect on R1); all 10 of 12.
    #   Wilson 95% for 4/4: centre (1 + 1.9208/4)/(1 + 3.8415/4) = .7551, half .2449 -> 51%-100%
    #   for 3/4: centre .6275, half .3269 -> 30%-95%; for 10/12: centre .7525, half .2005 -> 55%-95%
    assert "83% (10 of 12; 95% Wilson 55%–95%) of the votes" in text
    assert f"<@{ANA}>: 100% (4 of 4; 95% Wilson 51%–100%)" in text
    assert f"<@{BEN}>: 75% (3 of 4; 95% Wilson 30%–95%)" in text
    assert f"<@{CHO}>: 75% (3 of 4; 95% Wilson 30%–95%)" in text
    assert "original: rejected (Hallucination) → Defect" in text and "original: QA Good → Good" in text


def check_closed_cards(loop: Loop, shown: list[dict[str, Any]]) -> None:
    """Closed cards show the original decision and who voted what, without buttons; a late vote is refused."""
    loop.settled()
    p3 = valid(fresh(loop, shown[2]))
    assert "rejected (Hallucination) → Defect" in p3 and f"<@{CHO}> (Other)" in p3
    assert ActionId.CALIBRATE_GOOD not in p3
    loop.click(shown[0], ActionId.CALIBRATE_GOOD, ANA, "ana")  # the old message still had buttons
    ephemeral(loop, ANA, "is closed; votes are no longer taken")


def check_the_next_review(loop: Loop) -> None:
    with session_scope(loop.runtime.engine, readonly=True) as session:
        review = build_review(
            session=session,
            policy=loop.runtime.policy,
            now=loop.runtime.clock.now(),
            period=timedelta(days=30),
        )
    section = next(s for s in review.sections if s.title == "Calibration")
    assert "Fleiss' kappa 0.31 (fair" in section.per_type["order_status"][0]
    assert "with the original decisions 83% (10 of 12;" in section.lines[0]
    # ... and so does the review a manager asks Slack for.
    command(loop, "review 30d", user=MANAGER)
    shown = ephemeral(loop, MANAGER, "review")
    assert "*Calibration*" in str(shown["blocks"]) and "calibration #1 (order_status, closed" in str(
        shown["blocks"]
    )


def _value(card: dict[str, Any]) -> str:
    block = next(b for b in card["blocks"] if b.get("block_id") == BlockId.CALIBRATION_ACTIONS)
    return str(block["elements"][0]["value"])


def _voted(loop: Loop, user: str, card: dict[str, Any]) -> bool:
    review_id = json.loads(_value(card))["review_id"]
    with session_scope(loop.runtime.engine, readonly=True) as session:
        row = session.execute(
            select(CalibrationVote).where(
                col(CalibrationVote.voter) == user, col(CalibrationVote.review_id) == review_id
            )
        ).first()
    return row is not None


# ---------------------------------------------------------------- who may, and bad words


def test_only_managers_and_supervisors_run_sessions(loop: Loop) -> None:
    command(loop, "calibrate", user=ANA)
    refusal = ephemeral(loop, ANA, "`/hitl calibrate` is for managers")
    assert "tier supervisors" in refusal["text"]
    refused = loop.audits("report_refused")
    assert [(a.actor, a.detail["reason"]) for a in refused] == [(ANA, "not_a_manager_or_supervisor")]
    assert loop.count(CalibrationSession) == 0
    command(loop, "calibrate", user=MANAGER)
    ephemeral(loop, MANAGER, "no decided reviews to calibrate on yet")
    assert loop.count(CalibrationSession) == 0


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("calibrate order_status abc", "does not take `abc`"),
        ("calibrate 0", "must be 1 to 25, not 0"),
        ("calibrate order_status 1000", "must be 1 to 25, not 1000"),
        ("calibrate 5 order_status", "does not take `order_status`"),
        ("calibrate report x", "takes a session number"),
    ],
)
def test_bad_words_get_the_usage_at_once(loop: Loop, text: str, says: str) -> None:
    resp = command(loop, text)
    body = resp.json()
    assert says in body["text"] and "`/hitl calibrate [type] [n]`" in body["text"]


def test_an_unknown_type_or_session_is_named_with_what_exists(loop: Loop) -> None:
    command(loop, "calibrate nosuchtype 3")
    said = ephemeral(loop, SUPERVISOR, "`nosuchtype` is not an interaction type")
    assert "`order_status`" in said["text"]
    command(loop, "calibrate report 42")
    ephemeral(loop, SUPERVISOR, "There is no calibration session #42")


# ---------------------------------------------------------------- where the app may not post


@pytest.fixture
def ids_standin() -> Iterator[SlackStandin]:
    """A stand-in that, like Slack, knows channels by id: an id it does not know is `channel_not_found`."""
    standin = SlackStandin(token=BOT_TOKEN, channel_ids=True).start()
    standin.add_usergroup(REVIEWERS, [ANA, BEN, CHO])
    yield standin
    standin.stop()


def _two_decisions(url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        store = Store(session, now=datetime.now(UTC))
        store.decided("order_status", "approve")
        store.decided("order_status", "reject", defect="hallucination")
    engine.dispose()


def _in_dm(standin: SlackStandin, channel: str, n: int) -> list[dict[str, Any]] | None:
    found = [m for m in standin.messages(channel) if " of " in _header(m)]
    return found if len(found) == n else None


def test_cards_go_to_the_runners_dm_when_the_app_cannot_post_in_the_channel(
    ids_standin: SlackStandin,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    _two_decisions(sqlite_url)
    settings = make_settings(
        SLACK_API_URL=ids_standin.base_url,
        HITL_DATABASE_URL=sqlite_url,
        HITL_POLICY_FILE=str(_policy(tmp_path)),
    )
    loop = Loop(start_service(settings), ids_standin)
    try:
        # (Slack shows the command's answer through its response_url there; the stand-in has none to check.)
        command(loop, "calibrate order_status 2", channel="C0NOTAMEMBER")
        intro = wait_for(
            lambda: next((m for m in ids_standin.messages() if _header(m) == "Calibration #1"), None),
            what="the intro",
        )
        opened = [c for c in ids_standin.calls("conversations.open") if c.get("status") == 200]
        assert intro["channel"].startswith("D") and len(opened) == 1
        assert "could not post in <#C0NOTAMEMBER> (channel_not_found)" in valid(intro)
        shown = wait_for(lambda: _in_dm(ids_standin, intro["channel"], 2), what="2 cards in the DM")
        assert good(loop, shown[0], SUPERVISOR).status_code == 200
        ephemeral(loop, SUPERVISOR, "Your vote on calibration #1 card: *Good*")
    finally:
        loop.sim.close()


def test_a_card_post_whose_answer_was_lost_is_found_in_the_channel_not_posted_twice(
    make_loop: Callable[..., Loop], slack_standin: SlackStandin, sqlite_url: str, tmp_path: Path
) -> None:
    _two_decisions(sqlite_url)
    slack_standin.add_usergroup(REVIEWERS, [ANA, BEN, CHO])
    loop = make_loop(
        HITL_POLICY_FILE=str(_policy(tmp_path)), HITL_OUTBOX_WORKER="false", HITL_SLACK_TIMEOUT_SECONDS=1
    )
    worker = loop.runtime.services.outbox
    command(loop, "calibrate order_status 2")
    wait_for(lambda: len(loop.outbox("slack_calibration")) == 3, what="the intro and two cards queued")
    worker.run_once()  # the intro
    slack_standin.drop_responses("chat.postMessage", times=1, hang=3)
    worker.run_once()  # the first card: Slack stores it, its answer never comes
    assert [c for c in slack_standin.calls("chat.postMessage") if c.get("answer_lost")]
    shown = wait_for(lambda: worker.drain(5) and _in_room(slack_standin, 2), timeout=30, what="both cards")
    assert len(slack_standin.calls("chat.postMessage")) == 3, "the lost card was adopted, not posted again"
    assert slack_standin.calls("conversations.history")
    good(loop, shown[0], ANA)  # the adopted card is the session's own: its buttons count
    wait_for(lambda: votes(loop), what="the vote on the adopted card")


def _in_room(standin: SlackStandin, n: int) -> list[dict[str, Any]] | None:
    found = sorted((m for m in standin.messages(ROOM) if " of " in _header(m)), key=_header)
    return found if len(found) == n else None
