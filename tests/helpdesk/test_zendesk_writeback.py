"""Decisions reach Zendesk over real HTTP as a reviewer would expect: reply, note, assignment, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sandbox.zendesk_standin import API_USER_ID
from storage.models import DecisionKind, OutboxStatus
from tests.conftest import FakeClock
from tests.helpdesk.conftest import AGENT_ZD_ID, OPS, REVIEW_CHANNEL, Desk


def test_approve_sends_one_public_reply_by_the_agent_with_the_policy_status(
    make_desk: Callable[..., Desk], db_url: str
) -> None:
    desk = make_desk(db_url)
    desk.ticket(101)
    review_id = desk.decide(101, DecisionKind.APPROVE, draft="Your order NW-1 arrives Thursday.")
    desk.deliver()

    replies = desk.zendesk.public_replies(101)
    assert [(r["body"], r["author_id"]) for r in replies] == [
        ("Your order NW-1 arrives Thursday.", AGENT_ZD_ID)
    ]
    assert desk.zendesk.ticket(101)["status"] == "pending"  # policy: status_after_reply
    sent = desk.puts(101)[0]["json"]["ticket"]
    assert sent["safe_update"] is True and sent["updated_stamp"] and sent["comment"]["public"] is True
    assert desk.review(review_id).helpdesk_state == "sent"
    ledger = desk.ledger(f"{review_id}:review")
    assert ledger is not None and ledger.state == "done" and ledger.outcome["comment_id"] == replies[0]["id"]


def test_edit_sends_the_reviewers_text_not_the_draft(make_desk: Callable[..., Desk], sqlite_url: str) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(102)
    desk.decide(102, DecisionKind.EDIT, draft="AI text", final_text="Hi Maya, the human version.")
    desk.deliver()
    assert [r["body"] for r in desk.zendesk.public_replies(102)] == ["Hi Maya, the human version."]


def test_take_over_assigns_the_agent_with_the_draft_as_an_internal_note(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(103)
    review_id = desk.decide(103, DecisionKind.TAKE_OVER, draft="A draft the human may reuse.")
    desk.deliver()

    ticket = desk.zendesk.ticket(103)
    assert ticket["assignee_id"] == AGENT_ZD_ID and ticket["status"] == "open"
    assert desk.zendesk.public_replies(103) == []
    note = desk.zendesk.comments(103)[-1]
    assert note["public"] is False and note["author_id"] == AGENT_ZD_ID
    assert (
        "A draft the human may reuse." in note["body"] and "Taken over in Slack by Ana Agent" in note["body"]
    )
    assert desk.review(review_id).helpdesk_state == "assigned"


def test_reject_adds_an_internal_note_with_the_reason_and_sends_nothing(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(104)
    desk.decide(104, DecisionKind.REJECT, reason="hallucination", comment="There is no order NW-9.")
    desk.deliver()

    assert desk.zendesk.public_replies(104) == []
    note = desk.zendesk.comments(104)[-1]
    assert note["public"] is False
    assert "Reason: hallucination — There is no order NW-9." in note["body"]
    assert desk.zendesk.ticket(104)["status"] == "open"  # a rejection leaves the status alone


def test_unknown_agent_replies_as_the_api_user_and_says_who_approved(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(105)
    desk.decide(105, DecisionKind.APPROVE, actor_id="U0NOZD", actor_name="Ned Nobody")
    desk.deliver()

    replies = desk.zendesk.public_replies(105)
    assert len(replies) == 1 and replies[0]["author_id"] == API_USER_ID
    note = desk.zendesk.comments(105)[-1]
    assert note["public"] is False and "approved in Slack by Ned Nobody" in note["body"]
    assert "ned@elsewhere.example" in note["body"]


def test_auto_send_replies_as_the_api_user(make_desk: Callable[..., Desk], sqlite_url: str) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(106)
    desk.decide(106, DecisionKind.AUTO_SEND, draft="Reset link sent.")
    desk.deliver()
    assert [(r["body"], r["author_id"]) for r in desk.zendesk.public_replies(106)] == [
        ("Reset link sent.", API_USER_ID)
    ]
    assert len(desk.zendesk.comments(106)) == 2  # the customer's message and the reply: no extra note


def test_a_ticket_changed_in_zendesk_is_never_overwritten_and_the_reviewer_is_told(
    make_desk: Callable[..., Desk], db_url: str
) -> None:
    desk = make_desk(db_url)
    stamp = desk.ticket(107)["updated_at"]  # what the AI pipeline saw when it drafted
    review_id = desk.decide(107, DecisionKind.APPROVE, ticket_updated_at=stamp)
    desk.zendesk.human_update(107, "I've sorted this by phone — Sam")
    desk.deliver()

    assert [r["body"] for r in desk.zendesk.public_replies(107)] == ["I've sorted this by phone — Sam"]
    assert desk.review(review_id).helpdesk_state == "conflict"
    write = desk.rows("helpdesk_write")[0]
    assert write.status == OutboxStatus.DONE and write.result["outcome"] == "conflict"
    thread = [m for m in desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]
    assert (
        len(thread) == 1 and "changed in Zendesk" in thread[0]["text"] and "*not* sent" in thread[0]["text"]
    )
    assert f"{desk.zendesk.base_url}/agent/tickets/107" in thread[0]["text"]
    assert len(desk.puts(107)) == 1  # tried once, never retried over the human's change


def test_a_closed_ticket_is_reported_and_dead_lettered_not_retried(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    desk = make_desk(sqlite_url)
    desk.ticket(108)
    desk.zendesk.close_ticket(108)
    review_id = desk.decide(108, DecisionKind.APPROVE)
    desk.deliver()

    write = desk.rows("helpdesk_write")[0]
    assert write.status == OutboxStatus.DEAD and "closed" in (write.last_error or "")
    assert desk.review(review_id).helpdesk_state == "closed"
    assert len(desk.puts(108)) == 1
    assert any("dead-lettered" in m["text"] for m in desk.slack.messages(OPS))
    thread = [m for m in desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]
    assert len(thread) == 1 and "the ticket is closed in Zendesk" in thread[0]["text"]


def test_a_429_storm_waits_retry_after_each_time_then_sends_once(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    clock = FakeClock()
    desk = make_desk(sqlite_url, clock=clock)
    for n in range(5):
        desk.ticket(200 + n)
        desk.decide(200 + n, thread=False)  # no Slack card: only helpdesk rows are due (no card refreshes)
    desk.zendesk.force_429(12, retry_after=30)

    tries = {r.id: 0 for r in desk.rows("helpdesk_write")}
    waits: list[float] = []
    for _ in range(60):
        desk.worker.run_once()
        rows = desk.rows("helpdesk_write")
        for r in rows:
            if r.status == OutboxStatus.PENDING and r.attempts > tries[r.id]:  # 429 in this pass
                waits.append((r.next_attempt_at - clock.now()).total_seconds())
            tries[r.id] = r.attempts
        pending = [r for r in rows if r.status == OutboxStatus.PENDING]
        if not pending:
            break
        soonest = min(r.next_attempt_at for r in pending)
        desk.worker.run_once(soonest - timedelta(seconds=1))  # a QA card a settled write drew may go out
        assert {r.id: r.attempts for r in desk.rows("helpdesk_write")} == tries  # no write before Retry-After
        clock.t = soonest

    assert len(waits) >= 10 and all(30 <= w <= 30 * 1.25 for w in waits), waits
    assert all(r.status == OutboxStatus.DONE for r in desk.rows("helpdesk_write"))
    for n in range(5):
        assert len(desk.zendesk.public_replies(200 + n)) == 1
    assert desk.runtime.services.kinds.policy("helpdesk_write").max_attempts > 12


def test_a_lost_response_after_the_write_is_found_on_retry_not_sent_twice(
    make_desk: Callable[..., Desk], db_url: str
) -> None:
    clock = FakeClock()
    desk = make_desk(db_url, clock=clock)
    desk.ticket(109)
    desk.ticket(110)
    first = desk.decide(109)
    desk.zendesk.fail_after_write(1, drop=True)  # Zendesk applies the write, the connection dies mid-answer
    desk.worker.run_once()
    assert desk.ledger(f"{first}:review").state == "started"  # outcome unknown
    second = desk.decide(110)
    desk.zendesk.fail_after_write(1)  # the next write is applied, then answered 500
    clock.advance(minutes=5)
    desk.deliver()
    clock.advance(minutes=5)
    desk.deliver()

    for ticket, review_id in ((109, first), (110, second)):
        assert len(desk.zendesk.public_replies(ticket)) == 1
        assert len(desk.puts(ticket)) == 1
        ledger = desk.ledger(f"{review_id}:review")
        assert ledger.state == "done" and ledger.outcome["found_after_unknown_outcome"] is True


def test_writes_to_one_ticket_keep_their_order(make_desk: Callable[..., Desk], sqlite_url: str) -> None:
    clock = FakeClock()
    desk = make_desk(sqlite_url, clock=clock)
    desk.ticket(111)
    desk.zendesk.force_429(1, retry_after=20)  # the first write must wait; the second may not overtake it
    desk.decide(111, DecisionKind.REJECT, reason="tone_mismatch")
    desk.decide(111, DecisionKind.APPROVE, draft="Second draft, approved.")
    desk.deliver()
    assert desk.puts(111) == [] and desk.zendesk.requests("GET", "/tickets/111") == []
    clock.advance(minutes=1)
    desk.deliver()
    bodies = [c["body"] for c in desk.zendesk.comments(111)[1:]]
    assert len(bodies) == 2 and "rejected in Slack" in bodies[0] and bodies[1] == "Second draft, approved."


def test_no_helpdesk_marks_the_write_done_without_calls(
    make_desk: Callable[..., Desk], sqlite_url: str
) -> None:
    desk = make_desk(sqlite_url, HITL_HELPDESK="none")
    desk.ticket(112)
    desk.decide(112)
    desk.deliver()
    assert desk.rows("helpdesk_write")[0].result == {"outcome": "skipped", "helpdesk": "none"}
    assert desk.zendesk.requests("PUT") == []
