"""Links to messages the app posted, built without a Slack call per message.

A Slack permalink is `<workspace url>archives/<channel id>/p<ts without the dot>`; the workspace URL is the
one `auth.test` answers, stored with the workspace's team id by `bot.slack.clicks` (asked once when it is
not stored yet). Reports that list many cards (`/hitl queue`) link every line this way instead of calling
`chat.getPermalink` for each.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.slack.clicks import STATE_KEY, ask_slack
from storage.db import session_scope
from storage.models import SchedulerState

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

_WORKSPACE_URL = re.compile(r"^https://[A-Za-z0-9.-]+/$")
_CHANNEL = re.compile(r"^#?[A-Za-z0-9_-]{1,80}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")


def stored_workspace_url(runtime: Runtime) -> str | None:
    """The workspace URL a replica stored from auth.test (`https://acme.slack.com/`), if any."""
    with session_scope(runtime.engine, readonly=True) as session:
        row = session.get(SchedulerState, STATE_KEY)
        url = (row.value or {}).get("url") if row is not None else None
    return url if isinstance(url, str) and _WORKSPACE_URL.match(url) else None


def workspace_url(runtime: Runtime, *, ask: bool = True) -> str | None:
    """The workspace URL: stored, or (when `ask`) asked of Slack once and stored; None when unknown."""
    url = stored_workspace_url(runtime)
    if url is None and ask and ask_slack(runtime) is not None:
        url = stored_workspace_url(runtime)
    return url


def message_permalink(base_url: str | None, channel: str | None, ts: str | None) -> str | None:
    """`https://acme.slack.com/archives/C0123/p1700000000000100`, or None when anything is missing or odd."""
    if not base_url or not channel or not ts or not _CHANNEL.match(channel) or not _TS.match(ts):
        return None
    return f"{base_url}archives/{channel.lstrip('#')}/p{ts.replace('.', '')}"
