"""Logging for every `hitl` command and the service, configured in one place.

`HITL_LOG_FORMAT=json` writes one JSON object per line (time, level, logger, message, and review_id,
ticket_id, instance_id where known); `text` (the default) writes plain lines. Either way, token-like
strings and the configured secrets are redacted from every line, tracebacks included. Ids come from
`extra={"review_id": ...}` on a log call or from the surrounding `log_context(...)`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("review_id", "ticket_id", "instance_id")
REDACTED = "[redacted]"

_context: ContextVar[dict[str, str]] = ContextVar("hitl_log_context", default={})  # noqa: B039

# Token shapes that may reach a log line through an error message or a URL.
_TOKEN_PATTERNS = (
    re.compile(r"\bxox[abeoprs]-[A-Za-z0-9-]{4,}"),  # Slack bot/user/config tokens
    re.compile(r"\bxapp-[A-Za-z0-9-]{4,}"),  # Slack app-level tokens
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),  # OpenAI-style API keys
    re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(?<=\bbasic )[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"),  # user:password@ in URLs
)
# `token=…` in query strings and messages: the name stays, the value goes.
_KEY_VALUE = re.compile(r"(?i)\b(token|secret|password|api_key|apikey)=[^&\s]+")


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Within this block, every log line carries these ids (`review_id=`, `ticket_id=`); None is skipped."""
    merged = {**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class Redactor:
    """Replaces token-like strings and the configured secret values with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole; short values would mask words.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return _KEY_VALUE.sub(rf"\1={REDACTED}", text)


class ContextFilter(logging.Filter):
    """Puts review_id / ticket_id / instance_id on each record: from `extra=`, the context, or this process."""

    def __init__(self, instance_id: str | None = None) -> None:
        super().__init__()
        self.instance_id = instance_id

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                value = context.get(name) or (self.instance_id if name == "instance_id" else None)
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [review=… ticket=…]`, redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name.removesuffix('_id')}={getattr(record, name)}"
            for name in ("review_id", "ticket_id")
            if getattr(record, name, None)
        )
        return self.redact(f"{line} [{ids}]" if ids else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the known ids, and `exc` for a traceback."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the call (it may be swapped after set-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(
    *,
    level: int = logging.WARNING,
    fmt: str = "text",
    instance_id: str | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Send every logger's lines to standard error in `fmt` ("text" or "json"), redacted; replaces earlier setup."""
    redact = Redactor(secrets)
    handler = _StderrHandler()
    handler.addFilter(ContextFilter(instance_id))
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # One line per outside HTTP call is noise at INFO; their failures surface through our own logs.
    for chatty in ("httpx", "httpcore", "slack_sdk", "openai", "apscheduler"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    # uvicorn's loggers keep their own handlers unless told otherwise: route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
