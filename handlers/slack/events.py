"""Events API listeners: the installation events the manifest subscribes to (app_uninstalled, tokens_revoked).

The manifest's third bot event, app_home_opened, belongs to the App Home feature (handlers/slack/home.py).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext

from bot.app.runtime import Runtime
from bot.slack.delivery import installation_changed
from handlers.slack.context import runtime_of


def app_uninstalled(body: dict[str, Any], context: BoltContext) -> None:
    """The workspace removed the app: record it; later Slack deliveries dead-letter as token_revoked."""
    installation_changed(runtime_of(context), body)


def tokens_revoked(body: dict[str, Any], context: BoltContext) -> None:
    """Tokens were revoked: record it, same as an uninstall for a single-workspace app."""
    installation_changed(runtime_of(context), body)


def register(app: App, runtime: Runtime) -> None:
    """Ack (Bolt does it first for events) and record installation changes once per event_id."""
    app.event("app_uninstalled")(app_uninstalled)
    app.event("tokens_revoked")(tokens_revoked)
