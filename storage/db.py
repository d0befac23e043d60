"""Engines, sessions and schema management (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.sql import Executable
from sqlmodel import Session

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaMismatch(Exception):
    """The database schema is not the one this code knows."""


class DatabaseUnavailable(Exception):
    """The database cannot be opened or reached; the message says what to fix (one line)."""


ACCEPTED_URLS = "sqlite:///path/to/hitl.db or postgresql://user:password@host:5432/dbname"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def checked_url(url: str) -> URL:
    """The parsed URL, or DatabaseUnavailable saying which URLs are accepted."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise DatabaseUnavailable(
            f"HITL_DATABASE_URL: got {url!r}, which is not a database URL; accepts {ACCEPTED_URLS}"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseUnavailable(
            f"HITL_DATABASE_URL: got {safe_url(url)!r} ({parsed.get_backend_name()} is not supported); "
            f"accepts {ACCEPTED_URLS}"
        )
    return parsed


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    name = parsed.database or ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _check_sqlite_file(parsed: URL, *, must_exist: bool) -> None:
    path = _sqlite_file(parsed)
    if path is None:
        return
    if not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"HITL_DATABASE_URL: the folder {path.parent} of the SQLite file does not exist: "
            "create it, or point HITL_DATABASE_URL at an existing folder"
        )
    if must_exist and not path.exists():
        raise DatabaseUnavailable(
            f"there is no database at {path.absolute()}: run `hitl db upgrade` to create it, "
            "or point HITL_DATABASE_URL at yours"
        )


def make_engine(url: str, *, must_exist: bool = False, **kwargs: Any) -> Engine:
    """An engine tuned per backend: SQLite in WAL with immediate write transactions.

    A URL that is not one we serve raises DatabaseUnavailable; with `must_exist` (read-only commands) a
    missing SQLite file does too, instead of being created empty.
    """
    parsed = checked_url(url)
    url = normalise_url(url)
    try:
        return _create(url, parsed, must_exist=must_exist, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUnavailable(
            f"HITL_DATABASE_URL: got {safe_url(url)!r}, whose driver is not installed ({exc}); "
            f"accepts {ACCEPTED_URLS}"
        ) from None


def _create(url: str, parsed: URL, *, must_exist: bool, **kwargs: Any) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed, must_exist=must_exist)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
            **kwargs,
        )
        _tune_sqlite(engine)
        return engine
    kwargs.setdefault("connect_args", {"connect_timeout": 10})
    engine = create_engine(url, pool_size=20, max_overflow=10, **kwargs)
    _ping_when_idle(engine)
    return engine


IDLE_BEFORE_PING = 10.0
"""Seconds a pooled PostgreSQL connection may sit unused before its next checkout pings it first."""


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout only when it sat idle for IDLE_BEFORE_PING seconds or more.

    SQLAlchemy's `pool_pre_ping` sends a round trip before every checkout: about 9% of an ingest request.
    A connection in steady use has just proved itself alive; one left idle may have been closed by a
    server restart, a failover or a proxy's idle timeout, and is pinged. A connection that dies while in
    use (a restart under load) fails its statement once: SQLAlchemy then invalidates every connection
    the pool held before that moment, and the hot paths (ingest, clicks) run their idempotent work once
    more on a fresh one (storage.fastpath.once_more_on_disconnect).
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["hitl_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("hitl_idle_since")
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return  # new, or back in the pool a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            # The pool throws this connection away and checks out another (up to three tries).
            raise DisconnectionError(
                f"pooled connection found dead after {IDLE_BEFORE_PING:.0f} s idle"
            ) from exc


@contextmanager
def reachable(url: str) -> Iterator[None]:
    """Turn a failure to connect into DatabaseUnavailable saying what could not be reached and what to fix."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(explain_unreachable(url, str(exc.orig or exc))) from None


_UNREACHABLE: tuple[tuple[str, str], ...] = (
    (
        r'database "[^"]+" does not exist',
        "PostgreSQL at {where} has no database {db!r}: create it "
        "(`createdb -h {host} -p {port} -U {user} {db}`) or fix the name in HITL_DATABASE_URL",
    ),
    (
        r"connection refused",
        "nothing is listening at {where} ({url}): start PostgreSQL there, "
        "or fix the host and port in HITL_DATABASE_URL",
    ),
    (
        r"resolve host|name or service not known|nodename nor servname",
        "the database host {host!r} cannot be resolved ({url}): fix the host in HITL_DATABASE_URL",
    ),
    (
        r'password authentication failed|role "[^"]+" does not exist|no password supplied',
        "PostgreSQL at {where} refused user {user!r}: fix the user and password in HITL_DATABASE_URL",
    ),
    (
        r"timeout expired|timed out",
        "no answer from {where} within 10 s ({url}): check that PostgreSQL "
        "runs there and a firewall lets you in",
    ),
    (
        r"unable to open database file",
        "cannot open the SQLite file {db}: check that its folder exists "
        "and is writable, or fix HITL_DATABASE_URL",
    ),
)


def explain_unreachable(url: str, error: str) -> str:
    """One line: what could not be reached and how to fix it."""
    parsed = make_url(normalise_url(url))
    facts = {
        "url": safe_url(url),
        "host": parsed.host or "localhost",
        "port": parsed.port or 5432,
        "user": parsed.username or "",
        "db": parsed.database or "",
    }
    facts["where"] = f"{facts['host']}:{facts['port']}"
    for pattern, message in _UNREACHABLE:
        if re.search(pattern, error, re.IGNORECASE):
            return message.format(**facts)
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return f"cannot reach the database {facts['url']}: {first}"


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
    # The lock belongs to the connection's transaction, not to a thread (a plain Lock, released by
    # whichever thread ends the transaction).
    gate = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode == "AUTOCOMMIT":
            return  # reads only, each statement its own snapshot (storage.fastpath.reads_then_write)
        if mode == "IMMEDIATE" and gate.acquire(timeout=30):
            conn.info["hitl_gate"] = True
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Any) -> None:
        try:
            held = conn.info.pop("hitl_gate", False)  # a Connection, or the pool's proxy of its DBAPI one
        except NotImplementedError:
            return  # the ad-hoc proxy of a first connect, which never began through us
        if held:
            gate.release()

    # The lock is handed on once COMMIT or ROLLBACK has run, not before: SQLAlchemy's commit and rollback
    # events fire before the statement, and a writer let in then would find SQLite still locked and
    # sleep in the busy handler after all. The pool's reset-on-return goes through do_rollback too.
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _commit_then_release(dbapi_conn: Any) -> None:
        try:
            commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def _rollback_then_release(dbapi_conn: Any) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_commit = _commit_then_release  # type: ignore[method-assign,assignment]
    dialect.do_rollback = _rollback_then_release  # type: ignore[method-assign,assignment]


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
    make_engine(url).dispose()  # refuses a URL we do not serve or a SQLite folder that is missing
    with reachable(url):
        command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with reachable(engine.url.render_as_string(hide_password=False)), engine.connect() as conn:
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
