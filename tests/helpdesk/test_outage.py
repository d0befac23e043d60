"""Zendesk down for hours, compressed with a fake clock: growing waits, then delivery; too long: dead, told, revived."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.helpdesk.delivery import HELPDESK_WRITE_POLICY
from storage.models import OutboxStatus
from tests.conftest import FakeClock
from tests.helpdesk.conftest import OPS, REVIEW_CHANNEL, Desk


def hitl(*args: str, db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "SLACK_", "ZENDESK_", "OPENAI_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "HITL_DATABASE_URL": db_url},
        cwd=cwd,
        check=False,
    )


def test_a_three_hour_outage_is_ridden_out_with_growing_waits_then_the_reply_goes_once(
    make_desk: Callable[..., Desk], db_url: str
) -> None:
    clock = FakeClock()
    desk = make_desk(db_url, clock=clock)
    desk.ticket(301)
    review_id = desk.decide(301)
    desk.zendesk.set_outage(True)

    waits: list[float] = []
    outage_ends = clock.now() + timedelta(hours=3)
    while clock.now() < outage_ends:
        assert desk.worker.run_once() == 1
        row = desk.rows("helpdesk_write")[0]
        assert row.status == OutboxStatus.PENDING and "503" in (row.last_error or "")
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.t = row.next_attempt_at
    desk.zendesk.set_outage(False)
    desk.worker.run_once()

    assert waits[:8] == sorted(waits[:8]) and waits[0] < 5 and waits[7] > 200  # exponential...
    assert max(waits) <= HELPDESK_WRITE_POLICY.max_delay  # ...capped
    assert 15 <= len(waits) <= 40
    assert desk.rows("helpdesk_write")[0].status == OutboxStatus.DONE
    assert len(desk.zendesk.public_replies(301)) == 1
    assert desk.review(review_id).helpdesk_state == "sent"


def test_an_outage_longer_than_the_max_age_dead_letters_loudly_and_outbox_retry_revives_it(
    make_desk: Callable[..., Desk], sqlite_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(datetime.now(UTC) - timedelta(hours=14))
    desk = make_desk(sqlite_url, clock=clock)
    desk.ticket(302)
    review_id = desk.decide(302)
    desk.zendesk.set_outage(True)
    while True:
        desk.worker.run_once()
        row = desk.rows("helpdesk_write")[0]
        if row.status == OutboxStatus.DEAD:
            break
        clock.t = row.next_attempt_at
    assert clock.now() - row.created_at > HELPDESK_WRITE_POLICY.max_age
    assert "too old" in str(desk.rows("slack_post")[0].payload)
    desk.deliver()  # the Slack side: the ops announcement and the reviewer's thread
    ops = desk.slack.messages(OPS)
    assert len(ops) == 1 and f"hitl outbox retry {row.id}" in ops[0]["text"]
    thread = [m for m in desk.slack.messages(REVIEW_CHANNEL) if m.get("thread_ts")]
    assert len(thread) == 1 and "the customer has not got the reply" in thread[0]["text"]
    assert desk.review(review_id).helpdesk_state == "failed"

    listed = hitl("outbox", "list", "--dead", db_url=sqlite_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{row.id}" in listed.stdout and "helpdesk_write" in listed.stdout and "dead" in listed.stdout
    assert "ticket:302" in listed.stdout

    desk.zendesk.set_outage(False)
    revived = hitl("outbox", "retry", str(row.id), db_url=sqlite_url, cwd=tmp_path)
    assert revived.returncode == 0 and "requeued 1" in revived.stdout, revived.stderr
    clock.t = datetime.now(UTC) + timedelta(seconds=1)
    desk.deliver()
    assert desk.rows("helpdesk_write")[0].status == OutboxStatus.DONE
    assert len(desk.zendesk.public_replies(302)) == 1
    assert desk.review(review_id).helpdesk_state == "sent"
    assert "nothing waiting" in hitl("outbox", "list", db_url=sqlite_url, cwd=tmp_path).stdout


def test_outbox_retry_needs_ids_or_all_dead(sqlite_url: str, tmp_path: Path) -> None:
    out = hitl("outbox", "retry", db_url=sqlite_url, cwd=tmp_path)
    assert (
        out.returncode == 2
        and out.stderr.strip() == "hitl: give outbox row ids or --all-dead (one of the two)"
    )
