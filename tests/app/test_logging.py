"""Logs: JSON lines when asked, with the ids that are known, and never a secret or a customer's words."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from bot.app.logging import configure_logging, log_context
from sandbox.server import free_port
from sandbox.slack_standin import SlackStandin
from storage.db import make_engine, session_scope, upgrade
from storage.models import OutboxItem, OutboxStatus
from tests.app.cli import clean_env
from tests.conftest import sample_draft, wait_for

INGEST = "ingest-secret-4b1d9e"
BOT = "xoxb-1111-2222-secretbot"
SIGNING = "signing-secret-77aa"
CUSTOMER_WORDS = "my card 4242 and my neighbour Priscilla Quartermaine"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(level=logging.INFO, fmt="json", instance_id="replica-2", secrets=[INGEST])
    yield capsys
    configure_logging()  # back to quiet text for the tests that follow


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_json_lines_carry_time_level_logger_message_and_the_known_ids(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("hitl.test")
    with log_context(ticket_id="48109"):
        log.info("review posted", extra={"review_id": "rev-1"})
    log.warning("no context here")
    first, second = _lines(json_logs)
    assert first["level"] == "INFO" and first["logger"] == "hitl.test" and first["message"] == "review posted"
    assert (
        first["review_id"] == "rev-1"
        and first["ticket_id"] == "48109"
        and first["instance_id"] == "replica-2"
    )
    assert str(first["time"]).endswith("+00:00")
    assert "review_id" not in second and "ticket_id" not in second and second["instance_id"] == "replica-2"


def test_tokens_and_configured_secrets_are_redacted_even_in_tracebacks(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    log = logging.getLogger("hitl.test")
    log.warning("Slack said no for xoxb-9999-8888-abcdef, OpenAI for sk-proj-abcdefghijklmnop")
    log.warning("connecting to postgresql://hitl:hunter2pass@db/hitl with Bearer %s", INGEST)
    try:
        raise RuntimeError(f"token={INGEST}&next=1")
    except RuntimeError:
        log.exception("failed")
    text = json.dumps(_lines(json_logs))
    for leaked in ("xoxb-9999", "sk-proj-abc", "hunter2pass", INGEST):
        assert leaked not in text
    assert text.count("[redacted]") >= 5


def test_text_format_redacts_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level=logging.INFO, fmt="text", secrets=[INGEST])
    try:
        with log_context(review_id="rev-9"):
            logging.getLogger("hitl.test").info("sent with %s", INGEST)
        line = capsys.readouterr().err.strip()
    finally:
        configure_logging()
    assert line.endswith("INFO hitl.test: sent with [redacted] [review=rev-9]")


# ------------------------------------------------------------------ the real service


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    standin = SlackStandin(token=BOT).start()
    yield standin
    standin.stop()


class Serving:
    """`hitl serve` in a subprocess with JSON logs; `stop()` returns its log lines, parsed."""

    def __init__(self, tmp_path: Path, slack: SlackStandin, bot_token: str) -> None:
        self.db = f"sqlite:///{tmp_path}/hitl.db"
        upgrade(self.db)
        self.base = f"http://127.0.0.1:{free_port()}"
        env = {
            "HITL_DATABASE_URL": self.db,
            "HITL_INGEST_TOKEN": INGEST,
            "SLACK_BOT_TOKEN": bot_token,
            "SLACK_SIGNING_SECRET": SIGNING,
            "SLACK_API_URL": slack.base_url,
            "HITL_LOG_FORMAT": "json",
            "HITL_INSTANCE_ID": "replica-7",
            "HITL_OUTBOX_POLL_SECONDS": "0.05",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", "serve", "--port", self.base.rsplit(":", 1)[1]],
            cwd=tmp_path,
            env=clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""
        wait_for(lambda: _healthy(self.base, self.proc), timeout=60, what="hitl serve to answer /healthz")

    def post_draft(self) -> str:
        draft = sample_draft(customer_message=f"Refund please, {CUSTOMER_WORDS}", confidence=0.7)
        resp = httpx.post(f"{self.base}/v1/drafts", json=draft, headers={"Authorization": f"Bearer {INGEST}"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def stop(self) -> list[dict[str, str]]:
        self.proc.send_signal(signal.SIGINT)
        _, self.stderr = self.proc.communicate(timeout=60)
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]  # every line is JSON


def test_serve_with_json_logs_writes_only_json_and_no_secret_or_customer_text(
    tmp_path: Path, slack: SlackStandin
) -> None:
    service = Serving(tmp_path, slack, BOT)
    try:
        service.post_draft()
        wait_for(lambda: slack.messages(), timeout=30, what="the review card in Slack")
    finally:
        lines = service.stop()
    assert lines, service.stderr
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line["instance_id"] == "replica-7" for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines too
    for leaked in (INGEST, BOT, SIGNING, "Priscilla", "4242"):
        assert leaked not in service.stderr


def test_a_failed_delivery_is_logged_with_its_review_id_and_without_the_token(
    tmp_path: Path, slack: SlackStandin
) -> None:
    revoked = "xoxb-4444-5555-revokedtoken"  # Slack answers invalid_auth: the card is dead-lettered
    service = Serving(tmp_path, slack, revoked)
    try:
        review_id = service.post_draft()
        engine = make_engine(service.db)
        wait_for(lambda: _dead_rows(engine), timeout=30, what="the review card to be dead-lettered")
        engine.dispose()
    finally:
        lines = service.stop()
    dead = [line for line in lines if "dead-lettered" in line["message"]]
    assert dead and dead[0]["level"] == "ERROR" and dead[0]["review_id"] == review_id, lines
    assert revoked not in service.stderr and "Priscilla" not in service.stderr


def _dead_rows(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return len(session.execute(select(OutboxItem).where(OutboxItem.status == OutboxStatus.DEAD)).all())


def _healthy(base: str, proc: subprocess.Popen[str]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"hitl serve exited: {proc.stderr.read() if proc.stderr else ''}")
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
