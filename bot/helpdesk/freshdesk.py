"""Freshdesk API v2: public replies, private notes, assignment and status, behind the Helpdesk interface.

Freshdesk has no safe update: before a reply or an assignment the ticket's `updated_at` is read and compared
with the stamp (the ticket as the AI saw it); newer means a person acted meanwhile, and nothing is written
(Conflict). A reply or note and the status/assignment are separate calls: the comment goes first, so after
an unknown outcome the ledger finds it and `complete` applies the rest.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from bot.helpdesk.base import (
    Agent,
    Comment,
    CompletesAfterComment,
    Conflict,
    RateLimited,
    Rejected,
    Unavailable,
    WriteResult,
    html_to_text,
    parse_stamp,
    retry_after,
    send_request,
    text_to_html,
)

AGENT_CACHE_SECONDS = 600.0
# The policy names Zendesk-style statuses; Freshdesk's built-in ones are numbers (hold has no twin: pending).
STATUS_CODES = {"open": 2, "pending": 3, "hold": 3, "solved": 4}
MAX_CONVERSATION_PAGES = 10


def base_url_for(domain: str) -> str:
    """`acme`, `acme.freshdesk.com` or a full URL, as the account's root URL."""
    d = domain.strip().rstrip("/")
    if d.startswith(("http://", "https://")):
        return d
    return f"https://{d}" if "." in d else f"https://{d}.freshdesk.com"


