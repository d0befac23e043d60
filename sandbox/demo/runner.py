"""`hitl demo`: the whole loop, offline, on SQLite, through the real HTTP service.

Local stand-ins play Slack and Zendesk. The demo is a list of acts; each act is a function
`act(ctx) -> None` that tells, in the terminal, what happened and why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bot.app.asgi import create_app
from bot.app.runtime import build_runtime
from bot.app.settings import Settings
from sandbox.demo.ai import act_ai_assist
from sandbox.demo.context import (
    BOT_TOKEN,
    DEMO_POLICY,
    SIGNING_SECRET,
    ZD_EMAIL,
    ZD_TOKEN,
    DemoContext,
    Style,
    load_sample_tickets,
)
from sandbox.demo.helpdesk import act_helpdesk, seed_zendesk
from sandbox.demo.home import act_home
from sandbox.demo.ingest import act_ingest
from sandbox.demo.sla import act_sla
from sandbox.demo.slack import act_slack
from sandbox.demo.stats import act_stats
from sandbox.server import ServerThread
from sandbox.slack_standin import SlackStandin
from sandbox.zendesk_standin import ZendeskStandin
from storage.db import make_engine, upgrade

Act = Callable[[DemoContext], None]

# Acts run in this order; later issues add theirs.
ACTS: list[Act] = [
    act_ingest,
    act_slack,
    act_helpdesk,
    act_sla,
    act_ai_assist,
    act_home,
    act_stats,  # keep last: it reports on everything the acts before it did
]

__all__ = ["ACTS", "Act", "DemoContext", "demo_settings", "load_sample_tickets", "run_demo"]


def demo_settings(workdir: Path, extra: dict[str, str] | None = None) -> Settings:
    """Settings for the offline demo: SQLite in `workdir`, stand-ins instead of Slack and Zendesk."""
    values: dict[str, Any] = {
        "HITL_DATABASE_URL": f"sqlite:///{workdir / 'hitl-demo.db'}",
        "HITL_INGEST_TOKEN": secrets.token_urlsafe(24),
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "HITL_OPS_CHANNEL": "#support-ops",
        "HITL_MANAGERS_CHANNEL": "#support-managers",
        "HITL_OUTBOX_POLL_SECONDS": 0.1,
        "HITL_POLICY_FILE": str(DEMO_POLICY),
    }
    values.update(extra or {})
    return Settings(_env_file=None, **values)


def run_demo(
    *,
    keep: bool = False,
    acts: list[Act] | None = None,
    setup_hooks: list[Callable[[Path, dict[str, str]], None]] | None = None,
) -> int:
    """Run the demo end to end; returns a process exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="hitl-demo-"))
    style = Style(sys.stdout.isatty() and os.environ.get("NO_COLOR") is None)
    standins: dict[str, Any] = {}
    extra: dict[str, str] = {}
    try:
        for hook in setup_hooks or []:
            hook(workdir, extra)
        _start_standins(standins, extra)
        settings = demo_settings(workdir, extra)
        _run_acts(settings, workdir, style, standins, acts or ACTS)
        print()
        print(style.bold("Done.") + (f" Database kept at {workdir / 'hitl-demo.db'}" if keep else ""))
        return 0
    finally:
        for standin in standins.values():
            standin.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_acts(
    settings: Settings, workdir: Path, style: Style, standins: dict[str, Any], acts: list[Act]
) -> None:
    """Serve the real app on a local port and run the acts against it, in order."""
    upgrade(settings.database_url)
    runtime = build_runtime(settings, engine=make_engine(settings.database_url))
    app = create_app(runtime)
    token = settings.ingest_token.get_secret_value() if settings.ingest_token else ""
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api,
    ):
        ctx = DemoContext(
            runtime=runtime,
            api=api,
            base_url=server.url,
            workdir=workdir,
            style=style,
            standins=standins,
            tickets=load_sample_tickets(),
        )
        print(
            style.bold("hitl demo")
            + f" — the real service on {server.url}, SQLite at {workdir / 'hitl-demo.db'}"
        )
        print(style.dim("Slack and Zendesk are local stand-ins; nothing leaves this machine."))
        for act in acts:
            ctx.act_number = ACTS.index(act) + 1 if act in ACTS else None
            act(ctx)


def _start_standins(standins: dict[str, Any], extra: dict[str, str]) -> None:
    """Start the local Slack and Zendesk stand-ins and point the settings at them."""
    slack = SlackStandin(token=BOT_TOKEN).start()
    standins["slack"] = slack
    extra["SLACK_API_URL"] = slack.base_url
    zendesk = ZendeskStandin(email=ZD_EMAIL, api_token=ZD_TOKEN).start()
    standins["zendesk"] = zendesk
    seed_zendesk(zendesk)  # the sample tickets and an agent per Slack demo user, before any write-back
    extra.setdefault("HITL_HELPDESK", "zendesk")
    extra["ZENDESK_URL"] = zendesk.base_url
    extra["ZENDESK_EMAIL"] = ZD_EMAIL
    extra["ZENDESK_API_TOKEN"] = ZD_TOKEN
