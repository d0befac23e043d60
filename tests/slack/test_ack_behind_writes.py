"""A click is acked at once even while the database cannot take writes: more clicks than Bolt has
listener threads (32) all get their ack with every write waiting, then each is recorded or refused.

The write lock is held from outside the service (a second SQLite connection in `BEGIN IMMEDIATE`, as
another process writing would hold it), so every decision waits for it.
"""

from __future__ import annotations

import sqlite3
import threading

import httpx
import pytest
from sqlalchemy.engine import make_url

from bot.slack.ids import ActionId
from sandbox.slack_sim import SlackSim, block_action_payload
from tests.conftest import SIGNING_SECRET, wait_for
from tests.slack.conftest import Loop

CLICKS = 40  # more than the 32 threads Bolt runs listeners (and so acks) on


def test_forty_clicks_are_acked_while_writes_wait_then_one_is_recorded_and_39_refused(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    path = make_url(loop.runtime.settings.database_url).database
    blocker = sqlite3.connect(str(path), isolation_level=None, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # nobody else writes until we commit

    answers: list[int] = []
    lock = threading.Lock()

    def click(n: int) -> None:
        sim = SlackSim(loop.svc.url, SIGNING_SECRET)
        try:
            payload = block_action_payload(
                message=card, channel=card["channel"], action_id=ActionId.APPROVE, user_id=f"U0AGENT{n:04d}"
            )
            status = sim.post_action(payload).status_code
        except httpx.HTTPError:
            status = 0
        finally:
            sim.close()
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=click, args=(n,)) for n in range(CLICKS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)  # Slack gives up after 3 s; a click stuck behind the writes never returns
        with lock:
            acked_while_blocked = list(answers)
        nothing_written = loop.decisions(review_id) == 0  # a read: WAL readers pass a held write lock
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    for t in threads:
        t.join(timeout=60)

    assert acked_while_blocked == [200] * CLICKS and nothing_written
    # Each got its own ack: none waited for a listener thread until Bolt gave up on it after 3 s (Bolt then
    # logs it and the edge answers a bare 200, too late for Slack, which shows the clicker an error).
    late = [r.getMessage() for r in caplog.records if "didn't call ack()" in r.getMessage()]
    assert late == []
    decided = loop.decided(review_id, timeout=60)
    assert decided.status == "approved" and loop.decisions(review_id) == 1
    assert decided.decided_by is not None and decided.decided_by.startswith("U0AGENT")
    # Every other click is told who was first, from the pool that records them.
    losers = [f"U0AGENT{n:04d}" for n in range(CLICKS) if f"U0AGENT{n:04d}" != decided.decided_by]
    wait_for(lambda: all(loop.standin.ephemerals(u) for u in losers), 60, "39 'already decided' answers")
    clicks = loop.audits("click", review_id)
    assert len(clicks) == CLICKS and len({a.actor for a in clicks}) == CLICKS  # each audited once
