"""A delivery process SIGKILLed half-way through 500 decisions, then restarted: none lost, none sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import ZendeskStandin
from storage.db import make_engine, session_scope, upgrade
from storage.models import DecisionKind, DeliveryLedger, OutboxItem, OutboxStatus
from tests.helpdesk.conftest import (
    AGENT_EMAIL,
    AGENT_SLACK_ID,
    AGENT_ZD_ID,
    REQUESTER_ID,
    ZD_EMAIL,
    ZD_TOKEN,
    add_decision,
)

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = 500
FIRST_TICKET = 70_001


def reply_text(n: int) -> str:
    return f"Hi! Order NW-{n} left our warehouse today and arrives in 2-3 days."


@pytest.fixture
def zendesk_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The Zendesk stand-in as its own process (it outlives the killed worker), seeded with 500 tickets."""
    state = tmp_path / "zendesk.json"
    seed = ZendeskStandin(email=ZD_EMAIL, api_token=ZD_TOKEN)
    seed.add_user(AGENT_ZD_ID, AGENT_EMAIL, "Ana Agent")
    seed.add_user(REQUESTER_ID, "maya@example.com", "Maya Patel", role="end-user")
    for n in range(DECISIONS):
        seed.add_ticket(
            FIRST_TICKET + n, subject=f"Order NW-{n}", requester_id=REQUESTER_ID, description="Where is it?"
        )
    seed.state_file = str(state)  # seeded in memory, saved once: the process below loads it
    seed._save()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.zendesk_standin",
            "--port",
            "0",
            "--state",
            str(state),
            "--email",
            ZD_EMAIL,
            "--api-token",
            ZD_TOKEN,
            "--latency",
            "0.01",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), line
    try:
        yield line.split(" ", 1)[1], state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _worker(db_url: str, zendesk_url: str, slack_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpdesk.crash_worker",
            "--db",
            db_url,
            "--zendesk",
            zendesk_url,
            "--slack",
            slack_url,
            "--lease",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_delivery_then_restart_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, zendesk_process: tuple[str, Path]
) -> None:
    zendesk_url, state = zendesk_process
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        for n in range(DECISIONS):  # half approved by an agent in Slack, half auto-sent
            decision = DecisionKind.APPROVE if n % 2 else DecisionKind.AUTO_SEND
            add_decision(session, datetime.now(UTC), str(FIRST_TICKET + n), decision, draft=reply_text(n))

    with SlackStandin(token="xoxb-test") as slack:
        slack.add_user(AGENT_SLACK_ID, "Ana Agent", AGENT_EMAIL)
        started = time.monotonic()
        first = _worker(db_url, zendesk_url, slack.base_url)
        # Kill once a third is delivered, at a moment a write is on the wire (ledger `started`).
        while _done(engine) < DECISIONS // 3 or not _ledger_started(engine):
            assert first.poll() is None, first.communicate()
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        done_at_kill = _done(engine)
        in_flight = _ledger_started(engine)

        second = _worker(db_url, zendesk_url, slack.base_url)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0 and "DONE" in out, err[-2000:]
        elapsed = time.monotonic() - started

    tickets = json.loads(state.read_text())
    replies: Counter[int] = Counter()
    bodies: dict[int, str] = {}
    for ticket_id, comments in tickets["comments"].items():
        for c in comments:
            if c["public"] and c["author_id"] != REQUESTER_ID:
                replies[int(ticket_id)] += 1
                bodies[int(ticket_id)] = c["body"]
    lost = [n for n in range(DECISIONS) if replies[FIRST_TICKET + n] == 0]
    duplicated = [t for t, count in replies.items() if count > 1]
    print(
        f"\ncrash test: killed after {done_at_kill}/{DECISIONS} rows done, {in_flight} in flight; "
        f"all delivered in {elapsed:.1f}s; lost={len(lost)} duplicated={len(duplicated)}"
    )
    assert lost == [] and duplicated == []
    assert all(bodies[FIRST_TICKET + n] == reply_text(n) for n in range(DECISIONS))
    assert DECISIONS // 3 <= done_at_kill < DECISIONS
    with session_scope(engine, readonly=True) as session:
        states = Counter(session.execute(select(DeliveryLedger.state)).scalars())
        outbox = Counter(session.execute(select(OutboxItem.status)).scalars())
    assert states == {"done": DECISIONS} and outbox == {OutboxStatus.DONE: DECISIONS}
    engine.dispose()


def _done(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(
            session.execute(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.DONE)
            ).scalar_one()
        )


def _ledger_started(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(
            session.execute(
                select(func.count()).select_from(DeliveryLedger).where(DeliveryLedger.state == "started")
            ).scalar_one()
        )
