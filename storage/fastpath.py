"""Hot-path helpers: idempotent inserts in one statement, reads outside SQLite's write lock, batched rows.

The ingest API and the click path run these at every request; each saves a round trip or keeps SQLite's
single writer slot free for less time. No Slack or HTTP here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, bindparam, inspect, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql import Executable
from sqlmodel import Session, SQLModel

from storage.db import is_sqlite, session_scope

T = TypeVar("T")


def row_of(obj: SQLModel) -> dict[str, Any]:
    """The column values of a table model, as a core INSERT takes them."""
    table: Table = obj.__table__  # type: ignore[attr-defined]
    row = {c.name: getattr(obj, c.name) for c in table.columns}
    for c in table.primary_key.columns:
        if row[c.name] is None:
            del row[c.name]  # autoincrement: the database numbers it
    return row


def add_once(session: Session, obj: SQLModel, *, unique: str) -> None:
    """Insert `obj` with `INSERT … ON CONFLICT (unique) DO NOTHING RETURNING` (one statement, no error round).

    The row then belongs to `session` as if loaded, so later changes to `obj` are flushed as UPDATEs. When
    another transaction stored the same `unique` value first, raises IntegrityError exactly as a plain
    INSERT would, so every caller keeps its own answer to a race (the ingest API: 200 with that review).
    """
    table: Table = obj.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    stmt = _insert_once(table, unique, dialect)
    if session.execute(stmt, row_of(obj)).first() is None:
        raise IntegrityError(f"INSERT INTO {table.name}", None, Exception(f"duplicate {unique}"))
    make_transient_to_detached(obj)
    session.add(obj)


@functools.cache
def _insert_once(table: Table, unique: str, dialect: str) -> Executable:
    """Built once per table: a statement built per call spends more time on its cache key than in SQLite."""
    insert = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    return insert.on_conflict_do_nothing(index_elements=[unique]).returning(*table.primary_key.columns)


def add_now(session: Session, obj: SQLModel) -> None:
    """Insert `obj` at once with a core `INSERT … RETURNING` its key, then attach it to `session` as loaded.

    What `session.add(obj); session.flush()` does for one new row, without the unit of work's flush.
    """
    table: Table = obj.__table__  # type: ignore[attr-defined]
    key = session.execute(_insert_returning_key(table), row_of(obj)).first()
    if key is not None:
        for column, value in zip(table.primary_key.columns, key, strict=True):
            setattr(obj, column.name, value)
    make_transient_to_detached(obj)
    session.add(obj)


@functools.cache
def _insert_returning_key(table: Table) -> Executable:
    return table.insert().returning(*table.primary_key.columns)


def insert_rows(session: Session, objs: Sequence[SQLModel]) -> None:
    """Insert new rows of one table in one executemany (the ORM would send them one by one on SQLite)."""
    if not objs:
        return
    table: Table = objs[0].__table__  # type: ignore[attr-defined]
    session.execute(table.insert(), [row_of(o) for o in objs])


def insert_new_in_batches(session: Session, *models: type[SQLModel]) -> None:
    """Send the session's new, not yet flushed rows of each of `models` as one executemany, in the order
    they were added (no ids come back: for rows nobody reads again in this transaction, like audit and
    outbox rows). All are taken out of the session first, so no autoflush sends the later ones one by one."""
    for batch in _take_new(session, models):
        insert_rows(session, batch)


def _take_new(session: Session, models: Sequence[type[SQLModel]]) -> list[list[SQLModel]]:
    """The session's new rows of each of `models` (in the order added), taken out of the session."""
    batches: list[list[SQLModel]] = []
    for model in models:
        new = [o for o in session.new if type(o) is model]
        new.sort(key=lambda o: inspect(o).insert_order)
        for obj in new:
            session.expunge(obj)
        batches.append(new)
    return batches


INSERTED_ROWS = "hitl_inserted_rows"
"""Execution option naming the (table, row) pairs a statement inserts when its parameters do not say it
plainly (add_once_with's one statement for several tables): for listeners that count inserted rows."""


def add_once_with(session: Session, obj: SQLModel, *, unique: str, models: Sequence[type[SQLModel]]) -> None:
    """`add_once(obj)`, then the session's new rows of `models` as `insert_new_in_batches` sends them.

    On PostgreSQL all of it is one statement, one round trip: the other rows' INSERTs go in the WITH of
    `INSERT … ON CONFLICT (unique) DO NOTHING RETURNING` (PostgreSQL runs every data-modifying WITH to
    completion). When `unique` was taken, IntegrityError is raised as add_once raises it, and the caller's
    rollback takes the other rows back out with the rest of the transaction. SQLite has no INSERT in a
    WITH, and no round trips to save: there it is add_once and one executemany per table.
    """
    batches = [
        (b[0].__table__, [row_of(o) for o in b])  # type: ignore[attr-defined]
        for b in _take_new(session, models)
        if b
    ]
    if session.get_bind().dialect.name != "postgresql":
        # The rows are built before the review's INSERT takes SQLite's write lock, not while it is held.
        add_once(session, obj, unique=unique)
        for other, rows in batches:
            session.execute(other.insert(), rows)
        return
    _add_once_with_pg(session, obj, unique, batches)


