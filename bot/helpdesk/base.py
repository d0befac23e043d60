"""The small interface every ticket helpdesk adapter offers, its typed results and its failures."""

from __future__ import annotations

import html
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

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
    # Set when the comment landed but a follow-up step (status, assignment) was refused: reported, not retried.
    warning: str | None = None


@dataclass(frozen=True)
class Agent:
    """A helpdesk agent found by email."""

    id: int
    name: str
    email: str


class Helpdesk(Protocol):
    """A ticket helpdesk the app writes decisions into (Zendesk today; Freshdesk fits the same shape)."""

    def close(self) -> None:
        """Release the HTTP connections."""
        ...

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


@runtime_checkable
class CompletesWrites(Protocol):
    """A helpdesk whose reply or note and its status/assignment are separate calls (Freshdesk, Intercom).

    After an unknown outcome the ledger finds the comment; `complete` then applies the rest (idempotent)."""

    def complete(
        self, ticket_id: str, *, assignee_id: int | None, status: str | None, author_id: int | None
    ) -> str | None:
        """Apply the status and assignment of a write whose comment already landed; a warning or None."""
        ...


@runtime_checkable
class ChecksCredentials(Protocol):
    """An adapter `hitl doctor` can ask whether its credentials work."""

    def check(self) -> str:
        """One line saying who the credentials authenticate as; raises a HelpdeskError otherwise."""
        ...


def send_request(http: httpx.Client, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One call to a helpdesk, transport failures as `Unavailable`.

    A failure before the request left (connect, pool) is safe to retry; one after it left may have been
    applied (`maybe_applied` for writes): the delivery ledger looks before it writes again."""
    try:
        return http.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise Unavailable(f"{service} unreachable: {type(exc).__name__}: {exc}", maybe_applied=False) from exc
    except httpx.TransportError as exc:
        raise Unavailable(
            f"{service} connection failed mid-request: {type(exc).__name__}: {exc}",
            maybe_applied=method != "GET",
        ) from exc


class CompletesAfterComment(ABC):
    """Helpdesks whose reply or note and its status/assignment are separate calls (Freshdesk, Intercom).

    Once the comment has landed, a failure of the second call must leave the ledger `started`, so the
    retry finds the comment and completes (CompletesWrites) instead of sending it again."""

    name: str

    @abstractmethod
    def note(
        self, ticket_id: str, *, body: str, author_id: int | None, stamp: str | None = None
    ) -> WriteResult:
        """An internal note, never shown to the customer."""

    @abstractmethod
    def complete(
        self, ticket_id: str, *, assignee_id: int | None, status: str | None, author_id: int | None
    ) -> str | None:
        """Apply the status and assignment of a write whose comment already landed; a warning or None."""

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
        """The note, then the assignment and status: two calls, completed on retry if the second fails."""
        written = self.note(ticket_id, body=note, author_id=author_id, stamp=stamp)
        warning = self._complete_after_comment(
            ticket_id, assignee_id=assignee_id, status=status, author_id=author_id
        )
        return WriteResult(comment_id=written.comment_id, updated_at=written.updated_at, warning=warning)

    def _complete_after_comment(
        self, ticket_id: str, *, assignee_id: int | None, status: str | None, author_id: int | None
    ) -> str | None:
        try:
            return self.complete(ticket_id, assignee_id=assignee_id, status=status, author_id=author_id)
        except (RateLimited, Unavailable) as exc:
            raise Unavailable(
                f"{self.name} wrote the comment, then: {exc}", maybe_applied=True, retry_after=exc.retry_after
            ) from exc


def text_to_html(text: str) -> str:
    """Plain text as escaped HTML paragraphs: helpdesks that take HTML bodies show it as written."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def html_to_text(markup: str) -> str:
    """The text of an HTML body (line breaks kept), to compare with what we sent."""
    text = re.sub(r"(?i)<br\s*/?>", "\n", markup)
    text = re.sub(r"(?i)</(p|div|li|h[1-6])>", "\n\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def parse_stamp(value: object) -> datetime | None:
    """An `updated_at` stamp as an aware datetime: ISO 8601 or Unix seconds (Intercom)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    try:
        parsed = (
            datetime.fromtimestamp(float(v), UTC)
            if re.fullmatch(r"\d+(\.\d+)?", v)
            else datetime.fromisoformat(v)
        )
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
