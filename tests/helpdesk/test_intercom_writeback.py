"""Decisions reach Intercom over real HTTP (the local REST API stand-in) as a reviewer would expect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.app.settings import MissingSetting, Settings
from bot.helpdesk.base import Rejected
from bot.helpdesk.delivery import make_helpdesk
from bot.helpdesk.intercom import IntercomHelpdesk
from sandbox.intercom_standin import TOKEN_ADMIN_ID, IntercomStandin
from storage.models import DecisionKind, OutboxStatus
from tests.conftest import FakeClock
from tests.helpdesk.conftest import AGENT_EMAIL, OPS, REVIEW_CHANNEL, Desk

IC_TOKEN = "ic-test-token"
AGENT_IC_ID = "4401"


@pytest.fixture
def intercom() -> Iterator[IntercomStandin]:
    with IntercomStandin(access_token=IC_TOKEN) as standin:
        standin.add_admin(AGENT_IC_ID, AGENT_EMAIL, "Ana Agent")
        yield standin


@pytest.fixture
def ic_desk(
    make_desk: Callable[..., Desk], intercom: IntercomStandin
) -> Callable[..., tuple[Desk, IntercomStandin]]:
    def make(db_url: str, clock: Any = None) -> tuple[Desk, IntercomStandin]:
        desk = make_desk(
            db_url,
            clock=clock,
            HITL_HELPDESK="intercom",
            INTERCOM_ACCESS_TOKEN=IC_TOKEN,
            INTERCOM_API_URL=intercom.base_url,
        )
        return desk, intercom

    return make


def thread_texts(desk: Desk) -> list[str]:
    return [m["text"] for m in desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]


def text_of(part: dict[str, Any]) -> str:
    from bot.helpdesk.base import html_to_text

    return html_to_text(part["body"] or "")


def test_approve_replies_as_the_deciding_admin_with_the_pinned_api_version(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], db_url: str
) -> None:
    desk, ic = ic_desk(db_url)
    ic.add_conversation("501")
    review_id = desk.decide(501, DecisionKind.APPROVE, draft="Hi Maya,\n\nOrder <NW-1> arrives Thursday.")
    desk.deliver()

    [reply] = ic.admin_replies("501")
    assert reply["author"]["id"] == AGENT_IC_ID and "&lt;NW-1&gt;" in reply["body"]
    assert text_of(reply) == "Hi Maya,\n\nOrder <NW-1> arrives Thursday."
    sent = ic.requests("POST", "/conversations/501/reply")[0]
    assert sent["json"]["message_type"] == "comment" and sent["json"]["type"] == "admin"
    assert all(r["headers"]["intercom-version"] == "2.11" for r in ic.requests())
    assert ic.conversation("501")["state"] == "open"  # pending has no Intercom state: left open
    assert desk.review(review_id).helpdesk_state == "sent"


def test_take_over_adds_the_draft_as_a_note_and_assigns_the_admin(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    desk, ic = ic_desk(sqlite_url)
    ic.add_conversation("502")
    review_id = desk.decide(502, DecisionKind.TAKE_OVER, draft="A draft the human may reuse.")
    desk.deliver()

    assert ic.admin_replies("502") == []
    [note] = ic.parts("502", "note")
    assert "A draft the human may reuse." in text_of(note) and "Taken over in Slack by Ana Agent" in text_of(
        note
    )
    [assignment] = ic.parts("502", "assignment")
    assert assignment["assigned_to"]["id"] == AGENT_IC_ID
    assert ic.conversation("502")["admin_assignee_id"] == int(AGENT_IC_ID)
    assert desk.review(review_id).helpdesk_state == "assigned"


def test_reject_adds_a_note_with_the_reason(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    desk, ic = ic_desk(sqlite_url)
    ic.add_conversation("503")
    desk.decide(503, DecisionKind.REJECT, reason="tone_mismatch", comment="Too curt.")
    desk.deliver()
    assert ic.admin_replies("503") == [] and ic.parts("503", "assignment") == []
    [note] = ic.parts("503", "note")
    assert "Reason: tone mismatch — Too curt." in text_of(note)


def test_an_unknown_admin_replies_as_the_tokens_admin_and_a_note_says_who_approved(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    desk, ic = ic_desk(sqlite_url)
    ic.add_conversation("504")
    desk.decide(504, DecisionKind.APPROVE, actor_id="U0NOZD", actor_name="Ned Nobody")
    desk.deliver()
    [reply] = ic.admin_replies("504")
    assert reply["author"]["id"] == TOKEN_ADMIN_ID
    [note] = ic.parts("504", "note")
    assert "no Intercom agent has the email ned@elsewhere.example" in text_of(note)


def test_a_customer_message_after_the_draft_holds_the_reply_and_tells_the_reviewer(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], db_url: str
) -> None:
    desk, ic = ic_desk(db_url)
    stamp = str(ic.add_conversation("505")["updated_at"])
    review_id = desk.decide(505, DecisionKind.APPROVE, ticket_updated_at=stamp)
    ic.user_reply("505", "Never mind, it arrived!")
    desk.deliver()

    assert ic.admin_replies("505") == [] and ic.requests("POST") == []
    assert desk.review(review_id).helpdesk_state == "conflict"
    [told] = thread_texts(desk)
    assert "changed in Intercom" in told and "*not* sent" in told and "/conversation/505" in told


def test_a_missing_conversation_is_reported_to_the_reviewer_and_not_retried(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    desk, ic = ic_desk(sqlite_url)
    review_id = desk.decide(599, DecisionKind.APPROVE)
    desk.deliver()
    write = desk.rows("helpdesk_write")[0]
    assert write.status == OutboxStatus.DEAD and "Intercom 404" in (write.last_error or "")
    assert desk.review(review_id).helpdesk_state == "rejected"
    assert len(ic.requests("GET", "/conversations/599")) == 1
    [told] = thread_texts(desk)
    assert "could not be written to the helpdesk" in told and "Resource Not Found" in told
    assert any("dead-lettered" in m["text"] for m in desk.slack.messages(OPS))


def test_a_429_waits_until_x_ratelimit_reset_then_replies_once(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, ic = ic_desk(sqlite_url, clock=clock)
    ic.add_conversation("506")
    desk.decide(506)
    ic.clock = lambda: clock.now().timestamp()  # Intercom's reset times on the test's clock
    ic.force_429(2, retry_after=30)  # Intercom says when the window resets, not Retry-After

    waits: list[float] = []
    for _ in range(10):
        desk.worker.run_once()
        [row] = desk.rows("helpdesk_write")
        if row.status != OutboxStatus.PENDING:
            break
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        assert desk.worker.run_once(row.next_attempt_at - timedelta(seconds=1)) == 0
        clock.t = row.next_attempt_at

    assert len(waits) == 2 and all(25 <= w <= 31 * 1.25 for w in waits), waits
    assert len(ic.admin_replies("506")) == 1


def test_remaining_zero_stops_requests_until_the_reset_without_hitting_429(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, ic = ic_desk(sqlite_url, clock=clock)
    ic.add_conversation("507")
    desk.decide(507)
    ic.clock = lambda: clock.now().timestamp()
    ic.rate_limit(2, window_seconds=60)  # the second answer says X-RateLimit-Remaining: 0
    desk.worker.run_once()

    [row] = desk.rows("helpdesk_write")
    assert row.status == OutboxStatus.PENDING and "X-RateLimit-Remaining: 0" in (row.last_error or "")
    assert 50 <= (row.next_attempt_at - clock.now()).total_seconds() <= 62 * 1.25
    assert len(ic.requests()) == 2 and all(r["status"] == 200 for r in ic.requests())

    clock.t = row.next_attempt_at  # the window has reset: the reply goes out, once
    desk.deliver()
    assert len(ic.admin_replies("507")) == 1
    assert all(r["status"] == 200 for r in ic.requests())


def test_an_outage_is_retried_and_sends_once_it_is_over(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, ic = ic_desk(sqlite_url, clock=clock)
    ic.add_conversation("508")
    desk.decide(508)
    ic.set_outage(True)
    for _ in range(3):
        desk.worker.run_once()
        clock.advance(minutes=10)
    [row] = desk.rows("helpdesk_write")
    assert row.status == OutboxStatus.PENDING and "Intercom 503" in (row.last_error or "")
    ic.set_outage(False)
    desk.deliver()
    assert len(ic.admin_replies("508")) == 1


@pytest.mark.parametrize("drop", [True, False], ids=["connection-cut", "500-after-write"])
def test_a_lost_answer_after_the_reply_is_found_not_sent_twice(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], db_url: str, drop: bool
) -> None:
    clock = FakeClock()
    desk, ic = ic_desk(db_url, clock=clock)
    ic.add_conversation("509")
    review_id = desk.decide(509)
    ic.fail_after_write(1, drop=drop)
    desk.worker.run_once()
    started = desk.ledger(f"{review_id}:review")
    assert started is not None and started.state == "started"
    clock.advance(minutes=5)
    desk.deliver()
    assert len(ic.admin_replies("509")) == 1 and len(ic.requests("POST", "/reply")) == 1
    ledger = desk.ledger(f"{review_id}:review")
    assert ledger is not None and ledger.state == "done" and ledger.outcome["found_after_unknown_outcome"]


def test_a_take_over_cut_off_after_the_note_assigns_without_a_second_note(
    ic_desk: Callable[..., tuple[Desk, IntercomStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, ic = ic_desk(sqlite_url, clock=clock)
    ic.add_conversation("510")
    desk.decide(510, DecisionKind.TAKE_OVER)
    ic.fail_after_write(1, drop=True)
    desk.worker.run_once()
    clock.advance(minutes=5)
    desk.deliver()
    assert len(ic.parts("510", "note")) == 1 and len(ic.parts("510", "assignment")) == 1


def test_hitl_doctor_checks_the_intercom_token(intercom: IntercomStandin) -> None:
    from bot.app.doctor import check_helpdesk

    def settings(token: str) -> Settings:
        return Settings(  # type: ignore[call-arg]
            _env_file=None,
            HITL_HELPDESK="intercom",
            INTERCOM_ACCESS_TOKEN=token,
            INTERCOM_API_URL=intercom.base_url,
        )

    [ok] = list(check_helpdesk(settings(IC_TOKEN)))
    [bad] = list(check_helpdesk(settings("wrong")))
    assert ok.ok and "Support Bot" in ok.detail
    assert not bad.ok and "INTERCOM_ACCESS_TOKEN" in bad.detail


def test_credentials_check_names_the_admin_or_says_which_setting_is_wrong(intercom: IntercomStandin) -> None:
    good = IntercomHelpdesk(access_token=IC_TOKEN, base_url=intercom.base_url)
    assert "Support Bot" in good.check() and "Northwind" in good.check()
    bad = IntercomHelpdesk(access_token="wrong", base_url=intercom.base_url)
    with pytest.raises(Rejected, match="INTERCOM_ACCESS_TOKEN"):
        bad.check()
    good.close()
    bad.close()


def test_intercom_without_a_token_refuses_to_start() -> None:
    settings = Settings(_env_file=None, HITL_HELPDESK="intercom")  # type: ignore[call-arg]
    with pytest.raises(MissingSetting, match="INTERCOM_ACCESS_TOKEN"):
        make_helpdesk(settings)
