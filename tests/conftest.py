"""Shared fixtures: a real database (SQLite always, PostgreSQL when HITL_TEST_POSTGRES_URL is set),
settings built per test, the service under real HTTP, and the local Slack/Zendesk stand-ins."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from bot.app.asgi import create_app
from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import Settings
from sandbox.pg import scratch_database
from sandbox.server import ServerThread
from storage.db import make_engine, normalise_url, upgrade

PG_ENV = "HITL_TEST_POSTGRES_URL"
INGEST_TOKEN = "test-ingest-token"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(PG_ENV):
        return f"PostgreSQL tests: ON ({PG_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({PG_ENV} is not set; .ci/run sets it)"


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 16, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> datetime:
        self.t += timedelta(**kw)
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ------------------------------------------------------------------ databases


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hitl.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests skipped: set {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    with scratch_database(base, "hitl_test") as scratch:
        url = normalise_url(scratch)
        upgrade(url)
        yield url


@pytest.fixture
def pg_url(_pg_database: str) -> str:
    """A PostgreSQL database with the schema, emptied before each test."""
    engine = create_engine(_pg_database)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
    engine.dispose()
    return _pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test on SQLite and (when configured) on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


# ------------------------------------------------------------------ settings and service


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Build Settings from keyword overrides (env names), ignoring the developer's .env."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "HITL_INGEST_TOKEN": INGEST_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            # Nothing listens here: a test that needs Slack passes its stand-in's URL.
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "HITL_OUTBOX_POLL_SECONDS": 0.05,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def slack_standin() -> Iterator[Any]:
    from sandbox.slack_standin import SlackStandin

    standin = SlackStandin(token=BOT_TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture
def zendesk_standin() -> Iterator[Any]:
    from sandbox.zendesk_standin import ZendeskStandin

    standin = ZendeskStandin().start()
    yield standin
    standin.stop()


class Service:
    """The real app under uvicorn on a free port, with an authorised API client."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server = ServerThread(create_app(runtime))
        self.url = self.server.url
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30
        )

    def start(self) -> Service:
        self.server.start()
        return self

    def stop(self) -> None:
        self.api.close()
        self.server.stop()
        self.runtime.engine.dispose()


@pytest.fixture
def start_service() -> Iterator[Callable[..., Service]]:
    """Start services: `start_service(settings, clock=None)`; all are stopped after the test."""
    started: list[Service] = []

    def start(settings: Settings, clock: Any = None) -> Service:
        runtime = build_runtime(settings, clock=clock)
        svc = Service(runtime).start()
        started.append(svc)
        return svc

    yield start
    for svc in reversed(started):
        svc.stop()


def sample_draft(**overrides: Any) -> dict[str, Any]:
    """A valid draft body; override fields per test."""
    body: dict[str, Any] = {
        "ticket_id": f"T{secrets.randbelow(10**9)}",
        "interaction_type": "order_status",
        "confidence": 0.75,
        "customer_message": "Where is my order #1234? It was due Monday.",
        "draft": "Hi! Your order #1234 shipped yesterday and should arrive Thursday.",
        "subject": "Order #1234",
        "customer": {
            "id": f"cus_{secrets.randbelow(10**9)}",
            "name": "Maya Patel",
            "email": "maya@example.com",
            "tier": "standard",
            "account_value": 420.0,
        },
        "ticket_url": "https://northwind.zendesk.com/agent/tickets/1",
    }
    body.update(overrides)
    return body
