"""Two replicas, helpdesk writes slower than the outbox lease: every decision reaches the customer exactly once.

Before fenced leases, 3 of 24 tickets got the same public reply twice in this setup: a worker held a batch
under a fixed lease it never renewed, so the other replica took rows still waiting in the first one's
batch. The lease here is shorter than one write (0.15 s against 0.2 s), so only renewal keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from storage.db import session_scope
from storage.models import AuditEvent, OutboxItem, OutboxStatus
from tests.helpdesk.conftest import Desk

DECISIONS = 200
WRITE_SECONDS = 0.2
LEASE = {"HITL_OUTBOX_LEASE_SECONDS": 0.15, "HITL_OUTBOX_RENEW_SECONDS": 0.04, "HITL_OUTBOX_BATCH": 20}


def _counts(desk: Desk) -> dict[str, int]:
    with session_scope(desk.runtime.engine, readonly=True) as session:
        rows = session.execute(
            select(OutboxItem.status, func.count())
            .where(OutboxItem.kind == "helpdesk_write")
            .group_by(OutboxItem.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


def test_two_replicas_with_writes_slower_than_the_lease_send_each_reply_once(
    db_url: str, make_desk: Callable[..., Desk]
) -> None:
    one = make_desk(db_url, HITL_INSTANCE_ID="replica-a", **LEASE)
    two = make_desk(db_url, HITL_INSTANCE_ID="replica-b", **LEASE)
    one.zendesk.set_latency(WRITE_SECONDS)
    tickets = [90_001 + n for n in range(DECISIONS)]
    for t in tickets:
        one.ticket(t)
        one.decide(t)
    assert one.worker.lease < timedelta(seconds=WRITE_SECONDS)  # the lease alone would lapse mid-write

    one.worker.start()
    two.worker.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _counts(one).get(OutboxStatus.DONE, 0) < DECISIONS:
            time.sleep(0.2)
    finally:
        one.worker.stop()
        two.worker.stop()

    assert _counts(one) == {OutboxStatus.DONE: DECISIONS}
    replies = {t: len(one.zendesk.public_replies(t)) for t in tickets}
    assert sorted(set(replies.values())) == [1], {t: n for t, n in replies.items() if n != 1}
    # Both replicas did real work (the test would prove nothing if one idled), and each row was settled once.
    with session_scope(one.runtime.engine, readonly=True) as session:
        delivered = [
            e.detail.get("instance")
            for e in session.execute(select(AuditEvent).where(AuditEvent.action == "delivered")).scalars()
            if e.detail.get("kind") == "helpdesk_write"  # not the card refreshes the writes queued
        ]
    assert len(delivered) == DECISIONS
    assert {"replica-a", "replica-b"} <= set(delivered), set(delivered)
    assert len(one.zendesk.requests("PUT")) == DECISIONS  # one write per decision, none repeated
