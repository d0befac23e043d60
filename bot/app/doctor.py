"""`hitl doctor`: is everything this service depends on set up right? One line per check, with a fix.

Every check is read-only: Slack is asked with `auth.test`, `conversations.list/info`, `usergroups.list`
and `users.info` (never a test post), the helpdesk with a read (Zendesk `users/me`) or a HEAD request
(webhook: a fake decision would be acted on), the model with one tiny chat completion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.app.settings import HelpdeskKind, MissingSetting, Settings, secret
from bot.review.policy import Policy, PolicyError, load_policy

# The bot scopes manifest.yml asks for (a test keeps the two in step).
NEEDED_SCOPES = (
    "chat:write",
    "chat:write.public",
    "commands",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "im:write",
    "files:write",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
REINSTALL = (
    "add them under OAuth & Permissions (or re-create the app from manifest.yml) and reinstall the app"
)


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and how to fix it when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        return f"{mark} {self.name}: {self.detail}" + (
            f" — fix: {self.fix}" if not self.ok and self.fix else ""
        )


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in the order an operator fixes things: policy, database, Slack, helpdesk, model."""
    policy_check, policy = check_policy(settings)
    yield policy_check
    yield check_database(settings)
    yield from check_slack(settings, policy)
    yield from check_helpdesk(settings)
    yield check_model(settings)


# ------------------------------------------------------------------ policy and database


def check_policy(settings: Settings) -> tuple[Check, Policy | None]:
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        fix = f"correct the file (HITL_POLICY_FILE); `hitl policy check {settings.policy_file}` shows every error"
        return Check("policy", False, str(exc).splitlines()[0], fix), None
    return Check("policy", True, f"{settings.policy_file} is valid (version {policy.version})"), policy


def check_database(settings: Settings) -> Check:
    from storage.db import (
        DatabaseUnavailable,
        SchemaMismatch,
        check_schema,
        head_revision,
        make_engine,
        safe_url,
    )

    try:
        engine = make_engine(settings.database_url, must_exist=True)
    except DatabaseUnavailable as exc:
        return Check("database", False, str(exc))
    try:
        check_schema(engine)
    except (DatabaseUnavailable, SchemaMismatch) as exc:
        return Check("database", False, str(exc))
    finally:
        engine.dispose()
    return Check(
        "database", True, f"{safe_url(settings.database_url)} reachable, schema at {head_revision()}"
    )


# ------------------------------------------------------------------ Slack


def check_slack(settings: Settings, policy: Policy | None) -> Iterator[Check]:
    """The token and its scopes, then (with a working token) channels, user groups and users."""
    from bot.slack.client import make_web_client

    if not secret(settings.slack_bot_token):
        yield Check("Slack token", False, "SLACK_BOT_TOKEN is not set", "set the bot token (xoxb-...)")
        return
    client = make_web_client(settings)
    token_check, scopes = check_token(client, settings.slack_api_url)
    yield token_check
    if scopes is None:
        return
    yield check_scopes(scopes)
    for channel in sorted(posting_channels(settings, policy)):
        yield check_channel(client, channel, scopes)
    usergroups, users = policy_people(policy)
    yield from check_usergroups(client, usergroups)
    for user in sorted(users):
        yield check_user(client, user)


def check_token(client: WebClient, api_url: str) -> tuple[Check, set[str] | None]:
    """`auth.test`; the granted scopes (from the x-oauth-scopes header) when the token works."""
    try:
        resp = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        fix = "copy the Bot User OAuth Token (xoxb-...) from your app's OAuth & Permissions page to SLACK_BOT_TOKEN"
        return Check("Slack token", False, f"Slack refused the token ({error})", fix), None
    except (SlackClientError, OSError) as exc:
        fix = "check SLACK_API_URL and that this host can reach it (proxy, firewall)"
        return Check("Slack token", False, f"cannot reach Slack at {api_url} ({exc})", fix), None
    headers = {k.lower(): v for k, v in (resp.headers or {}).items()}
    raw = headers.get("x-oauth-scopes")
    value = raw[0] if isinstance(raw, list) else raw
    scopes = {s.strip() for s in str(value or "").split(",") if s.strip()}
    detail = f"valid: bot {resp.get('user')} in workspace {resp.get('team')}"
    return Check("Slack token", True, detail), scopes


def check_scopes(scopes: set[str]) -> Check:
    missing = [s for s in NEEDED_SCOPES if s not in scopes]
    if missing:
        return Check("Slack scopes", False, f"the token lacks {', '.join(missing)}", REINSTALL)
    return Check("Slack scopes", True, f"all {len(NEEDED_SCOPES)} the app needs are granted")


