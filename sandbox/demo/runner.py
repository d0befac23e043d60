"""`hitl demo`: the whole loop, offline, on SQLite, through the real HTTP service.

Local stand-ins play Slack and Zendesk. The demo is a list of acts; each act is a function
`act(ctx) -> None` that tells, in the terminal, what happened and why.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from bot.app.asgi import create_app
from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import Settings
from sandbox.server import ServerThread
from storage.db import make_engine, upgrade

# Acts run in this order; later issues add theirs ("module:function").
ACTS: list[str] = [
    "sandbox.demo.runner:act_ingest",
    "sandbox.demo.slack:act_slack",
    "sandbox.demo.helpdesk:act_helpdesk",
    "sandbox.demo.sla:act_sla",
    "sandbox.demo.ai:act_ai_assist",
    "sandbox.demo.stats:act_stats",  # keep last: it reports on everything the acts before it did
]

DEMO_POLICY = Path(__file__).parent.parent / "demo_policy.yml"  # the bundled policy + a demo_fast tier
SIGNING_SECRET = "demo-signing-secret"
BOT_TOKEN = "xoxb-demo"
ZD_EMAIL = "hitl-bot@northwind.example"
ZD_TOKEN = "zd-demo-token"


class Style:
    """ANSI styling when the terminal supports it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, t: str) -> str:
        return self(t, "1")

    def dim(self, t: str) -> str:
        return self(t, "2")

    def route(self, r: str) -> str:
        return self(r, {"auto_send": "32", "review": "33", "take_over": "31"}.get(r, "0"))


@dataclass
class DemoContext:
    """What every act can use."""

    runtime: Runtime
    api: httpx.Client
    base_url: str
    workdir: Path
    style: Style
    standins: dict[str, Any] = field(default_factory=dict)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def heading(self, text: str) -> None:
        self.say()
        self.say(self.style.bold(f"━━ {text} " + "━" * max(0, 74 - len(text))))


def load_sample_tickets() -> list[dict[str, Any]]:
    data = json.loads(resources.files("sandbox").joinpath("sample_tickets.json").read_text(encoding="utf-8"))
    return list(data["tickets"])


def act_ingest(ctx: DemoContext) -> None:
    """Feed the sample through POST /v1/drafts and show where each draft went and why."""
    ctx.heading(f"1. {len(ctx.tickets)} AI drafts arrive at POST /v1/drafts")
    s = ctx.style
    for t in ctx.tickets:
        resp = ctx.api.post("/v1/drafts", json=t)
        if resp.status_code not in (200, 201):
            ctx.say(f"  ticket {t['ticket_id']}: HTTP {resp.status_code} {resp.text[:200]}")
            continue
        body = resp.json()
        ctx.results.append({**body, "ticket": t})
        why = "; ".join(r["message"] for r in body["reasons"][1:]) or body["reasons"][0]["message"]
        name = (t.get("customer") or {}).get("name", "")
        line = (
            f"  #{t['ticket_id']} {t['interaction_type']:<19} {t['confidence']:.2f}  "
            f"{s.route(body['route']):<{9 + (len(s.route('x')) - 1)}}  {body['tier']:<8} {name[:18]:<18} "
        )
        ctx.say(line + s.dim(textwrap.shorten(why, 90, placeholder="…")))
    again = ctx.api.post("/v1/drafts", json=ctx.tickets[0])
    ctx.say(
        s.dim(
            f"\n  Sending #{ctx.tickets[0]['ticket_id']} again answers HTTP {again.status_code} with the same review "
            f"({again.json()['id'][:8]}…): idempotent."
        )
    )
    routes = Counter(r["route"] for r in ctx.results)
    ctx.say(
        f"\n  {s.route('auto_send')}: {routes['auto_send']} (reply goes out, a QA sample is rated)   "
        f"{s.route('review')}: {routes['review']} (a human approves first)   "
        f"{s.route('take_over')}: {routes['take_over']} (a human owns it)"
    )
    codes = Counter(r["code"] for res in ctx.results for r in res["reasons"][1:])
    if codes:
        ctx.say(
            "  Triggers that moved drafts toward humans: "
            + ", ".join(f"{c} ×{n}" for c, n in codes.most_common())
        )


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
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def run_demo(
    *,
    keep: bool = False,
    acts: list[str] | None = None,
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
        upgrade(settings.database_url)
        runtime = build_runtime(settings, engine=make_engine(settings.database_url))
        runtime.services["standins"] = standins
        app = create_app(runtime)
        with (
            ServerThread(app) as server,
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {settings.ingest_token.get_secret_value()}"},  # type: ignore[union-attr]
                timeout=30,
            ) as api,
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
            for ref in acts or ACTS:
                module, func = ref.split(":")
                getattr(importlib.import_module(module), func)(ctx)
        print()
        print(style.bold("Done.") + (f" Database kept at {workdir / 'hitl-demo.db'}" if keep else ""))
        return 0
    finally:
        for standin in standins.values():
            standin.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_standins(standins: dict[str, Any], extra: dict[str, str]) -> None:
    """Start the local Slack and Zendesk stand-ins and point the settings at them."""
    from sandbox.demo.helpdesk import seed_zendesk
    from sandbox.slack_standin import SlackStandin
    from sandbox.zendesk_standin import ZendeskStandin

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
