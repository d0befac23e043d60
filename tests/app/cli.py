"""Run the real `hitl` command in a subprocess, with none of the developer's settings leaking in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SETTING_PREFIXES = ("HITL_", "SLACK_", "ZENDESK_", "OPENAI_", "HELPDESK_", "FRESHDESK_", "INTERCOM_")


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus every hitl setting, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    return {**base, **(env or {})}


def hitl(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`hitl ARGS` run in `cwd` (where a `.env` would be read from)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(env),
        cwd=cwd,
    )
