"""A delivery process SIGKILLed half-way through its decisions, then restarted: none lost, none sent twice.

Run against each ticket helpdesk's stand-in as its own process (Zendesk, Freshdesk, Intercom)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from bot.helpdesk.base import html_to_text
from sandbox.freshdesk_standin import FreshdeskStandin
from sandbox.intercom_standin import IntercomStandin
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
AGENT_FD_ID = 7301
AGENT_IC_ID = "4401"


def reply_text(n: int) -> str:
    return f"Hi! Order NW-{n} left our warehouse today and arrives in 2-3 days."


@dataclass(frozen=True)
class Served:
    """A helpdesk stand-in running as its own process, and how to read the replies out of its state file."""

    kind: str
    url: str
    state: Path
    replies: Callable[[dict[str, Any]], dict[int, list[str]]]


def _zendesk_replies(state: dict[str, Any]) -> dict[int, list[str]]:
    return {
        int(t): [c["body"] for c in comments if c["public"] and c["author_id"] != REQUESTER_ID]
        for t, comments in state["comments"].items()
    }


def _freshdesk_replies(state: dict[str, Any]) -> dict[int, list[str]]:
    return {
        int(t): [c["body_text"] for c in items if not c["private"] and not c["incoming"]]
        for t, items in state["conversations"].items()
    }


def _intercom_replies(state: dict[str, Any]) -> dict[int, list[str]]:
    return {
        int(cid): [
            html_to_text(p["body"])
            for p in c["conversation_parts"]["conversation_parts"]
            if p["part_type"] == "comment" and p["author"]["type"] == "admin"
        ]
        for cid, c in state["conversations"].items()
    }


def _seeded(kind: str, state: Path) -> tuple[list[str], Callable[[dict[str, Any]], dict[int, list[str]]]]:
    """Seed the stand-in's state file with the tickets; the module and arguments that serve it."""
    tickets = [FIRST_TICKET + n for n in range(DECISIONS)]
    if kind == "zendesk":
        zd = ZendeskStandin(email=ZD_EMAIL, api_token=ZD_TOKEN)
        zd.add_user(AGENT_ZD_ID, AGENT_EMAIL, "Ana Agent")
        zd.add_user(REQUESTER_ID, "maya@example.com", "Maya Patel", role="end-user")
        for n, t in enumerate(tickets):
            zd.add_ticket(t, subject=f"Order NW-{n}", requester_id=REQUESTER_ID, description="Where is it?")
        zd.state_file = str(state)  # seeded in memory, saved once: the process below loads it
        zd._save()
        return ["sandbox.zendesk_standin", "--email", ZD_EMAIL, "--api-token", ZD_TOKEN], _zendesk_replies
    if kind == "freshdesk":
        fd = FreshdeskStandin()
        fd.add_agent(AGENT_FD_ID, AGENT_EMAIL, "Ana Agent")
        for n, t in enumerate(tickets):
            fd.add_ticket(t, subject=f"Order NW-{n}", description="Where is it?")
        fd.state_file = str(state)
        fd.save()
        return ["sandbox.freshdesk_standin"], _freshdesk_replies
    ic = IntercomStandin()
    ic.add_admin(AGENT_IC_ID, AGENT_EMAIL, "Ana Agent")
    for t in tickets:
        ic.add_conversation(str(t), body="Where is it?")
    ic.state_file = str(state)
    ic.save()
    return ["sandbox.intercom_standin"], _intercom_replies


@pytest.fixture(params=["zendesk", "freshdesk", "intercom"])
def helpdesk_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The helpdesk stand-in as its own process (it outlives the killed worker), seeded with the tickets."""
    kind = str(request.param)
    state = tmp_path / f"{kind}.json"
    command, replies = _seeded(kind, state)
    proc = subprocess.Popen(
        [sys.executable, "-m", *command, "--port", "0", "--state", str(state), "--latency", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), line
    try:
        yield Served(kind, line.split(" ", 1)[1], state, replies)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _worker(db_url: str, served: Served, slack_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpdesk.crash_worker",
            "--db",
            db_url,
            "--helpdesk",
            served.kind,
            "--url",
            served.url,
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
    tmp_path: Path, helpdesk_process: Served
) -> None:
    served = helpdesk_process
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    _seed_decisions(engine)

    done_at_kill, in_flight, elapsed = _kill_mid_delivery_then_restart(db_url, served, engine)

    sent = served.replies(json.loads(served.state.read_text()))
    lost, duplicated = _lost_and_duplicated(sent)
    print(
        f"\ncrash test ({served.kind}): killed after {done_at_kill}/{DECISIONS} rows done, {in_flight} in flight; "
        f"all delivered in {elapsed:.1f}s; lost={len(lost)} duplicated={len(duplicated)}"
    )
    assert lost == [] and duplicated == []
    assert all(sent[FIRST_TICKET + n] == [reply_text(n)] for n in range(DECISIONS))
    assert DECISIONS // 3 <= done_at_kill < DECISIONS
    with session_scope(engine, readonly=True) as session:
        states = Counter(session.execute(select(col(DeliveryLedger.state))).scalars())
        outbox = Counter(session.execute(select(OutboxItem.kind, OutboxItem.status)).tuples())
    # Every row settled as done: the helpdesk writes, and the QA cards of the sampled human approvals.
    assert states == {"done": DECISIONS} and outbox[("helpdesk_write", OutboxStatus.DONE)] == DECISIONS
    assert {status for _, status in outbox} == {OutboxStatus.DONE}, outbox
    engine.dispose()


def _seed_decisions(engine: Engine) -> None:
    with session_scope(engine) as session:
        for n in range(DECISIONS):  # half approved by an agent in Slack, half auto-sent
            decision = DecisionKind.APPROVE if n % 2 else DecisionKind.AUTO_SEND
            # No Slack card (thread=False): the outbox holds the helpdesk writes only, no card refreshes.
            add_decision(
                session, datetime.now(UTC), str(FIRST_TICKET + n), decision, draft=reply_text(n), thread=False
            )


def _lost_and_duplicated(sent: dict[int, list[str]]) -> tuple[list[int], list[int]]:
    lost = [n for n in range(DECISIONS) if not sent.get(FIRST_TICKET + n)]
    return lost, [t for t, bodies in sent.items() if len(bodies) > 1]


def _kill_mid_delivery_then_restart(db_url: str, served: Served, engine: Engine) -> tuple[int, int, float]:
    """SIGKILL a worker once a third is delivered and a write is on the wire; a second one finishes.

    Returns the rows done at the kill, the writes in flight (ledger `started`) then, and the seconds taken."""
    with SlackStandin(token="xoxb-test") as slack:
        slack.add_user(AGENT_SLACK_ID, "Ana Agent", AGENT_EMAIL)
        started = time.monotonic()
        first = _worker(db_url, served, slack.base_url)
        while _done(engine) < DECISIONS // 3 or not _ledger_started(engine):
            assert first.poll() is None, first.communicate()
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        done_at_kill, in_flight = _done(engine), _ledger_started(engine)
        second = _worker(db_url, served, slack.base_url)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0 and "DONE" in out, err[-2000:]
        return done_at_kill, in_flight, time.monotonic() - started


def _done(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(OutboxItem)
                .where(col(OutboxItem.status) == OutboxStatus.DONE)
            ).scalar_one()
        )


def _ledger_started(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(
            session.execute(
                select(func.count()).select_from(DeliveryLedger).where(col(DeliveryLedger.state) == "started")
            ).scalar_one()
        )
