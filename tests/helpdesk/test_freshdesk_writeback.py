"""Decisions reach Freshdesk over real HTTP (the local API v2 stand-in) as a reviewer would expect."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.app.settings import MissingSetting, Settings
from bot.helpdesk.base import Rejected
from bot.helpdesk.delivery import make_helpdesk
from bot.helpdesk.freshdesk import FreshdeskHelpdesk
from sandbox.freshdesk_standin import API_AGENT_ID, FreshdeskStandin
from storage.models import DecisionKind, OutboxStatus
from tests.conftest import FakeClock
from tests.helpdesk.conftest import AGENT_EMAIL, OPS, REVIEW_CHANNEL, Desk

FD_KEY = "fd-test-key"
AGENT_FD_ID = 7301
OPEN, PENDING = 2, 3


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskStandin]:
    with FreshdeskStandin(api_key=FD_KEY) as standin:
        standin.add_agent(AGENT_FD_ID, AGENT_EMAIL, "Ana Agent")
        yield standin


@pytest.fixture
def fd_desk(
    make_desk: Callable[..., Desk], freshdesk: FreshdeskStandin
) -> Callable[..., tuple[Desk, FreshdeskStandin]]:
    def make(db_url: str, clock: Any = None) -> tuple[Desk, FreshdeskStandin]:
        desk = make_desk(
            db_url,
            clock=clock,
            HITL_HELPDESK="freshdesk",
            FRESHDESK_DOMAIN=freshdesk.base_url,
            FRESHDESK_API_KEY=FD_KEY,
        )
        return desk, freshdesk

    return make


def thread_texts(desk: Desk) -> list[str]:
    return [m["text"] for m in desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]


def test_approve_sends_one_escaped_html_reply_by_the_agent_and_sets_pending(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], db_url: str
) -> None:
    desk, fd = fd_desk(db_url)
    fd.add_ticket(301, subject="Order", description="Where is my order?")
    review_id = desk.decide(
        301, DecisionKind.APPROVE, draft="Hi Maya,\n\nOrder <NW-1> & co arrives Thursday."
    )
    desk.deliver()

    replies = fd.public_replies(301)
    assert len(replies) == 1 and replies[0]["user_id"] == AGENT_FD_ID
    assert "&lt;NW-1&gt; &amp; co" in replies[0]["body"]  # escaped: the customer sees the text as written
    assert replies[0]["body_text"] == "Hi Maya,\n\nOrder <NW-1> & co arrives Thursday."
    assert fd.ticket(301)["status"] == PENDING  # policy: status_after_reply = pending
    sent = fd.requests("POST", "/tickets/301/reply")[0]
    assert sent["headers"]["authorization"] == "Basic " + base64.b64encode(f"{FD_KEY}:X".encode()).decode()
    assert desk.review(review_id).helpdesk_state == "sent"


def test_edit_sends_the_reviewers_text(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(302)
    desk.decide(302, DecisionKind.EDIT, draft="AI text", final_text="Hi Maya, the human version.")
    desk.deliver()
    assert [r["body_text"] for r in fd.public_replies(302)] == ["Hi Maya, the human version."]


def test_take_over_sets_the_responder_and_adds_the_draft_as_a_private_note(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(303, status=PENDING)
    review_id = desk.decide(303, DecisionKind.TAKE_OVER, draft="A draft the human may reuse.")
    desk.deliver()

    ticket = fd.ticket(303)
    assert ticket["responder_id"] == AGENT_FD_ID and ticket["status"] == OPEN
    assert fd.public_replies(303) == []
    [note] = fd.notes(303)
    assert note["private"] is True and note["user_id"] == AGENT_FD_ID
    assert (
        "A draft the human may reuse." in note["body_text"]
        and "Taken over in Slack by Ana Agent" in note["body_text"]
    )
    assert fd.requests("GET", "/agents")[0]["query"] == f"email={AGENT_EMAIL.replace('@', '%40')}"
    assert desk.review(review_id).helpdesk_state == "assigned"


def test_reject_adds_a_private_note_with_the_reason_and_leaves_the_status(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(304)
    desk.decide(304, DecisionKind.REJECT, reason="hallucination", comment="There is no order NW-9.")
    desk.deliver()

    assert fd.public_replies(304) == []
    [note] = fd.notes(304)
    assert "Reason: hallucination — There is no order NW-9." in note["body_text"]
    assert fd.ticket(304)["status"] == OPEN and fd.requests("PUT") == []


def test_an_unknown_agent_replies_as_the_api_agent_and_a_note_says_who_approved(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(305)
    desk.decide(305, DecisionKind.APPROVE, actor_id="U0NOZD", actor_name="Ned Nobody")
    desk.deliver()

    [reply] = fd.public_replies(305)
    assert reply["user_id"] == API_AGENT_ID
    [note] = fd.notes(305)
    assert "approved in Slack by Ned Nobody" in note["body_text"]
    assert "no Freshdesk agent has the email ned@elsewhere.example" in note["body_text"]


def test_a_customer_reply_after_the_draft_holds_the_reply_and_tells_the_reviewer(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], db_url: str
) -> None:
    desk, fd = fd_desk(db_url)
    stamp = fd.add_ticket(306)["updated_at"]  # the ticket as the AI saw it
    review_id = desk.decide(306, DecisionKind.APPROVE, ticket_updated_at=stamp)
    fd.customer_reply(306, "Never mind, it just arrived!")
    desk.deliver()

    assert fd.public_replies(306) == [] and fd.requests("POST") == []
    assert desk.review(review_id).helpdesk_state == "conflict"
    [told] = thread_texts(desk)
    assert "changed in Freshdesk" in told and "*not* sent" in told
    assert f"{fd.base_url}/a/tickets/306" in told


def test_a_missing_ticket_is_reported_to_the_reviewer_and_not_retried(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    review_id = desk.decide(399, DecisionKind.APPROVE)  # no such ticket in Freshdesk
    desk.deliver()

    write = desk.rows("helpdesk_write")[0]
    assert write.status == OutboxStatus.DEAD and "Freshdesk 404" in (write.last_error or "")
    assert desk.review(review_id).helpdesk_state == "rejected"
    assert len(fd.requests("GET", "/tickets/399")) == 1  # asked once, never retried
    [told] = thread_texts(desk)
    assert "could not be written to the helpdesk" in told and "the customer has not got the reply" in told
    assert any("dead-lettered" in m["text"] for m in desk.slack.messages(OPS))


def test_a_validation_error_is_reported_to_the_reviewer_and_not_retried(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(307)
    fd.deactivate_agent(AGENT_FD_ID)  # still listed by email, but Freshdesk refuses them as the author
    desk.decide(307, DecisionKind.APPROVE)
    desk.deliver()

    write = desk.rows("helpdesk_write")[0]
    assert write.status == OutboxStatus.DEAD
    assert "Freshdesk 400: Validation failed — user_id: There is no agent" in (write.last_error or "")
    assert len(fd.requests("POST", "/tickets/307/reply")) == 1
    [told] = thread_texts(desk)
    assert "user_id: There is no agent" in told


def test_a_429_waits_retry_after_then_replies_once(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, fd = fd_desk(sqlite_url, clock=clock)
    fd.add_ticket(308)
    desk.decide(308)
    fd.force_429(3, retry_after=30)

    waits: list[float] = []
    for _ in range(10):
        desk.worker.run_once()
        [row] = desk.rows("helpdesk_write")
        if row.status != OutboxStatus.PENDING:
            break
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        assert desk.worker.run_once(row.next_attempt_at - timedelta(seconds=1)) == 0  # nothing before
        clock.t = row.next_attempt_at

    assert len(waits) == 3 and all(30 <= w <= 30 * 1.25 for w in waits), waits
    assert desk.rows("helpdesk_write")[0].status == OutboxStatus.DONE
    assert len(fd.public_replies(308)) == 1


def test_an_outage_is_retried_with_backoff_and_sends_once_it_is_over(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, fd = fd_desk(sqlite_url, clock=clock)
    fd.add_ticket(309)
    review_id = desk.decide(309)
    fd.set_outage(True)
    for _ in range(3):
        desk.worker.run_once()
        clock.advance(minutes=10)
    [row] = desk.rows("helpdesk_write")
    assert (
        row.status == OutboxStatus.PENDING and row.attempts == 3 and "Freshdesk 503" in (row.last_error or "")
    )
    assert fd.public_replies(309) == []

    fd.set_outage(False)
    desk.deliver()
    assert len(fd.public_replies(309)) == 1 and fd.ticket(309)["status"] == PENDING
    assert desk.review(review_id).helpdesk_state == "sent"


@pytest.mark.parametrize("drop", [True, False], ids=["connection-cut", "500-after-write"])
def test_a_lost_answer_after_the_reply_is_found_not_sent_twice_and_the_status_still_set(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], db_url: str, drop: bool
) -> None:
    clock = FakeClock()
    desk, fd = fd_desk(db_url, clock=clock)
    fd.add_ticket(310)
    review_id = desk.decide(310)
    fd.fail_after_write(1, drop=drop)  # Freshdesk stores the reply, the answer never arrives
    desk.worker.run_once()
    started = desk.ledger(f"{review_id}:review")
    assert started is not None and started.state == "started"  # outcome unknown
    assert fd.ticket(310)["status"] == OPEN  # the status call never happened
    clock.advance(minutes=5)
    desk.deliver()

    assert len(fd.public_replies(310)) == 1 and len(fd.requests("POST", "/reply")) == 1
    assert fd.ticket(310)["status"] == PENDING  # completed after the reply was found
    ledger = desk.ledger(f"{review_id}:review")
    assert ledger is not None and ledger.state == "done" and ledger.outcome["found_after_unknown_outcome"]


def test_a_take_over_cut_off_after_the_note_assigns_without_a_second_note(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk, fd = fd_desk(sqlite_url, clock=clock)
    fd.add_ticket(311)
    desk.decide(311, DecisionKind.TAKE_OVER)
    fd.fail_after_write(1, drop=True)
    desk.worker.run_once()
    clock.advance(minutes=5)
    desk.deliver()
    assert len(fd.notes(311)) == 1 and fd.ticket(311)["responder_id"] == AGENT_FD_ID


def test_a_refused_status_keeps_the_reply_and_asks_the_reviewer_to_set_it(
    fd_desk: Callable[..., tuple[Desk, FreshdeskStandin]], sqlite_url: str
) -> None:
    desk, fd = fd_desk(sqlite_url)
    fd.add_ticket(312)
    fd.require_field_for_status(PENDING, "cf_order_number")
    review_id = desk.decide(312)
    desk.deliver()

    assert len(fd.public_replies(312)) == 1 and fd.ticket(312)["status"] == OPEN
    assert (
        desk.rows("helpdesk_write")[0].status == OutboxStatus.DONE
    )  # the customer got the reply: not retried
    assert desk.review(review_id).helpdesk_state == "sent"
    [told] = thread_texts(desk)
    assert "Written to Freshdesk, but the ticket's status/assignee were not changed" in told
    assert "cf_order_number" in told and "set it by hand" in told


def test_hitl_doctor_checks_the_freshdesk_key(freshdesk: FreshdeskStandin) -> None:
    from bot.app.doctor import check_helpdesk

    def settings(key: str) -> Settings:
        return Settings(  # type: ignore[call-arg]
            _env_file=None,
            HITL_HELPDESK="freshdesk",
            FRESHDESK_DOMAIN=freshdesk.base_url,
            FRESHDESK_API_KEY=key,
        )

    [ok] = list(check_helpdesk(settings(FD_KEY)))
    [bad] = list(check_helpdesk(settings("wrong")))
    assert ok.ok and "API Agent" in ok.detail
    assert not bad.ok and "FRESHDESK_API_KEY" in bad.detail


def test_credentials_check_names_the_agent_or_says_which_setting_is_wrong(
    freshdesk: FreshdeskStandin,
) -> None:
    good = FreshdeskHelpdesk(domain=freshdesk.base_url, api_key=FD_KEY)
    assert "API Agent" in good.check() and freshdesk.base_url in good.check()
    bad = FreshdeskHelpdesk(domain=freshdesk.base_url, api_key="wrong")
    with pytest.raises(Rejected, match="FRESHDESK_API_KEY"):
        bad.check()
    good.close()
    bad.close()


def test_freshdesk_without_its_key_refuses_to_start() -> None:
    settings = Settings(_env_file=None, HITL_HELPDESK="freshdesk", FRESHDESK_DOMAIN="acme")  # type: ignore[call-arg]
    with pytest.raises(MissingSetting, match="FRESHDESK_API_KEY"):
        make_helpdesk(settings)
    assert FreshdeskHelpdesk(domain="acme", api_key="k").base_url == "https://acme.freshdesk.com"