def _add_once_with_pg(
    session: Session, obj: SQLModel, unique: str, batches: list[tuple[Table, list[dict[str, Any]]]]
) -> None:
    """add_once_with on PostgreSQL: the one statement, its parameters named by table, row and column."""
    table: Table = obj.__table__  # type: ignore[attr-defined]
    head = row_of(obj)
    params = {f"m_{name}": value for name, value in head.items()}
    shape: list[tuple[Table, tuple[str, ...], int]] = []
    for other, rows in batches:
        n = len(shape)
        shape.append((other, tuple(rows[0]), len(rows)))
        for i, row in enumerate(rows):
            params.update({f"w{n}_{i}_{name}": value for name, value in row.items()})
    stmt = _insert_once_with(table, unique, tuple(head), tuple(shape))
    inserted = [(table, head), *((other, row) for other, rows in batches for row in rows)]
    if session.execute(stmt, params, execution_options={INSERTED_ROWS: inserted}).first() is None:
        raise IntegrityError(f"INSERT INTO {table.name}", None, Exception(f"duplicate {unique}"))
    make_transient_to_detached(obj)
    session.add(obj)


@functools.cache
def _insert_once_with(
    table: Table,
    unique: str,
    columns: tuple[str, ...],
    others: tuple[tuple[Table, tuple[str, ...], int], ...],
) -> Executable:
    """Built once per shape (which tables, which columns, how many rows of each), like _insert_once."""
    ctes = []
    for n, (other, names, count) in enumerate(others):
        # INSERT … SELECT …, one SELECT of parameters per row (UNION ALL): a multi-row VALUES would be
        # compiled again at every call (SQLAlchemy does not cache it), which costs more than the round trip.
        rows = [
            select(*(bindparam(f"w{n}_{i}_{name}", type_=other.c[name].type) for name in names))
            for i in range(count)
        ]
        ctes.append(
            other.insert().from_select(names, rows[0] if count == 1 else union_all(*rows)).cte(f"w{n}")
        )
    head = {name: bindparam(f"m_{name}", type_=table.c[name].type) for name in columns}
    return (
        pg_insert(table)
        .values(head)
        .on_conflict_do_nothing(index_elements=[unique])
        .returning(*table.primary_key.columns)
        .add_cte(*ctes)
    )


@contextmanager
def reads_then_write(engine: Engine) -> Iterator[tuple[Session, Session | None]]:
    """(write session, read session or None): on SQLite the reads run beside the write, outside its lock.

    SQLite lets one writer in at a time (BEGIN IMMEDIATE behind a per-process lock, storage/db.py); reads
    made in the write session would hold that slot for their whole length. The read session beside it
    opens no transaction: each SELECT reads its own snapshot and lets it go when it ends, so no snapshot
    outlives the reads. (A read transaction kept open across the write would, at 8 concurrent requests,
    nearly always leave some reader holding an old snapshot: the WAL could then never be checkpointed
    back to its start and would grow without bound.) Nothing read there needs one snapshot: the dedupe
    and the click's status are settled again by the write (ON CONFLICT, WHERE status = 'pending').
    PostgreSQL reads take no lock: one session, one transaction, fewer round trips.
    """
    if not is_sqlite(engine):
        with session_scope(engine) as session:
            yield session, None
        return
    no_begin = engine.execution_options(sqlite_begin="AUTOCOMMIT")  # storage/db.py: BEGIN left out
    with Session(no_begin, expire_on_commit=False) as reads, session_scope(engine) as session:
        yield session, reads


def done_reading(reads: Session | None) -> None:
    """Give the read session's connection back to the pool before the write waits for SQLite's lock.

    Held to the end of the block, every request waiting to write would hold two pooled connections: at
    32 concurrent clicks the pool (40) runs dry and the writes queue for a connection as well as for the
    lock. Objects read there must have been moved to the write session (or be plain values) first.
    """
    if reads is not None:
        reads.close()


def once_more_on_disconnect(work: Callable[[], T]) -> T:
    """Run `work`; if the connection turned out dead (a restarted server), run it once more on a fresh one.

    For idempotent work only (a create deduplicated by its key, a click by its delivery key and the
    conditional update): the pool has already thrown the dead connection away.
    """
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return work()