def posting_channels(settings: Settings, policy: Policy | None) -> set[str]:
    """Every channel the service posts to: tier channels, escalation and QA channels, ops and managers."""
    channels = {c for c in (settings.ops_channel, settings.managers_channel) if c}
    if policy is None:
        return channels
    for tier in policy.tiers.values():
        channels.add(tier.channel)
        channels.update(level.channel for level in tier.escalation.levels if level.channel)
    if policy.qa.channel:
        channels.add(policy.qa.channel)
    return channels


def check_channel(client: WebClient, channel: str, scopes: set[str]) -> Check:
    """The channel exists, is not archived, and the bot may post there (a member, or public + chat:write.public)."""
    name = f"Slack channel {channel}"
    try:
        info = _find_channel(client, channel)
    except SlackApiError as exc:
        error = exc.response.get("error")
        return Check(
            name, False, f"cannot look it up ({error})", "grant channels:read and groups:read; " + REINSTALL
        )
    if info is None:
        fix = "create it, fix the name in the policy, or invite the bot (`/invite @hitl`) if it is private"
        return Check(name, False, "not found", fix)
    if info.get("is_archived"):
        return Check(name, False, "is archived", "unarchive it or point the policy at another channel")
    if info.get("is_member"):
        return Check(name, True, "exists; the bot is a member")
    if not info.get("is_private") and "chat:write.public" in scopes:
        return Check(name, True, "exists; public, the bot posts with chat:write.public")
    return Check(
        name, False, "the bot is not a member and cannot post there", f"`/invite @hitl` in {channel}"
    )


def _find_channel(client: WebClient, channel: str) -> dict[str, Any] | None:
    if _CHANNEL_ID.match(channel):
        try:
            return dict(client.conversations_info(channel=channel)["channel"])
        except SlackApiError as exc:
            if exc.response.get("error") == "channel_not_found":
                return None
            raise
    wanted = channel.lstrip("#")
    for page in client.conversations_list(
        types="public_channel,private_channel", exclude_archived=False, limit=1000
    ):
        for found in page.get("channels", []):
            if found.get("name") == wanted:
                return dict(found)
    return None


def policy_people(policy: Policy | None) -> tuple[set[str], set[str]]:
    """The user groups and users the policy names (approvers, supervisors, escalation, managers)."""
    groups: set[str] = set()
    users: set[str] = set()
    if policy is None:
        return groups, users
    named = [policy.managers]
    for tier in policy.tiers.values():
        named += [tier.approvers, tier.supervisors, *(lv.notify for lv in tier.escalation.levels)]
    for people in named:
        groups.update(people.usergroups)
        users.update(people.users)
    return groups, users


def check_usergroups(client: WebClient, wanted: set[str]) -> Iterator[Check]:
    if not wanted:
        return
    try:
        listed = client.usergroups_list()
    except SlackApiError as exc:
        error = exc.response.get("error")
        yield Check(
            "Slack user groups", False, f"cannot list them ({error})", "grant usergroups:read; " + REINSTALL
        )
        return
    groups: list[dict[str, Any]] = listed.get("usergroups", [])
    live = {g.get("id"): g for g in groups if not g.get("date_delete")}
    for group in sorted(wanted):
        if group in live:
            yield Check(f"Slack user group {group}", True, f"resolves (@{live[group].get('handle')})")
        else:
            fix = "use the group's id (S...) from Slack, or remove it from the policy"
            yield Check(f"Slack user group {group}", False, "no such user group (or it is disabled)", fix)


def check_user(client: WebClient, user: str) -> Check:
    name = f"Slack user {user}"
    try:
        found = client.users_info(user=user)["user"]
    except SlackApiError as exc:
        error = exc.response.get("error")
        return Check(
            name, False, f"does not resolve ({error})", "use the member id (U...) from the user's profile"
        )
    if found.get("deleted"):
        return Check(name, False, "is deactivated", "remove them from the policy or name someone else")
    return Check(name, True, f"resolves ({found.get('name')})")


# ------------------------------------------------------------------ helpdesk and model


def check_helpdesk(settings: Settings) -> Iterator[Check]:
    checks: dict[HelpdeskKind, Callable[[Settings], Check]] = {
        HelpdeskKind.ZENDESK: check_zendesk,
        HelpdeskKind.WEBHOOK: check_webhook,
    }
    if settings.helpdesk is HelpdeskKind.NONE:
        yield Check("helpdesk", True, "none configured (HITL_HELPDESK=none): decisions stay in Slack")
        return
    try:
        yield checks.get(settings.helpdesk, check_adapter)(settings)
    except MissingSetting as exc:
        yield Check(
            "helpdesk", False, str(exc), f"set it (see the README's Settings for {settings.helpdesk})"
        )


