"""Which Slack workspace is ours: the team the bot token belongs to, learned once and kept in the database.

Clicks are checked against it (bot.review.decisions.check_click). It is asked of Slack (`auth.test`) when
the service starts, retried in the background until Slack answers, and stored in `scheduler_state`, so a
restart or another replica knows it even while Slack's Web API is down; a click meets no Slack call
once it is known. A service that has never reached Slack refuses clicks (fail closed) until it has.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from bot.slack.client import make_web_client
from storage.db import session_scope
from storage.models import SchedulerState

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.slack.workspace")
STATE_KEY = "slack_workspace"

_known: dict[str, str] = {}  # runtime.instance_id → team id (a cache of the stored fact)
_lock = threading.Lock()


def stored_team(runtime: Runtime) -> str | None:
    """The team id a replica already stored, if any."""
    with session_scope(runtime.engine, readonly=True) as session:
        row = session.get(SchedulerState, STATE_KEY)
        team = (row.value or {}).get("team_id") if row is not None else None
    return team if isinstance(team, str) and team else None


def ask_slack(runtime: Runtime) -> str | None:
    """auth.test's team id for the bot token, stored for every replica; None when Slack does not answer."""
    client = runtime.services.slack or make_web_client(runtime.settings)
    try:
        resp = client.auth_test()
    except Exception as exc:  # noqa: BLE001 - Slack down, token refused: the caller decides (fail closed)
        log.warning("auth.test failed: %s", str(exc).splitlines()[0][:200])
        return None
    team = resp.get("team_id")
    if not isinstance(team, str) or not team:
        return None
    try:
        with session_scope(runtime.engine) as session:
            session.merge(
                SchedulerState(
                    key=STATE_KEY,
                    value={
                        "team_id": team,
                        "team": resp.get("team"),
                        "bot_user_id": resp.get("user_id"),
                        "url": resp.get("url"),  # the workspace URL: permalinks to cards are built from it
                    },
                    updated_at=runtime.clock.now(),
                )
            )
    except Exception as exc:  # noqa: BLE001 - another replica stored it at the same moment: same fact
        log.info("workspace not stored (%s); another replica may have", type(exc).__name__)
    return team


def workspace_team(runtime: Runtime, *, ask: bool = True) -> str | None:
    """Our workspace's team id: from memory, the database, or (when `ask`) Slack; None when unknown."""
    with _lock:
        team = _known.get(runtime.instance_id)
    team = team or stored_team(runtime) or (ask_slack(runtime) if ask else None)
    if team:
        with _lock:
            _known[runtime.instance_id] = team
    return team


def learn_in_background(runtime: Runtime, *, first_wait: float = 0.5, max_wait: float = 5.0) -> None:
    """Register a worker that learns the workspace at start, retrying until Slack answers."""
    stopped = threading.Event()

    def learn() -> None:
        wait = first_wait
        while not stopped.is_set() and workspace_team(runtime) is None:
            stopped.wait(wait)
            wait = min(wait * 2, max_wait)

    def start() -> None:
        threading.Thread(target=learn, name="hitl-slack-workspace", daemon=True).start()

    runtime.add_worker("slack-workspace", start, stopped.set)