class FreshdeskHelpdesk(CompletesAfterComment):
    """One Freshdesk account, reached with an agent's API key (Basic auth: the key, password `X`)."""

    name = "Freshdesk"

    def __init__(
        self,
        *,
        domain: str,
        api_key: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url_for(domain)
        self.http = httpx.Client(
            base_url=f"{self.base_url}/api/v2",
            auth=(api_key, "X"),
            timeout=httpx.Timeout(timeout, connect=5.0),
            headers={"User-Agent": "hitl/0.1"},
            transport=transport,
        )
        self._agents: dict[str, tuple[float, Agent | None]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- reads
    def check(self) -> str:
        """Who FRESHDESK_API_KEY belongs to (GET /agents/me); raises Rejected or Unavailable."""
        me = self._call("GET", "/agents/me")
        contact = me.get("contact") or {}
        return f"Freshdesk {self.base_url}: API key of agent {contact.get('name')} <{contact.get('email')}> (id {me.get('id')})"

    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.base_url}/a/tickets/{ticket_id}"

    def ticket_stamp(self, ticket_id: str) -> str:
        return str(self._call("GET", f"/tickets/{self._id(ticket_id)}")["updated_at"])

    def find_agent(self, email: str) -> Agent | None:
        key = email.strip().lower()
        with self._lock:
            hit = self._agents.get(key)
        if hit is not None and time.monotonic() - hit[0] < AGENT_CACHE_SECONDS:
            return hit[1]
        agents = self._call_list("GET", "/agents", params={"email": key})
        found = next(
            (
                Agent(id=int(a["id"]), name=str((a.get("contact") or {}).get("name") or key), email=key)
                for a in agents
                if str((a.get("contact") or {}).get("email", "")).lower() == key
            ),
            None,
        )
        with self._lock:
            self._agents[key] = (time.monotonic(), found)
        return found

    def latest_comments(self, ticket_id: str, limit: int = 30) -> list[Comment]:
        """Replies and notes, newest first (Freshdesk lists conversations oldest first, 100 a page)."""
        tid = self._id(ticket_id)
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_CONVERSATION_PAGES + 1):
            batch = self._call_list(
                "GET", f"/tickets/{tid}/conversations", params={"page": page, "per_page": 100}
            )
            found += batch
            if len(batch) < 100:
                break
        return [_comment(c) for c in reversed(found)][: max(limit, 1)]

    # -- writes
    def reply(
        self, ticket_id: str, *, body: str, author_id: int | None, status: str | None, stamp: str | None
    ) -> WriteResult:
        tid = self._id(ticket_id)
        self._refuse_if_changed(tid, stamp)
        data = self._post_comment(f"/tickets/{tid}/reply", body, author_id)
        warning = self._complete_after_comment(
            ticket_id, assignee_id=None, status=status, author_id=author_id
        )
        return WriteResult(comment_id=data.get("id"), updated_at=data.get("updated_at"), warning=warning)

    def note(
        self, ticket_id: str, *, body: str, author_id: int | None, stamp: str | None = None
    ) -> WriteResult:
        tid = self._id(ticket_id)
        self._refuse_if_changed(tid, stamp)
        data = self._post_comment(f"/tickets/{tid}/notes", body, author_id, private=True)
        return WriteResult(comment_id=data.get("id"), updated_at=data.get("updated_at"))

    def complete(
        self, ticket_id: str, *, assignee_id: int | None, status: str | None, author_id: int | None
    ) -> str | None:
        """`PUT /tickets/{id}` with `responder_id` and `status`; a refusal is a warning, the comment stands."""
        fields: dict[str, Any] = {}
        if assignee_id is not None:
            fields["responder_id"] = assignee_id
        if status in STATUS_CODES:
            fields["status"] = STATUS_CODES[str(status)]
        if not fields:
            return None
        try:
            self._call("PUT", f"/tickets/{self._id(ticket_id)}", json=fields)
        except Rejected as exc:
            return f"the ticket's status/assignee were not changed: {exc}"
        return None

    def _post_comment(
        self, path: str, body: str, author_id: int | None, *, private: bool | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": text_to_html(body)}
        if private is not None:
            payload["private"] = private
        if author_id is not None:
            payload["user_id"] = author_id
        return self._call("POST", path, json=payload)

    def _refuse_if_changed(self, ticket_id: int, stamp: str | None) -> None:
        """Conflict when the ticket was updated after `stamp` (Freshdesk has no safe update of its own)."""
        given = parse_stamp(stamp)
        if given is None:
            return
        now = parse_stamp(self._call("GET", f"/tickets/{ticket_id}").get("updated_at"))
        if now is not None and now > given:
            raise Conflict(f"Freshdesk ticket {ticket_id} was updated at {now.isoformat()}, after {stamp}")

    # -- plumbing
    @staticmethod
    def _id(ticket_id: str) -> int:
        if not str(ticket_id).isdigit():
            raise Rejected(f"Freshdesk ticket ids are numbers; {ticket_id!r} is not one")
        return int(ticket_id)

    def _call_list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        data = self._send(method, path, **kwargs).json()
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self._send(method, path, **kwargs).json()
        return dict(data) if isinstance(data, dict) else {}

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = send_request(self.http, self.name, method, path, **kwargs)
        if response.status_code < 300:
            return response
        raise _error(response, maybe_applied=method != "GET")


def _comment(c: dict[str, Any]) -> Comment:
    text = c.get("body_text")
    return Comment(
        id=int(c.get("id") or 0),
        author_id=c.get("user_id"),
        body=str(text) if isinstance(text, str) else html_to_text(str(c.get("body") or "")),
        public=not c.get("private", False),
        created_at=parse_stamp(c.get("created_at")),
    )


def error_detail(response: httpx.Response) -> str:
    """Freshdesk's error body: `{"description": ..., "errors": [{"field", "message", "code"}]}` or `{"message"}`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body.get("description") or body.get("message") or ""), *_field_errors(body)]
    return " — ".join(p for p in parts if p)[:500] or response.reason_phrase


def _field_errors(body: dict[str, Any]) -> list[str]:
    errors = body.get("errors")
    return [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
        for e in (errors if isinstance(errors, list) else [])
        if isinstance(e, dict)
    ]


def _error(response: httpx.Response, *, maybe_applied: bool) -> Exception:
    """The exception an error response from Freshdesk stands for."""
    status = response.status_code
    detail = error_detail(response)
    if status == 429:
        return RateLimited(f"Freshdesk 429: {detail}", retry_after(response))
    if status >= 500 or status == 408:
        return Unavailable(
            f"Freshdesk {status}: {detail}", maybe_applied=maybe_applied, retry_after=retry_after(response)
        )
    if status in (401, 403):
        return Rejected(f"Freshdesk {status}: check FRESHDESK_API_KEY and the agent's permissions ({detail})")
    if status == 404:
        return Rejected(f"Freshdesk 404: no such ticket or agent ({detail})")
    return Rejected(f"Freshdesk {status}: {detail}")
