"""`hitl doctor` through the real CLI against the Slack, Zendesk and OpenAI stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.responses import Response

from bot.app.doctor import NEEDED_SCOPES
from bot.app.settings import BUNDLED_POLICY
from sandbox.freshdesk_standin import FreshdeskStandin
from sandbox.openai_standin import OpenAIStandin
from sandbox.server import ServerThread, free_port
from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import ZendeskStandin
from storage.db import upgrade
from tests.app.cli import hitl

ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "xoxb-doctor-test"
GROUP, USER = "S0APPROVE1", "U0ANA00001"
CHANNELS = (
    "#support-review",
    "#support-billing",
    "#support-vip",
    "#support-priority",
    "#support-supervisors",
    "#support-managers",
    "#support-qa",
)


@dataclass
class World:
    """A working setup: database at the schema, Slack with every channel and person, Zendesk, a model."""

    tmp: Path
    slack: SlackStandin
    zendesk: ZendeskStandin
    model: OpenAIStandin
    env: dict[str, str]

    def doctor(self, **overrides: str) -> tuple[int, list[str]]:
        out = hitl("doctor", env={**self.env, **overrides}, cwd=self.tmp)
        assert out.stderr == "", out.stderr  # the report is the output: no log noise, no traceback
        return out.returncode, out.stdout.strip().splitlines()


def _policy(tmp: Path) -> Path:
    text = BUNDLED_POLICY.read_text().replace(
        "approvers: {usergroups: [], users: []}", f"approvers: {{usergroups: [{GROUP}], users: [{USER}]}}", 1
    )
    path = tmp / "policy.yml"
    path.write_text(text)
    return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    slack = SlackStandin(token=BOT_TOKEN).start()
    zendesk = ZendeskStandin().start()
    model = OpenAIStandin().start()
    for channel in CHANNELS:
        slack.add_channel(channel)
    slack.add_user(USER, "ana", "ana@example.com")
    slack.add_usergroup(GROUP, [USER])
    db = f"sqlite:///{tmp_path}/hitl.db"
    upgrade(db)
    env = {
        "HITL_DATABASE_URL": db,
        "HITL_POLICY_FILE": str(_policy(tmp_path)),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.base_url,
        "HITL_HELPDESK": "zendesk",
        "ZENDESK_URL": zendesk.base_url,
        "ZENDESK_EMAIL": zendesk.email,
        "ZENDESK_API_TOKEN": zendesk.api_token,
        "OPENAI_API_KEY": model.api_key,
        "OPENAI_BASE_URL": model.base_url,
    }
    yield World(tmp_path, slack, zendesk, model, env)
    model.stop()
    zendesk.stop()
    slack.stop()


def _line(lines: list[str], start: str) -> str:
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_a_working_setup_passes_every_check_and_exits_0(world: World) -> None:
    code, lines = world.doctor()
    assert code == 0, lines
    assert lines[-1] == "all checks passed"
    assert all(line.startswith("✓ ") for line in lines[:-2]), lines
    expected = {
        "✓ policy:": "is valid (version 1)",
        "✓ database:": "reachable, schema at",
        "✓ Slack token:": "valid: bot hitl in workspace HITL Sandbox",
        "✓ Slack scopes:": f"all {len(NEEDED_SCOPES)} the app needs are granted",
        **{f"✓ Slack channel {channel}:": "exists; the bot is a member" for channel in CHANNELS},
        f"✓ Slack user group {GROUP}:": "resolves",
        f"✓ Slack user {USER}:": "resolves (ana)",
        "✓ Zendesk:": "signed in as bot@example.com (admin)",
        "✓ model:": "answers",
    }
    assert {start: fragment in _line(lines, start) for start, fragment in expected.items()} == dict.fromkeys(
        expected, True
    )


def test_doctor_only_reads(world: World) -> None:
    assert world.doctor()[0] == 0
    assert world.slack.messages() == []  # nothing posted to Slack
    assert {r["method"] for r in world.zendesk.requests()} == {"GET"}  # nothing written to Zendesk


def test_a_wrong_slack_token_fails_with_where_to_get_the_right_one(world: World) -> None:
    code, lines = world.doctor(SLACK_BOT_TOKEN="xoxb-revoked")
    assert code == 1 and lines[-1] == "1 check failed"
    line = _line(lines, "✗ Slack token:")
    assert "Slack refused the token (invalid_auth)" in line
    assert "fix: copy the Bot User OAuth Token (xoxb-...)" in line


def test_a_missing_tier_channel_is_named_with_a_fix(world: World) -> None:
    policy = Path(world.env["HITL_POLICY_FILE"])
    policy.write_text(policy.read_text().replace('channel: "#support-vip"', 'channel: "#support-vip-typo"'))
    code, lines = world.doctor()
    assert code == 1 and lines[-1] == "1 check failed"
    line = _line(lines, "✗ Slack channel #support-vip-typo:")
    assert "not found" in line and "fix: create it, fix the name in the policy" in line
    assert _line(lines, "✓ Slack channel #support-review:")


def test_a_private_channel_without_the_bot_says_to_invite_it(world: World) -> None:
    world.slack.add_channel("#support-legal", is_private=True, is_member=False)
    code, lines = world.doctor(HITL_OPS_CHANNEL="#support-legal")
    assert code == 1
    line = _line(lines, "✗ Slack channel #support-legal:")
    assert "the bot is not a member and cannot post there — fix: `/invite @hitl` in #support-legal" in line


def test_missing_scopes_are_listed(world: World) -> None:
    world.slack.scopes = [s for s in world.slack.scopes if s not in ("usergroups:read", "chat:write.public")]
    world.slack.add_channel("#support-outside", is_member=False)
    code, lines = world.doctor(HITL_MANAGERS_CHANNEL="#support-outside")
    assert code == 1
    line = _line(lines, "✗ Slack scopes:")
    assert "the token lacks chat:write.public, usergroups:read" in line and "reinstall the app" in line
    # without chat:write.public a public channel the bot has not joined is not postable either
    assert _line(lines, "✗ Slack channel #support-outside:")


def test_an_unknown_user_group_and_user_fail_by_id(world: World) -> None:
    policy = Path(world.env["HITL_POLICY_FILE"])
    policy.write_text(policy.read_text().replace(GROUP, "S0NOSUCH01").replace(USER, "U0NOSUCH01"))
    code, lines = world.doctor()
    assert code == 1 and lines[-1] == "2 checks failed"
    assert "no such user group" in _line(lines, "✗ Slack user group S0NOSUCH01:")
    assert "does not resolve (user_not_found)" in _line(lines, "✗ Slack user U0NOSUCH01:")


def test_a_wrong_zendesk_token_fails_naming_the_settings(world: World) -> None:
    code, lines = world.doctor(ZENDESK_API_TOKEN="wrong")
    assert code == 1
    line = _line(lines, "✗ Zendesk:")
    assert "Zendesk refused the credentials (401)" in line and "ZENDESK_EMAIL and ZENDESK_API_TOKEN" in line


def test_a_model_that_is_down_fails_the_model_check(world: World) -> None:
    code, lines = world.doctor(OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    assert code == 1
    line = _line(lines, "✗ model:")
    assert (
        "no answer from http://127.0.0.1:" in line
        and "fix: start the model server or fix OPENAI_BASE_URL" in line
    )


def test_a_wrong_model_key_fails_the_model_check(world: World) -> None:
    code, lines = world.doctor(OPENAI_API_KEY="sk-wrong-key")
    assert code == 1
    assert "refused OPENAI_API_KEY (401)" in _line(lines, "✗ model:")


def test_an_invalid_policy_fails_and_says_how_to_see_every_error(world: World) -> None:
    policy = Path(world.env["HITL_POLICY_FILE"])
    policy.write_text(policy.read_text().replace("  sample_rate: 0.10", "  sample_rat: 0.10"))
    code, lines = world.doctor()
    assert code == 1
    line = _line(lines, "✗ policy:")
    assert "qa.sample_rat: unknown key" in line and "`hitl policy check" in line


def test_a_database_behind_the_schema_says_to_upgrade(world: World, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    code, lines = world.doctor(HITL_DATABASE_URL=f"sqlite:///{empty}")
    assert code == 1
    assert "run `hitl db upgrade`" in _line(lines, "✗ database:")


def test_a_webhook_helpdesk_is_checked_for_an_answer(world: World) -> None:
    receiver = FastAPI()

    @receiver.api_route("/hitl", methods=["HEAD", "POST"])
    def hook() -> Response:
        return Response(status_code=204)

    env = {"HITL_HELPDESK": "webhook", "HELPDESK_WEBHOOK_SECRET": "whsec-long-enough"}
    with ServerThread(receiver) as server:
        code, lines = world.doctor(**env, HELPDESK_WEBHOOK_URL=f"{server.url}/hitl")
    assert code == 0, lines
    assert "answers (HTTP 204)" in _line(lines, "✓ helpdesk webhook:")
    code, lines = world.doctor(**env, HELPDESK_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hitl")
    assert code == 1
    assert "nothing answers at" in _line(lines, "✗ helpdesk webhook:")


def test_the_scopes_doctor_asks_for_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert sorted(NEEDED_SCOPES) == sorted(manifest["oauth_config"]["scopes"]["bot"])


def test_the_managers_user_group_is_checked_too(world: World) -> None:
    policy = Path(world.env["HITL_POLICY_FILE"])
    text = policy.read_text()
    assert "  usergroups: []          # e.g." in text
    policy.write_text(
        text.replace("  usergroups: []          # e.g.", "  usergroups: [S0LEADS001]  # e.g.", 1)
    )
    code, lines = world.doctor()
    assert code == 1
    assert "no such user group" in _line(lines, "✗ Slack user group S0LEADS001:")
    world.slack.add_usergroup("S0LEADS001", [USER])
    code, lines = world.doctor()
    assert code == 0 and _line(lines, "✓ Slack user group S0LEADS001:")


def test_a_freshdesk_helpdesk_is_checked_with_its_adapter(world: World) -> None:
    freshdesk = FreshdeskStandin().start()
    try:
        env = {"HITL_HELPDESK": "freshdesk", "FRESHDESK_DOMAIN": freshdesk.base_url}
        code, lines = world.doctor(**env, FRESHDESK_API_KEY=freshdesk.api_key)
        assert code == 0, lines
        assert "API key of agent" in _line(lines, "✓ helpdesk freshdesk:")
        code, lines = world.doctor(**env, FRESHDESK_API_KEY="fd-wrong-key")
    finally:
        freshdesk.stop()
    assert code == 1
    assert "fix: check the HITL_HELPDESK=freshdesk settings" in _line(lines, "✗ helpdesk freshdesk:")
