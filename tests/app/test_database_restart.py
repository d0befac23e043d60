"""PostgreSQL connections that the server dropped (a restart, a failover, an idle timeout) cost no request.

Pooled connections are not pinged before every checkout (a round trip per request): only one that sat
idle for `IDLE_BEFORE_PING` seconds is. One dropped while in steady use fails its statement once; the
pool then drops every connection it held, and ingest and clicks run once more on a fresh one. The
server side is real: `pg_terminate_backend` closes the service's connections as a restart would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError

from bot.slack.ids import ActionId
from storage import db
from storage.db import make_engine
from tests.slack import conftest as slack_fixtures
from tests.slack.conftest import Loop

make_loop = slack_fixtures.make_loop


def drop_connections(url: str, pids: set[int] | None = None) -> int:
    """Close the connections `pids` (default: every other one) to the test database from the server side,
    as a restart does."""
    admin = create_engine(db.normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            dropped = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND (CAST(:pids AS int[]) IS NULL OR pid = ANY(CAST(:pids AS int[])))"
                ),
                {"pids": sorted(pids) if pids is not None else None},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(dropped)


def backend_pid(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_idle_past_the_limit_is_pinged_and_replaced_without_an_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(pg_url)
    connects: list[int] = []
    event.listen(engine, "connect", lambda *_: connects.append(1))
    try:
        first = backend_pid(engine)
        assert drop_connections(pg_url) >= 1
        monkeypatch.setattr(db, "IDLE_BEFORE_PING", 0.0)  # every checkout counts as idle
        second = backend_pid(engine)  # pinged, found dead, replaced: no error reaches us
        assert second != first and len(connects) == 2
        assert backend_pid(engine) == second  # alive: pinged and kept
        assert len(connects) == 2
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_one_failure_renews_the_whole_pool(
    pg_url: str,
) -> None:
    engine = make_engine(pg_url)
    try:
        held = [engine.connect() for _ in range(3)]
        pids = {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in held}
        for c in held:
            c.close()  # three connections back in the pool a moment ago
        assert drop_connections(pg_url) >= 3
        # Not idle, so not pinged: the first statement meets the dead connection (what the hot paths
        # retry once), and SQLAlchemy invalidates every connection pooled before that moment ...
        with pytest.raises(DBAPIError) as failed:
            backend_pid(engine)
        assert failed.value.connection_invalidated
        # ... so the next checkouts get new ones, not the other two dead connections.
        held = [engine.connect() for _ in range(3)]
        fresh = {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in held}
        for c in held:
            c.close()
        assert not fresh & pids
    finally:
        engine.dispose()


def test_ingest_and_clicks_go_on_when_the_database_dropped_their_connections(
    make_loop: Callable[..., Loop], pg_url: str
) -> None:
    worker = make_loop(HITL_DATABASE_URL=pg_url)  # posts the cards and delivers
    api = make_loop(HITL_DATABASE_URL=pg_url, HITL_OUTBOX_WORKER=False, HITL_SCHEDULER=False)
    engine = api.runtime.engine
    pids: set[int] = set()
    event.listen(engine, "connect", lambda conn, _record: pids.add(conn.info.backend_pid))
    engine.dispose()  # from here on every connection of the API replica is known by its server pid
    first = api.post_draft()
    card = worker.card(first)

    assert drop_connections(pg_url, pids) >= 1
    second = api.post_draft()  # its first statement fails on a dead connection, then runs again: 201
    assert drop_connections(pg_url, pids) >= 1
    assert api.click(card, ActionId.APPROVE).status_code == 200  # recorded on the second try
    decided = worker.decided(first, timeout=30)
    assert decided.status == "approved" and worker.decisions(first) == 1
    assert len(worker.audits("click", first)) == 1  # once, not once per try

    assert worker.card(second, timeout=30)["ts"]
    assert worker.count(type(decided)) == 2  # both drafts stored once


def test_the_outbox_worker_goes_on_after_the_database_dropped_every_connection(
    make_loop: Callable[..., Loop], pg_url: str
) -> None:
    loop = make_loop(HITL_DATABASE_URL=pg_url)
    first = loop.post_draft()
    loop.card(first)
    assert drop_connections(pg_url) >= 1  # the worker's, the scheduler's and the API's
    second = loop.post_draft()
    assert loop.card(second, timeout=30)["ts"]
    loop.settled()
