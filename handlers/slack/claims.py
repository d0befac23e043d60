"""Claim, Unclaim and Reassign on cards, pings and the Home tab (issue 13)."""

from __future__ import annotations

from slack_bolt import App

from bot.app.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    """Register this feature's listeners (none yet)."""
