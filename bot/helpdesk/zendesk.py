"""Zendesk Ticketing API v2: public replies, internal notes, assignment, with safe updates."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import httpx

from bot.helpdesk.base import (
    Agent,
    Closed,
    Comment,
    Conflict,
    RateLimited,
    Rejected,
    Unavailable,
    WriteResult,
    response_detail,
    retry_after,
    send_request,
)

AGENT_ROLES = {"agent", "admin"}
AGENT_CACHE_SECONDS = 600.0


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class ZendeskHelpdesk:
    """One Zendesk account, reached with an API token (`{email}/token:{token}` Basic auth)."""

    name = "Zendesk"

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=f"{self.base_url}/api/v2",
            auth=(f"{email}/token", api_token),
            timeout=httpx.Timeout(timeout, connect=5.0),
            headers={"User-Agent": "hitl/0.1"},
            transport=transport,
        )
        self._agents: dict[str, tuple[float, Agent | None]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- reads
    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.base_url}/agent/tickets/{ticket_id}"

    def ticket_stamp(self, ticket_id: str) -> str:
        ticket = self._call("GET", f"/tickets/{self._id(ticket_id)}.json")["ticket"]
        return str(ticket["updated_at"])

    def find_agent(self, email: str) -> Agent | None:
        key = email.strip().lower()
        with self._lock:
            hit = self._agents.get(key)
        if hit is not None and time.monotonic() - hit[0] < AGENT_CACHE_SECONDS:
            return hit[1]
        users = self._call("GET", "/users/search.json", params={"query": f"email:{key}"}).get("users", [])
        found = next(
            (
                Agent(id=int(u["id"]), name=str(u.get("name") or key), email=key)
                for u in users
                if str(u.get("email", "")).lower() == key
                and u.get("role") in AGENT_ROLES
                and u.get("active", True)
            ),
            None,
        )
        with self._lock:
            self._agents[key] = (time.monotonic(), found)
        return found

    def latest_comments(self, ticket_id: str, limit: int = 30) -> list[Comment]:
        data = self._call(
            "GET",
            f"/tickets/{self._id(ticket_id)}/comments.json",
            params={"sort_order": "desc", "per_page": min(max(limit, 1), 100)},
        )
        return [
            Comment(
                id=int(c["id"]),
                author_id=c.get("author_id"),
                body=str(c.get("body") or ""),
                public=bool(c.get("public")),
                created_at=_parse_time(c.get("created_at")),
            )
            for c in data.get("comments", [])
        ]

    # -- writes
    def reply(
        self, ticket_id: str, *, body: str, author_id: int | None, status: str | None, stamp: str | None
    ) -> WriteResult:
        return self._update(
            ticket_id, self._ticket(body=body, public=True, author_id=author_id, status=status, stamp=stamp)
        )

    def note(
        self, ticket_id: str, *, body: str, author_id: int | None, stamp: str | None = None
    ) -> WriteResult:
        return self._update(
            ticket_id, self._ticket(body=body, public=False, author_id=author_id, stamp=stamp)
        )

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
        ticket = self._ticket(body=note, public=False, author_id=author_id, status=status, stamp=stamp)
        if assignee_id is not None:
            ticket["assignee_id"] = assignee_id
        return self._update(ticket_id, ticket)

    @staticmethod
    def _ticket(
        *, body: str, public: bool, author_id: int | None, status: str | None = None, stamp: str | None = None
    ) -> dict[str, Any]:
        # `public` is always explicit: otherwise Zendesk reuses the ticket's creation-time default.
        comment: dict[str, Any] = {"body": body, "public": public}
        if author_id is not None:
            comment["author_id"] = author_id
        ticket: dict[str, Any] = {"comment": comment}
        if status:
            ticket["status"] = status
        if stamp:
            ticket["safe_update"] = True
            ticket["updated_stamp"] = stamp
        return ticket

    def _update(self, ticket_id: str, ticket: dict[str, Any]) -> WriteResult:
        data = self._call("PUT", f"/tickets/{self._id(ticket_id)}.json", json={"ticket": ticket})
        events = (data.get("audit") or {}).get("events") or []
        comment_id = next((e.get("id") for e in events if e.get("type") == "Comment"), None)
        return WriteResult(comment_id=comment_id, updated_at=(data.get("ticket") or {}).get("updated_at"))

    # -- plumbing
    @staticmethod
    def _id(ticket_id: str) -> int:
        if not str(ticket_id).isdigit():
            raise Rejected(f"Zendesk ticket ids are numbers; {ticket_id!r} is not one")
        return int(ticket_id)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = send_request(self.http, self.name, method, path, **kwargs)
        if response.status_code < 300:
            return dict(response.json())
        raise _error(response, maybe_applied=method != "GET")


def _error(response: httpx.Response, *, maybe_applied: bool) -> Exception:
    """The exception an error response from Zendesk stands for."""
    status = response.status_code
    detail = response_detail(response)
    if status == 409:
        return Conflict(f"Zendesk 409: {detail}")
    if status == 429:
        return RateLimited(f"Zendesk 429: {detail}", retry_after(response))
    if status == 422:
        if "closed" in detail.lower():
            return Closed(f"the ticket is closed in Zendesk ({detail})")
        return Rejected(f"Zendesk 422: {detail}")
    if status >= 500 or status == 408:
        return Unavailable(
            f"Zendesk {status}: {detail}", maybe_applied=maybe_applied, retry_after=retry_after(response)
        )
    if status in (401, 403):
        return Rejected(f"Zendesk {status}: check ZENDESK_EMAIL / ZENDESK_API_TOKEN ({detail})")
    return Rejected(f"Zendesk {status}: {detail}")
