"""What every demo act gets: the `DemoContext`, terminal styling, the demo's credentials and sample tickets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from bot.app.runtime import Runtime

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
    act_number: int | None = None  # the running act's place in the demo, set by the runner

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def heading(self, text: str) -> None:
        self.say()
        self.say(self.style.bold(f"━━ {text} " + "━" * max(0, 74 - len(text))))

    def act_heading(self, title: str) -> None:
        """The running act's heading, numbered by its place in the demo."""
        self.heading(f"{self.act_number}. {title}" if self.act_number is not None else title)


def load_sample_tickets() -> list[dict[str, Any]]:
    """The bundled sample tickets the demo feeds through the API."""
    data = json.loads(resources.files("sandbox").joinpath("sample_tickets.json").read_text(encoding="utf-8"))
    return list(data["tickets"])
