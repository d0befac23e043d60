"""A bad setting or an unreachable database is one line and exit 2 for every command, saying what to fix."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from sandbox.server import free_port
from storage.db import normalise_url, upgrade
from tests.app.cli import hitl

ROOT = Path(__file__).resolve().parents[2]
SERVE_SECRETS = {
    "HITL_INGEST_TOKEN": "t0k3n-long-and-random",
    "SLACK_BOT_TOKEN": "xoxb-1-2-3",
    "SLACK_SIGNING_SECRET": "s3cr3t-sign",
}

COMMANDS = [
    ["serve"],
    ["db", "upgrade"],
    ["db", "current"],
    ["stats"],
    ["review"],
    ["outbox", "list"],
    ["outbox", "retry", "--all-dead"],
    ["audit", "export"],
    ["feedback", "export", "--format", "sft"],
    ["policy", "check"],
    ["doctor"],
]
READ_ONLY = [
    ["stats"],
    ["review"],
    ["outbox", "list"],
    ["audit", "export"],
    ["feedback", "export", "--format", "sft"],
    ["db", "current"],
]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_bad_boolean_is_one_line_naming_the_variable_for_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    out = hitl(*command, env={**SERVE_SECRETS, "HITL_MASK_PII": "maybe"}, cwd=tmp_path)
    assert out.returncode == 2
    assert (
        one_line(out.stderr)
        == "hitl: HITL_MASK_PII: got 'maybe'; accepts true or false (also 1/0, yes/no, on/off)"
    )


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("HITL_HELPDESK", "bogus", "accepts one of 'zendesk'"),
        ("HITL_OPENAI_TIMEOUT", "abc", "accepts a number"),
        ("HITL_OUTBOX_BATCH", "0", "accepts a number greater than or equal to 1"),
        ("HITL_LOG_FORMAT", "xml", "accepts one of 'text' or 'json'"),
    ],
)
def test_serve_names_the_bad_setting_what_it_got_and_what_it_accepts(
    tmp_path: Path, name: str, value: str, accepts: str
) -> None:
    out = hitl("serve", env={**SERVE_SECRETS, name: value}, cwd=tmp_path)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert line.startswith(f"hitl: {name}: got {value!r}; ") and accepts in line


def test_a_bad_value_in_the_env_file_is_reported_like_one_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HITL_OPENAI_TIMEOUT=soon\n")
    out = hitl("stats", cwd=tmp_path)
    assert out.returncode == 2
    assert one_line(out.stderr) == "hitl: HITL_OPENAI_TIMEOUT: got 'soon'; accepts a number"


def test_several_bad_settings_are_one_line_each(tmp_path: Path) -> None:
    out = hitl("stats", env={"HITL_HELPDESK": "bogus", "HITL_MASK_PII": "maybe"}, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in out.stderr
    assert any(line.startswith("hitl: HITL_HELPDESK: got 'bogus'") for line in lines)
    assert any(line.startswith("hitl: HITL_MASK_PII: got 'maybe'") for line in lines)


# ------------------------------------------------------------------ the database URL


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["stats"], ["doctor"]], ids=" ".join)
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("garbage", "HITL_DATABASE_URL: got 'garbage', which is not a database URL; accepts sqlite:///"),
        ("mysql://root@localhost/hitl", "(mysql is not supported); accepts sqlite:///"),
        ("postgresql+pg8000://u@localhost/hitl", "whose driver is not installed"),
    ],
)
def test_an_unusable_database_url_says_which_urls_work(
    tmp_path: Path, command: list[str], url: str, expected: str
) -> None:
    out = hitl(*command, env={**SERVE_SECRETS, "HITL_DATABASE_URL": url}, cwd=tmp_path)
    if command == ["doctor"]:
        database = next(line for line in out.stdout.splitlines() if line.startswith("✗ database: "))
        assert out.returncode == 1 and expected.split(";")[0] in database
        return
    assert out.returncode == 2
    assert expected in one_line(out.stderr)


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["stats"]], ids=" ".join)
def test_a_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/hitl.db"
    out = hitl(*command, env={**SERVE_SECRETS, "HITL_DATABASE_URL": url}, cwd=tmp_path)
    assert out.returncode == 2
    assert f"the folder {tmp_path}/nowhere of the SQLite file does not exist" in one_line(out.stderr)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "command", [["serve"], ["db", "upgrade"], ["stats"], ["db", "current"]], ids=" ".join
)
def test_a_port_with_nothing_listening_says_what_to_start(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/hitl"
    out = hitl(*command, env={**SERVE_SECRETS, "HITL_DATABASE_URL": url}, cwd=tmp_path)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert f"nothing is listening at 127.0.0.1:{port}" in line and "start PostgreSQL there" in line


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["stats"]], ids=" ".join)
def test_a_postgresql_database_that_does_not_exist_says_how_to_create_it(
    tmp_path: Path, command: list[str]
) -> None:
    base = os.environ.get("HITL_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs a PostgreSQL server: set HITL_TEST_POSTGRES_URL")
    missing = f"hitl_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(normalise_url(base)).set(database=missing).render_as_string(hide_password=False)
    out = hitl(*command, env={**SERVE_SECRETS, "HITL_DATABASE_URL": url}, cwd=tmp_path)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert f"has no database {missing!r}: create it (`createdb " in line


# ------------------------------------------------------------------ read-only commands


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_never_create_a_database_file(tmp_path: Path, command: list[str]) -> None:
    out = hitl(*command, cwd=tmp_path)  # the default URL: sqlite:///./hitl.db
    assert out.returncode == 2
    assert one_line(out.stderr) == (
        f"hitl: there is no database at {tmp_path}/hitl.db: run `hitl db upgrade` to create it, "
        "or point HITL_DATABASE_URL at yours"
    )
    assert list(tmp_path.iterdir()) == []


def test_doctor_reports_a_missing_database_without_creating_it(tmp_path: Path) -> None:
    out = hitl("doctor", cwd=tmp_path)
    assert out.returncode == 1
    assert f"✗ database: there is no database at {tmp_path}/hitl.db: run `hitl db upgrade`" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_after_db_upgrade_the_read_only_commands_work(tmp_path: Path) -> None:
    env = {"HITL_DATABASE_URL": f"sqlite:///{tmp_path}/hitl.db"}
    upgrade(env["HITL_DATABASE_URL"])
    for command in READ_ONLY:
        out = hitl(*command, env=env, cwd=tmp_path)
        assert out.returncode == 0, (command, out.stderr)


# ------------------------------------------------------------------ placeholders


def test_serve_refuses_the_env_example_as_copied(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    out = hitl("serve", cwd=tmp_path)
    assert out.returncode == 2
    assert one_line(out.stderr) == (
        "hitl: HITL_INGEST_TOKEN still holds the placeholder 'change-me-to-a-long-random-string' "
        "from .env.example: set the real value (see the README's Settings)"
    )
    assert not (tmp_path / "hitl.db").exists()


@pytest.mark.parametrize(
    ("name", "placeholder"),
    [("SLACK_BOT_TOKEN", "xoxb-..."), ("SLACK_SIGNING_SECRET", "..."), ("SLACK_APP_TOKEN", "xapp-…")],
)
def test_serve_refuses_each_placeholder_secret_by_name(tmp_path: Path, name: str, placeholder: str) -> None:
    env = {**SERVE_SECRETS, "SLACK_APP_TOKEN": "xapp-1-real", name: placeholder}
    out = hitl("serve", "--socket", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert one_line(out.stderr).startswith(f"hitl: {name} still holds the placeholder {placeholder!r}")
