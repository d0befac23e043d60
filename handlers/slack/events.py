"""Events API listeners: the bot events the manifest subscribes to (app_uninstalled, tokens_revoked)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.app.runtime import Runtime
from bot.slack.delivery import installation_changed


def register(app: App, runtime: Runtime) -> None:
    """Ack (Bolt does it first for events) and record installation changes once per event_id."""

    @app.event("app_uninstalled")
    def app_uninstalled(body: dict[str, Any]) -> None:
        """The workspace removed the app: record it; later Slack deliveries dead-letter as token_revoked."""
        installation_changed(runtime, body)

    @app.event("tokens_revoked")
    def tokens_revoked(body: dict[str, Any]) -> None:
        """Tokens were revoked: record it, same as an uninstall for a single-workspace app."""
        installation_changed(runtime, body)
