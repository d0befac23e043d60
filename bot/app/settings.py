"""Settings from the environment and `.env`, built once and passed in."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_POLICY = Path(__file__).parent.parent / "review" / "policy_default.yml"


class HelpdeskKind(StrEnum):
    ZENDESK = "zendesk"
    FRESHDESK = "freshdesk"
    INTERCOM = "intercom"
    WEBHOOK = "webhook"
    NONE = "none"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class MissingSetting(Exception):
    """A setting needed by the command being run is not set."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name} is not set: {why}")
        self.name = name


class SettingsError(Exception):
    """One or more settings hold a value they cannot take: one line per bad setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Settings(BaseSettings):
    """Every knob of the service; see the README's Settings table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///./hitl.db", alias="HITL_DATABASE_URL")
    policy_file: Path = Field(BUNDLED_POLICY, alias="HITL_POLICY_FILE")
    ingest_token: SecretStr | None = Field(None, alias="HITL_INGEST_TOKEN")
    instance_id: str | None = Field(None, alias="HITL_INSTANCE_ID")
    ops_channel: str | None = Field(None, alias="HITL_OPS_CHANNEL")
    managers_channel: str | None = Field(None, alias="HITL_MANAGERS_CHANNEL")
    callback_hosts: str = Field("", alias="HITL_CALLBACK_HOSTS")  # comma-separated hosts for callback_url
    callback_secret: SecretStr | None = Field(None, alias="HITL_CALLBACK_SECRET")  # signs decision callbacks

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")

    helpdesk: HelpdeskKind = Field(HelpdeskKind.NONE, alias="HITL_HELPDESK")
    zendesk_url: str | None = Field(None, alias="ZENDESK_URL")
    zendesk_email: str | None = Field(None, alias="ZENDESK_EMAIL")
    zendesk_api_token: SecretStr | None = Field(None, alias="ZENDESK_API_TOKEN")
    zendesk_webhook_secret: SecretStr | None = Field(None, alias="ZENDESK_WEBHOOK_SECRET")
    freshdesk_domain: str | None = Field(None, alias="FRESHDESK_DOMAIN")
    freshdesk_api_key: SecretStr | None = Field(None, alias="FRESHDESK_API_KEY")
    freshdesk_webhook_secret: SecretStr | None = Field(None, alias="FRESHDESK_WEBHOOK_SECRET")
    intercom_access_token: SecretStr | None = Field(None, alias="INTERCOM_ACCESS_TOKEN")
    intercom_api_url: str = Field("https://api.intercom.io", alias="INTERCOM_API_URL")
    intercom_version: str = Field("2.11", alias="INTERCOM_VERSION")
    intercom_client_secret: SecretStr | None = Field(None, alias="INTERCOM_CLIENT_SECRET")
    helpdesk_webhook_url: str | None = Field(None, alias="HELPDESK_WEBHOOK_URL")
    helpdesk_webhook_secret: SecretStr | None = Field(None, alias="HELPDESK_WEBHOOK_SECRET")

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    openai_model: str = Field("gpt-4o-mini", alias="HITL_OPENAI_MODEL")
    openai_timeout: float = Field(8.0, alias="HITL_OPENAI_TIMEOUT")
    openai_classify_timeout: float = Field(3.0, alias="HITL_OPENAI_CLASSIFY_TIMEOUT")
    kb_dir: Path | None = Field(None, alias="HITL_KB_DIR")
    mask_pii: bool = Field(True, alias="HITL_MASK_PII")

    outbox_poll_seconds: float = Field(0.5, alias="HITL_OUTBOX_POLL_SECONDS")
    # Fenced leases: a batch is held for `lease` seconds and renewed every `renew` seconds while it is
    # worked through, so a replica that dies frees its rows one lease later.
    outbox_lease_seconds: float = Field(15.0, gt=0, alias="HITL_OUTBOX_LEASE_SECONDS")
    outbox_renew_seconds: float = Field(5.0, gt=0, alias="HITL_OUTBOX_RENEW_SECONDS")
    outbox_batch: int = Field(20, ge=1, le=500, alias="HITL_OUTBOX_BATCH")
    scheduler_enabled: bool = Field(True, alias="HITL_SCHEDULER")
    outbox_enabled: bool = Field(True, alias="HITL_OUTBOX_WORKER")
    # Slack delivery (bot/slack/pacing.py): posts per second per channel (Slack allows about 1), the
    # time budget of a run of Slack failures before a row is dead-lettered, and the Web API timeout.
    slack_post_per_second: float = Field(1.0, gt=0, alias="HITL_SLACK_POST_PER_SECOND")
    slack_give_up_hours: float = Field(24.0, gt=0, alias="HITL_SLACK_GIVE_UP_HOURS")
    slack_timeout_seconds: float = Field(10.0, gt=0, alias="HITL_SLACK_TIMEOUT_SECONDS")
    log_format: LogFormat = Field(LogFormat.TEXT, alias="HITL_LOG_FORMAT")

    def require(self, *names: str, why: str) -> None:
        """Raise MissingSetting naming the first unset setting among `names` (env names)."""
        for name in names:
            field = next(k for k, f in type(self).model_fields.items() if f.alias == name)
            value = getattr(self, field)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                raise MissingSetting(name, why)

    def check_for_serve(self, *, socket_mode: bool) -> None:
        """Refuse to serve without the secrets the chosen mode needs."""
        self.require("HITL_INGEST_TOKEN", why="the ingest API needs a bearer token (any long random string)")
        self.require("SLACK_BOT_TOKEN", why="posting reviews needs the bot token (xoxb-...)")
        if socket_mode:
            self.require("SLACK_APP_TOKEN", why="--socket needs an app-level token (xapp-...)")
        else:
            self.require("SLACK_SIGNING_SECRET", why="/slack/events must verify Slack's signatures")
        if self.helpdesk is HelpdeskKind.ZENDESK:
            self.require("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN", why="HITL_HELPDESK=zendesk")
        if self.helpdesk is HelpdeskKind.FRESHDESK:
            self.require("FRESHDESK_DOMAIN", "FRESHDESK_API_KEY", why="HITL_HELPDESK=freshdesk")
        if self.helpdesk is HelpdeskKind.INTERCOM:
            self.require("INTERCOM_ACCESS_TOKEN", why="HITL_HELPDESK=intercom")
        if self.helpdesk is HelpdeskKind.WEBHOOK:
            self.require("HELPDESK_WEBHOOK_URL", "HELPDESK_WEBHOOK_SECRET", why="HITL_HELPDESK=webhook")
        self.refuse_placeholders()

    def refuse_placeholders(self) -> None:
        """Refuse secrets still holding a placeholder of .env.example (`xoxb-...`, `change-me-...`)."""
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
                raise SettingsError(
                    [
                        f"{field.alias} still holds the placeholder {value.get_secret_value()!r} "
                        "from .env.example: set the real value (see the README's Settings)"
                    ]
                )


