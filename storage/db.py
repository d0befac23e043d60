"""Engines, sessions and schema management (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.sql import Executable
from sqlmodel import Session

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaMismatch(Exception):
    """The database schema is not the one this code knows."""


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned per backend: SQLite in WAL with immediate write transactions."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
            **kwargs,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=20, max_overflow=10, pool_pre_ping=True, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, so two readers
    # that both decide to write deadlock (SQLITE_BUSY with no wait). Emit BEGIN IMMEDIATE
    # ourselves: writers queue on the busy timeout instead, which makes conditional updates safe.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    # SQLite lets one writer in at a time, and its busy handler makes the others poll with sleeps of
    # up to 100 ms: at 8 concurrent writers that is most of the p99. Writers of this process queue on
    # a lock instead and are handed the database the moment it is free; other processes still meet
    # at the busy timeout. The wait is bounded, so a lock never held back by a lost release stalls us.
    gate = threading.RLock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode == "IMMEDIATE" and gate.acquire(timeout=30):
            conn.info["hitl_gate"] = True
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Any) -> None:
        if conn.info.pop("hitl_gate", False):
            gate.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def session_scope(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    bind: Any = engine
    if readonly and is_sqlite(engine):
        bind = engine.execution_options(sqlite_begin="DEFERRED")
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (creates it on an empty database)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse a schema this code does not know, saying what to run."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaMismatch("the database has no hitl schema yet: run `hitl db upgrade`")
    known = {
        rev.revision for rev in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()
    }
    if current not in known:
        raise SchemaMismatch(
            f"the database schema is at revision {current}, which this version of hitl does not know "
            f"(newer code migrated it?); upgrade hitl, or point HITL_DATABASE_URL elsewhere"
        )
    raise SchemaMismatch(
        f"the database schema is at {current}, this code needs {head}: run `hitl db upgrade`"
    )


def changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE/DELETE and return how many rows it changed (the answer of a conditional update)."""
    result = session.execute(statement)
    return int(cast(CursorResult[Any], result).rowcount)
