"""Managers-only reports: `/hitl stats`, `queue`, `review`, `digest` (and the chart) answer only the
policy's `managers`, others are refused ephemerally and audited; signed slash commands over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlmodel import col

from bot.app.settings import BUNDLED_POLICY
from sandbox.slack_sim import SlackSim, slash_command_form
from storage.db import make_engine, session_scope
from storage.models import AuditEvent
from tests.conftest import SIGNING_SECRET, FakeClock, Service, wait_for
from tests.reporting.factory import NOW, Store, known_week

LEADS = "S0SUPPORTLEADS"
IN_GROUP = "U0LEAD1"  # a manager through the user group
LISTED = "U0HEADOFSUP"  # a manager listed by id
AGENT = "U0AGENT7"  # in the workspace, not a manager
CHANNEL = "C0SUPPORT"
REFUSED = "is for managers (policy: `managers`)"


def policy_file(tmp_path: Path, managers: dict[str, list[str]] | None) -> Path:
    """The bundled policy with `managers` set (None: left as bundled, i.e. empty)."""
    data = yaml.safe_load(BUNDLED_POLICY.read_text())
    if managers is not None:
        data["managers"] = managers
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def start(
    sqlite_url: str,
    tmp_path: Path,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> Iterator[Callable[[dict[str, list[str]] | None], SlackSim]]:
    """Start the service with a `managers` list; returns a signed Slack client for it."""
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        known_week(Store(session))
    engine.dispose()
    slack_standin.add_usergroup(LEADS, [IN_GROUP, "U0LEAD2"])
    clients = ExitStack()

    def run(managers: dict[str, list[str]] | None) -> SlackSim:
        svc = start_service(
            make_settings(
                SLACK_API_URL=slack_standin.base_url,
                HITL_DATABASE_URL=sqlite_url,
                HITL_POLICY_FILE=str(policy_file(tmp_path, managers)),
            ),
            clock=FakeClock(NOW),
        )
        return clients.enter_context(SlackSim(svc.url, SIGNING_SECRET))

    with clients:
        yield run


MANAGERS = {"usergroups": [LEADS], "users": [LISTED]}


def command(sim: SlackSim, text: str, user: str) -> Any:
    resp = sim.post_command(slash_command_form(text=text, user_id=user, channel_id=CHANNEL))
    assert resp.status_code == 200
    return resp


def ephemeral(standin: Any, user: str, contains: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: next((e for e in standin.ephemerals(user) if contains in e["text"]), None),
        what=f"an ephemeral to {user} with {contains!r}",
    )
    return found


def refusals(db_url: str) -> list[AuditEvent]:
    engine = make_engine(db_url)
    with session_scope(engine, readonly=True) as session:
        rows = list(
            session.execute(select(AuditEvent).where(col(AuditEvent.action) == "report_refused")).scalars()
        )
        for row in rows:
            session.expunge(row)
    engine.dispose()
    return rows


def test_a_manager_in_the_managers_user_group_gets_the_figures(
    start: Callable[..., SlackSim], slack_standin: Any
) -> None:
    sim = start(MANAGERS)
    command(sim, "stats 7d", IN_GROUP)
    e = ephemeral(slack_standin, IN_GROUP, "hitl stats")
    assert "12 drafts in 7d" in e["text"] and "8 by humans" in str(e["blocks"])


def test_a_manager_listed_by_id_gets_the_queue_and_the_review(
    start: Callable[..., SlackSim], slack_standin: Any
) -> None:
    sim = start(MANAGERS)
    command(sim, "queue", LISTED)
    assert "billing" in str(ephemeral(slack_standin, LISTED, "Queue · 2 pending")["blocks"])
    command(sim, "review 7d", LISTED)
    assert "order_status" in str(ephemeral(slack_standin, LISTED, "Oversight review")["blocks"])


@pytest.mark.parametrize("text", ["stats 7d", "stats 30d chart", "queue", "review 7d", "digest"])
def test_anyone_else_is_refused_ephemerally_and_sees_no_figures(
    start: Callable[..., SlackSim], slack_standin: Any, sqlite_url: str, text: str
) -> None:
    sim = start(MANAGERS)
    command(sim, text, AGENT)
    e = ephemeral(slack_standin, AGENT, REFUSED)
    assert e["text"].startswith(f":lock: `/hitl {text.split()[0]}` {REFUSED}")
    assert f"<!subteam^{LEADS}>" in e["text"] and f"<@{LISTED}>" in e["text"]
    time.sleep(0.3)  # anything else the listener was going to post has had time to arrive
    shown = slack_standin.ephemerals(AGENT)
    assert len(shown) == 1, shown
    for leak in ("drafts", "Queue", "Oversight", "pending", "digest", "error rate"):
        assert leak not in str(shown[0]["blocks"]).replace("/hitl digest", "")
    assert slack_standin.files() == []
    audit = refusals(sqlite_url)
    assert [(a.actor, a.detail["command"], a.detail["channel"]) for a in audit] == [
        (AGENT, f"/hitl {text}", CHANNEL)
    ]
    assert audit[0].detail["reason"] == "not_a_manager"


def test_help_stays_open_to_everyone(start: Callable[..., SlackSim], slack_standin: Any) -> None:
    sim = start(MANAGERS)
    body = command(sim, "help", AGENT).json()
    assert "/hitl stats [period]" in body["text"] and REFUSED not in body["text"]


def test_an_empty_managers_list_keeps_the_reports_open(
    start: Callable[..., SlackSim], slack_standin: Any, sqlite_url: str
) -> None:
    sim = start(None)
    command(sim, "stats 7d", AGENT)
    assert "12 drafts" in ephemeral(slack_standin, AGENT, "hitl stats")["text"]
    assert refusals(sqlite_url) == []


def test_a_user_group_slack_cannot_list_fails_closed(
    start: Callable[..., SlackSim], slack_standin: Any, sqlite_url: str
) -> None:
    sim = start({"usergroups": ["S0GONE"], "users": []})  # the stand-in answers no_such_subteam
    command(sim, "stats 7d", IN_GROUP)
    e = ephemeral(slack_standin, IN_GROUP, REFUSED)
    assert "could not be checked" in e["text"] and "drafts" not in e["text"]
    assert [a.detail["reason"] for a in refusals(sqlite_url)] == ["membership_unknown"]