# What .env.example puts where a secret goes: `xoxb-...`, `...`, `change-me-to-a-long-random-string`.
_PLACEHOLDER = re.compile(r"\.\.\.|\u2026|^change-me|^<.*>$", re.IGNORECASE)


def is_placeholder(value: str) -> bool:
    """A value copied from .env.example instead of a real secret."""
    return bool(_PLACEHOLDER.search(value.strip()))


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError([_one_line(error) for error in exc.errors()]) from None


_ACCEPTS = {
    "bool_parsing": "true or false (also 1/0, yes/no, on/off)",
    "bool_type": "true or false (also 1/0, yes/no, on/off)",
    "float_parsing": "a number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "path_type": "a file path",
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _one_line(error: ErrorDetails) -> str:
    """`HITL_MASK_PII: got 'maybe'; accepts true or false ...` for one validation error."""
    name = str(error["loc"][0]) if error["loc"] else "a setting"
    ctx = error.get("ctx") or {}
    if error["type"] in ("enum", "literal_error") and "expected" in ctx:
        accepts = f"one of {ctx['expected']}"
    elif error["type"] in _ACCEPTS:
        accepts = _ACCEPTS[error["type"]]
    elif error["type"] in _BOUNDS:
        accepts = "a number " + error["msg"].removeprefix("Input should be ")
    else:
        accepts = error["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    got = error.get("input")
    shown = "a value" if _is_secret(name) else repr(got) if isinstance(got, str) else "a value"
    return f"{name}: got {shown}; accepts {accepts}"


def _is_secret(alias: str) -> bool:
    return any(
        f.alias == alias and f.annotation in (SecretStr, SecretStr | None)
        for f in Settings.model_fields.values()
    )


def secret_values(settings: Settings) -> list[str]:
    """Every secret that is set, so logging can redact it wherever it turns up."""
    values = (getattr(settings, name) for name in type(settings).model_fields)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]


def secret(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret."""
    return value.get_secret_value() if value is not None else None
