"""The small interface every ticket helpdesk adapter offers, its typed results and its failures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx


class HelpdeskError(Exception):
    """A helpdesk call failed."""


class Conflict(HelpdeskError):
    """409: the ticket changed since the stamp we sent (a human acted meanwhile); never overwrite."""


class Rejected(HelpdeskError):
    """The helpdesk refused the write for good (422, 404, 401/403, 400): retrying cannot help."""


class Closed(Rejected):
    """422 on a closed ticket: nothing can be added to it any more."""


class RateLimited(HelpdeskError):
    """429: wait `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(HelpdeskError):
    """5xx or a network failure. `maybe_applied`: the request may have reached the helpdesk and taken effect."""

    def __init__(self, message: str, *, maybe_applied: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after


@dataclass(frozen=True)
class Comment:
    """A ticket comment as the helpdesk shows it."""

    id: int
    author_id: int | None
    body: str
    public: bool
    created_at: datetime | None


@dataclass(frozen=True)
class WriteResult:
    """What one successful ticket write produced."""

    comment_id: int | None
    updated_at: str | None


@dataclass(frozen=True)
class Agent:
    """A helpdesk agent found by email."""

    id: int
    name: str
    email: str


class Helpdesk(Protocol):
    """A ticket helpdesk the app writes decisions into (Zendesk today; Freshdesk fits the same shape)."""

    def ticket_url(self, ticket_id: str) -> str:
        """Where an agent opens the ticket."""
        ...

    def ticket_stamp(self, ticket_id: str) -> str:
        """The ticket's current `updated_at`, to send as the safe-update stamp."""
        ...

    def find_agent(self, email: str) -> Agent | None:
        """The agent with this email, or None."""
        ...

    def reply(
        self, ticket_id: str, *, body: str, author_id: int | None, status: str | None, stamp: str | None
    ) -> WriteResult:
        """A public reply to the customer; with `stamp`, refused (Conflict) if the ticket changed since."""
        ...

    def note(
        self, ticket_id: str, *, body: str, author_id: int | None, stamp: str | None = None
    ) -> WriteResult:
        """An internal note, never shown to the customer."""
        ...

    def assign(
        self,
        ticket_id: str,
        *,
        assignee_id: int | None,
        note: str,
        author_id: int | None,
        status: str | None,
        stamp: str | None,
    ) -> WriteResult:
        """Hand the ticket to an agent, with an internal note, in one write."""
        ...

    def latest_comments(self, ticket_id: str, limit: int = 30) -> list[Comment]:
        """The newest comments, newest first."""
        ...


def same_text(a: str, b: str) -> bool:
    """Equal up to whitespace: helpdesks normalise line ends and trailing spaces of comment bodies."""
    return re.sub(r"\s+", " ", a).strip() == re.sub(r"\s+", " ", b).strip()


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, if the service sent one."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def response_detail(response: httpx.Response) -> str:
    """A short, readable reason from an error response (Zendesk's error/description/details)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body.get("error") or ""), str(body.get("description") or ""), *_field_details(body)]
    return " — ".join(p for p in parts if p)[:500]


def _field_details(body: dict[str, Any]) -> list[str]:
    """The per-field descriptions of a Zendesk error: `{"details": {"field": [{"description": ...}]}}`."""
    details = body.get("details")
    if not isinstance(details, dict):
        return []
    return [
        str(d.get("description"))
        for v in details.values()
        if isinstance(v, list)
        for d in v
        if isinstance(d, dict)
    ]
