"""Two delivery replicas on one PostgreSQL database, each SIGKILLed once mid-write and restarted: none lost,
none sent twice, and a dead replica's rows are taken over by the live one one short lease later."""

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
from storage.db import make_engine, session_scope
from storage.models import DeliveryLedger, OutboxItem, OutboxStatus
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
DECISIONS = 300
FIRST_TICKET = 80_001
LEASE_SECONDS = "1"


def reply_text(n: int) -> str:
    return f"Hi! Order NW-{n} is on its way and arrives in 2-3 days."


@pytest.fixture
def zendesk_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The Zendesk stand-in as its own process, so it outlives the killed workers."""
    state = tmp_path / "zendesk.json"
    seed = ZendeskStandin(email=ZD_EMAIL, api_token=ZD_TOKEN)
    seed.add_user(AGENT_ZD_ID, AGENT_EMAIL, "Ana Agent")
    seed.add_user(REQUESTER_ID, "maya@example.com", "Maya Patel", role="end-user")
    for n in range(DECISIONS):
        seed.add_ticket(
            FIRST_TICKET + n, subject=f"Order NW-{n}", requester_id=REQUESTER_ID, description="Where?"
        )
    seed.state_file = str(state)
    seed._save()
    cmd = [sys.executable, "-m", "sandbox.zendesk_standin", "--port", "0", "--state", str(state)]
    cmd += ["--email", ZD_EMAIL, "--api-token", ZD_TOKEN, "--latency", "0.02"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), line
    try:
        yield line.split(" ", 1)[1], state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _replica(db_url: str, zendesk_url: str, slack_url: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.helpdesk.crash_worker", "--db", db_url, "--zendesk", zendesk_url]
    cmd += ["--slack", slack_url, "--lease", LEASE_SECONDS]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count(engine: Engine, status: str) -> int:
    with session_scope(engine, readonly=True) as session:
        q = select(func.count()).select_from(OutboxItem).where(OutboxItem.status == status)
        return int(session.execute(q).scalar_one())


def _held_by(engine: Engine, pid: int) -> int:
    """Rows leased by the replica with this pid (instance ids are host:pid:...)."""
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(select(OutboxItem.locked_by).where(OutboxItem.status == OutboxStatus.PENDING))
        return sum(1 for (holder,) in rows if holder and f":{pid}:" in holder)


def _kill_mid_write(engine: Engine, proc: subprocess.Popen[str], after: int) -> float:
    """SIGKILL `proc` once `after` rows are done and it holds rows; returns when its rows were free again."""
    deadline = time.monotonic() + 90
    while _count(engine, OutboxStatus.DONE) < after or not _held_by(engine, proc.pid):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the replica never got going"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = time.monotonic()
    while _held_by(engine, proc.pid) and time.monotonic() < killed_at + 60:
        time.sleep(0.05)
    return time.monotonic() - killed_at


def test_two_replicas_each_killed_once_lose_nothing_and_send_nothing_twice(
    pg_url: str, zendesk_process: tuple[str, Path]
) -> None:
    zendesk_url, state = zendesk_process
    engine = make_engine(pg_url)
    with session_scope(engine) as session:
        for n in range(DECISIONS):
            # No Slack card (thread=False): card refreshes go at chat.update's ~50/min, not under test here.
            ticket = str(FIRST_TICKET + n)
            add_decision(session, datetime.now(UTC), ticket, "approve", draft=reply_text(n), thread=False)

    with SlackStandin(token="xoxb-test") as slack:
        slack.add_user(AGENT_SLACK_ID, "Ana Agent", AGENT_EMAIL)
        a, b = _replica(pg_url, zendesk_url, slack.base_url), _replica(pg_url, zendesk_url, slack.base_url)
        freed_a = _kill_mid_write(engine, a, DECISIONS // 4)
        a2 = _replica(pg_url, zendesk_url, slack.base_url)
        freed_b = _kill_mid_write(engine, b, DECISIONS // 2)
        b2 = _replica(pg_url, zendesk_url, slack.base_url)
        for proc in (a2, b2):
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0 and "DONE" in out, err[-2000:]

    replies: Counter[int] = Counter()
    for ticket_id, comments in json.loads(state.read_text())["comments"].items():
        replies[int(ticket_id)] += sum(1 for c in comments if c["public"] and c["author_id"] != REQUESTER_ID)
    lost = [n for n in range(DECISIONS) if replies[FIRST_TICKET + n] == 0]
    duplicated = [t for t, count in replies.items() if count > 1]
    print(
        f"\ntwo-replica crash test: rows of a killed replica free again after {freed_a:.1f}s and {freed_b:.1f}s"
    )
    assert lost == [] and duplicated == []
    with session_scope(engine, readonly=True) as session:
        ledger = Counter(session.execute(select(DeliveryLedger.state)).scalars())
        outbox = Counter(session.execute(select(OutboxItem.kind, OutboxItem.status)).tuples())
    # Every row settled as done: the helpdesk writes, and the QA cards of the sampled human approvals.
    assert ledger == {"done": DECISIONS} and outbox[("helpdesk_write", OutboxStatus.DONE)] == DECISIONS
    assert {status for _, status in outbox} == {OutboxStatus.DONE}, outbox
    engine.dispose()
