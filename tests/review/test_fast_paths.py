"""The hot paths' storage helpers (storage/fastpath.py), on SQLite and PostgreSQL: a duplicate create is
refused like a plain INSERT, batched rows keep the order they were added in, a dropped connection is
retried once; on SQLite, writers of one process take turns without meeting SQLite's lock, and the reads
beside a write hold no snapshot."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import col

from storage import repo
from storage.db import make_engine, session_scope
from storage.fastpath import (
    add_once,
    add_once_with,
    insert_new_in_batches,
    once_more_on_disconnect,
    reads_then_write,
)
from storage.models import AuditEvent, Decision, OutboxItem, Review

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DECISION = {
    "stage": "review",
    "ticket_id": "T-1",
    "interaction_type": "order_status",
    "confidence": 0.8,
    "route": "auto_send",
    "tier": "standard",
    "customer_message": "Where is my order?",
    "ai_draft": "It ships today.",
    "decision": "auto_send",
    "actor_id": "hitl",
    "decided_at": NOW,
}


def review(review_id: str, key: str) -> Review:
    return Review(
        id=review_id,
        idempotency_key=key,
        ticket_id="T-1",
        interaction_type="order_status",
        confidence=0.8,
        customer_message="Where is my order?",
        draft="It ships today.",
        route="review",
        tier="standard",
        created_at=NOW,
    )


def test_a_second_create_with_the_same_key_is_refused_and_the_first_is_kept(db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        first = review("a" * 32, "key-1")
        add_once(s, first, unique="idempotency_key")
        first.subject = "changed after the insert"  # the row belongs to the session: flushed as an UPDATE
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        add_once(s, review("b" * 32, "key-1"), unique="idempotency_key")
    with session_scope(engine, readonly=True) as s:
        kept = repo.review_by_key(session=s, idempotency_key="key-1")
        assert kept is not None and kept.id == "a" * 32 and kept.subject == "changed after the insert"
    engine.dispose()


def test_batched_audit_and_outbox_rows_keep_the_order_they_were_added_in(db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        for n in range(5):
            repo.audit(session=s, at=NOW, actor="U1", action=f"step-{n}")
            repo.enqueue(session=s, now=NOW, kind="slack_post", order_key="o", payload={"n": n})
        insert_new_in_batches(s, AuditEvent, OutboxItem)
        assert not s.new
    with session_scope(engine, readonly=True) as s:
        actions = s.execute(select(AuditEvent.action).order_by(col(AuditEvent.id))).scalars().all()
        payloads = s.execute(select(OutboxItem.payload).order_by(col(OutboxItem.id))).scalars().all()
    assert actions == [f"step-{n}" for n in range(5)]
    assert [p["n"] for p in payloads] == list(range(5))
    engine.dispose()


def test_a_create_with_its_rows_is_one_statement_on_postgresql_and_a_duplicate_leaves_none_of_them(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))

    def create(review_id: str, steps: int) -> None:
        with session_scope(engine) as s, s.no_autoflush:  # as ingest builds them: nothing sent before
            for n in range(steps):
                repo.audit(
                    session=s, at=NOW, actor="U1", action=f"{review_id[0]}-step-{n}", review_id=review_id
                )
                repo.enqueue(session=s, now=NOW, kind="slack_post", order_key="o", payload={"n": n})
            s.add(Decision(review_id=review_id, **DECISION))  # references the review: same statement too
            add_once_with(
                s,
                review(review_id, "key-1"),
                unique="idempotency_key",
                models=(Decision, AuditEvent, OutboxItem),
            )
            assert not s.new

    create("a" * 32, steps=3)
    writes = [q for q in statements if q.lstrip().upper().startswith(("INSERT", "WITH"))]
    assert len(writes) == (1 if engine.dialect.name == "postgresql" else 4)  # SQLite: one per table
    with pytest.raises(IntegrityError):
        create("b" * 32, steps=2)  # the key is taken: its audit, outbox and decision rows go back out too
    with session_scope(engine, readonly=True) as s:
        actions = s.execute(select(AuditEvent.action).order_by(col(AuditEvent.id))).scalars().all()
        payloads = s.execute(select(OutboxItem.payload).order_by(col(OutboxItem.id))).scalars().all()
        decided = s.execute(select(Decision.review_id)).scalars().all()
        assert s.execute(select(func.count()).select_from(Review)).scalar_one() == 1
    assert actions == ["a-step-0", "a-step-1", "a-step-2"]  # in the order they were added
    assert [p["n"] for p in payloads] == [0, 1, 2] and decided == ["a" * 32]
    engine.dispose()


def test_work_is_retried_once_on_a_dropped_connection_and_not_for_other_errors() -> None:
    calls: list[int] = []

    def dropped_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError(
                "SELECT 1", None, Exception("server closed the connection"), connection_invalidated=True
            )
        return "done"

    assert once_more_on_disconnect(dropped_once) == "done" and len(calls) == 2

    def broken() -> str:
        calls.append(1)
        raise DBAPIError("SELECT 1", None, Exception("syntax error"))

    calls.clear()
    with pytest.raises(DBAPIError):
        once_more_on_disconnect(broken)
    assert len(calls) == 1


def test_writers_of_one_process_are_let_in_only_once_the_previous_commit_has_run(sqlite_url: str) -> None:
    # With SQLite's busy wait turned off, a writer let in before the previous COMMIT had run would fail
    # at once with "database is locked"; the process-wide lock must hand the database on only after it.
    engine = make_engine(sqlite_url)
    event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=0"))
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        for i in range(40):
            try:
                with session_scope(engine) as s:
                    repo.audit(session=s, at=NOW, actor=f"U{n}", action=f"write-{i}")
            except OperationalError as exc:  # noqa: PERF203 - each write is its own attempt
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session_scope(engine, readonly=True) as s:
        stored = s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    engine.dispose()
    assert failures == [] and stored == 8 * 40


def test_the_reads_beside_a_write_hold_no_snapshot_so_the_wal_can_start_over(sqlite_url: str) -> None:
    # A read transaction left open across the write would keep every checkpoint from reaching the WAL's
    # end: under steady load some reader always would, and the WAL would grow without bound.
    engine = make_engine(sqlite_url)
    with session_scope(engine) as s:
        add_once(s, review("a" * 32, "key-1"), unique="idempotency_key")
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    with reads_then_write(engine) as (session, reads):
        assert reads is not None
        assert repo.review_by_key(session=reads, idempotency_key="key-1") is not None
        repo.prior_contacts(session=reads, customer_key="id:c1", since=NOW, before=NOW)
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        repo.audit(session=session, at=NOW, actor="api", action="ingest")
    other.close()
    engine.dispose()
    assert busy == 0
