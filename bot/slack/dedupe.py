"""Slack deliveries already handled (event ids, click keys), so retries and duplicates never act twice."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Engine, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Executable
from sqlmodel import Session, col

from storage.db import session_scope
from storage.models import ProcessedEvent


def first_delivery(*, engine: Engine, key: str, now: datetime) -> bool:
    """Record `key`; True only for the first delivery with it (atomic across threads and replicas)."""
    with session_scope(engine) as session:
        return record_delivery(session=session, key=key, now=now)


def record_delivery(*, session: Session, key: str, now: datetime) -> bool:
    """`first_delivery` in the caller's transaction (one `INSERT … ON CONFLICT DO NOTHING RETURNING`)."""
    stmt = _insert_key(session.get_bind().dialect.name)
    return session.execute(stmt, {"key": key[:255], "seen_at": now}).first() is not None


@functools.cache
def _insert_key(dialect: str) -> Executable:
    """Built once per dialect: on the click path, building it per call cost more than running it."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = ProcessedEvent.metadata.tables[ProcessedEvent.__tablename__]
    return insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)


def prune(*, engine: Engine, before: datetime) -> int:
    """Forget keys seen before `before` (Slack stops retrying after minutes)."""
    with session_scope(engine) as session:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            delete(ProcessedEvent).where(col(ProcessedEvent.seen_at) < before)
        )
        return int(result.rowcount)