def check_zendesk(settings: Settings) -> Check:
    """`GET /api/v2/users/me.json` with the API token: 200 and an agent or admin means writes will work."""
    settings.require("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN", why="HITL_HELPDESK=zendesk")
    url = f"{str(settings.zendesk_url).rstrip('/')}/api/v2/users/me.json"
    auth = (f"{settings.zendesk_email}/token", str(secret(settings.zendesk_api_token)))
    try:
        resp = httpx.get(url, auth=auth, timeout=10)
    except httpx.HTTPError as exc:
        return Check("Zendesk", False, f"cannot reach {settings.zendesk_url} ({exc})", "check ZENDESK_URL")
    if resp.status_code == 401:
        fix = "check ZENDESK_EMAIL and ZENDESK_API_TOKEN (Admin Center > Apps and integrations > Zendesk API)"
        return Check("Zendesk", False, "Zendesk refused the credentials (401)", fix)
    if resp.status_code != 200:
        return Check("Zendesk", False, f"users/me answered {resp.status_code}", "check ZENDESK_URL")
    user = resp.json().get("user") or {}
    if user.get("role") not in ("agent", "admin"):
        fix = "use the email of an agent or admin in ZENDESK_EMAIL"
        return Check("Zendesk", False, f"signed in as {user.get('email')} with role {user.get('role')}", fix)
    return Check("Zendesk", True, f"signed in as {user.get('email')} ({user.get('role')})")


def check_webhook(settings: Settings) -> Check:
    """The webhook URL answers HTTP (a HEAD request: any answer below 500 means something listens)."""
    settings.require("HELPDESK_WEBHOOK_URL", "HELPDESK_WEBHOOK_SECRET", why="HITL_HELPDESK=webhook")
    url = str(settings.helpdesk_webhook_url)
    try:
        status = httpx.head(url, timeout=10).status_code
    except httpx.HTTPError as exc:
        fix = "start the receiver or fix HELPDESK_WEBHOOK_URL"
        return Check("helpdesk webhook", False, f"nothing answers at {url} ({exc})", fix)
    if status >= 500:
        return Check("helpdesk webhook", False, f"{url} answers {status}", "look at the receiver's logs")
    return Check("helpdesk webhook", True, f"{url} answers (HTTP {status})")


def check_adapter(settings: Settings) -> Check:
    """Helpdesks other than Zendesk and the webhook: the adapter's own `check()`, when it has one."""
    from bot.helpdesk.delivery import make_helpdesk

    adapter = make_helpdesk(settings)
    check = getattr(adapter, "check", None)
    name = f"helpdesk {settings.helpdesk}"
    if not callable(check):
        return Check(name, True, "configured (this adapter has no credentials check)")
    try:
        result = check()
    except Exception as exc:  # whatever the adapter raises, it is this check's answer
        fix = f"check the HITL_HELPDESK={settings.helpdesk} settings (README, Settings)"
        return Check(name, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, fix)
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    return Check(name, True, str(result) if isinstance(result, str) and result else "credentials work")


def check_model(settings: Settings) -> Check:
    """With AI assist on (OPENAI_API_KEY), one tiny chat completion must come back."""
    import openai

    key = secret(settings.openai_api_key)
    if not key:
        return Check("model", True, "AI assist is off (OPENAI_API_KEY is not set)")
    where = settings.openai_base_url or "https://api.openai.com/v1"
    client = openai.OpenAI(
        api_key=key, base_url=settings.openai_base_url or None, timeout=settings.openai_timeout, max_retries=0
    )
    try:
        client.chat.completions.create(
            model=settings.openai_model,
            messages=[{"role": "user", "content": "Reply with OK."}],
            max_tokens=5,
        )
    except openai.AuthenticationError:
        return Check("model", False, f"{where} refused OPENAI_API_KEY (401)", "set a valid OPENAI_API_KEY")
    except openai.NotFoundError:
        fix = "set HITL_OPENAI_MODEL to a model the server serves"
        return Check("model", False, f"{where} does not know model {settings.openai_model!r}", fix)
    except openai.APIStatusError as exc:
        return Check("model", False, f"{where} answered {exc.status_code}", "look at the model server")
    except openai.APIError as exc:
        return Check(
            "model", False, f"no answer from {where} ({exc})", "start the model server or fix OPENAI_BASE_URL"
        )
    finally:
        client.close()
    return Check("model", True, f"{settings.openai_model} at {where} answers")
