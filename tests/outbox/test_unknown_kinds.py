"""A rolling deploy: a newer replica queues a kind an older one does not know. The older one leaves the
row to the newer (it neither leases nor dead-letters it); a row no running replica knows is dead-lettered,
loudly, once it has waited UNKNOWN_KIND_GRACE. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.runtime import Runtime, build_runtime
from bot.app.workers import install_workers
from bot.outbox.worker import UNKNOWN_KIND_GRACE, OutboxWorker
from bot.slack import delivery as slack_delivery
from storage import repo
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus
from tests.conftest import FakeClock


@pytest.fixture
def replicas(
    make_settings: Callable[..., Any], slack_standin: Any, db_url: str, clock: FakeClock
) -> Iterator[tuple[Runtime, Runtime]]:
    """(old, new): the old replica delivers only the Slack kinds, the new one every kind."""
    settings = make_settings(
        SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=db_url, HITL_SCHEDULER=False
    )
    old, new = build_runtime(settings, clock=clock), build_runtime(settings, clock=clock)
    slack_delivery.install(old)
    install_workers(new)
    yield old, new
    old.engine.dispose()
    new.engine.dispose()


def _qa_card(rt: Runtime, clock: FakeClock, review_id: str) -> int:
    """Queue a QA card row (a kind the old replica does not know); its id."""
    with session_scope(rt.engine) as session:
        row = repo.enqueue(
            session=session,
            now=clock.now(),
            kind="slack_post_qa",
            order_key=f"review:{review_id}",
            payload={"review_id": review_id},
        )
        session.flush()
        return int(row.id or 0)


def _row(rt: Runtime, row_id: int) -> OutboxItem:
    with session_scope(rt.engine, readonly=True) as session:
        return session.execute(select(OutboxItem).where(OutboxItem.id == row_id)).scalar_one()


def test_an_older_replica_leaves_a_kind_it_does_not_know_to_the_newer_ones(
    replicas: tuple[Runtime, Runtime], clock: FakeClock
) -> None:
    old, new = replicas
    assert "slack_post_qa" in new.services.kinds.names() and "slack_post_qa" not in old.services.kinds.names()
    row_id = _qa_card(new, clock, "r1")
    old_worker = OutboxWorker(old, lease=timedelta(seconds=30))
    clock.advance(minutes=9)
    assert old_worker.run_once() == 0  # not leased, not dead-lettered
    still = _row(old, row_id)
    assert still.status == OutboxStatus.PENDING and still.locked_by is None and still.attempts == 0
    claimed = OutboxWorker(new, lease=timedelta(seconds=30)).claim(clock.now(), "new#1")
    assert [r.id for r in claimed] == [row_id]  # the newer replica takes it


def test_a_kind_no_replica_knows_is_dead_lettered_once_it_has_waited(
    replicas: tuple[Runtime, Runtime], clock: FakeClock
) -> None:
    old, _ = replicas
    row_id = _qa_card(old, clock, "r2")
    worker = OutboxWorker(old, lease=timedelta(seconds=30))
    clock.advance(seconds=UNKNOWN_KIND_GRACE.total_seconds() + 1)
    assert worker.run_once() == 1
    dead = _row(old, row_id)
    assert dead.status == OutboxStatus.DEAD and "no handler registered" in (dead.last_error or "")
