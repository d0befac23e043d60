"""The `hitl` command as a user runs it, and the schema guard at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app.runtime import build_runtime
from bot.app.settings import BUNDLED_POLICY, Settings
from storage.db import SchemaMismatch, head_revision, make_engine, upgrade


def hitl(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "SLACK_", "ZENDESK_", "OPENAI_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        cwd=cwd,
    )


def test_policy_check_prints_the_routing_table() -> None:
    out = hitl("policy", "check", str(BUNDLED_POLICY))
    assert out.returncode == 0
    assert "valid policy" in out.stdout and "privacy" in out.stdout and "never (human only)" in out.stdout


def test_policy_check_names_the_bad_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BUNDLED_POLICY.read_text().replace("  sample_rate: 0.10", "  sample_rat: 0.10"))
    out = hitl("policy", "check", str(bad))
    assert out.returncode == 2
    assert "qa.sample_rat: unknown key" in out.stderr and f"{bad}:" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_refuses_to_start_without_a_secret_naming_it(tmp_path: Path) -> None:
    out = hitl(
        "serve",
        env={"HITL_INGEST_TOKEN": "t", "HITL_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "SLACK_BOT_TOKEN is not set" in out.stderr


def test_serve_refuses_a_database_without_the_schema_saying_what_to_run(tmp_path: Path) -> None:
    env = {
        "HITL_INGEST_TOKEN": "t",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "HITL_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    out = hitl("serve", env=env, cwd=tmp_path)
    assert out.returncode == 2 and "run `hitl db upgrade`" in out.stderr
    assert hitl("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert hitl("db", "current", env=env, cwd=tmp_path).returncode == 0


def test_an_unknown_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(SchemaMismatch, match="does not know"):
        build_runtime(Settings(_env_file=None, HITL_DATABASE_URL=url), engine=engine)  # type: ignore[call-arg]


def test_migrations_run_on_postgresql_too(pg_url: str) -> None:
    upgrade(pg_url)  # idempotent on an up-to-date schema
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
    engine.dispose()


@pytest.mark.parametrize("command", [["feedback", "export", "--format", "sft"], ["audit", "export"]])
def test_exports_to_an_unwritable_file_fail_with_one_line(tmp_path: Path, command: list[str]) -> None:
    env = {"HITL_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    assert hitl("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    out = hitl(*command, "-o", str(tmp_path / "missing" / "out.jsonl"), env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"hitl: -o {tmp_path / 'missing' / 'out.jsonl'}: No such file or directory"
