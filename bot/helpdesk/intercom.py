"""Intercom REST API (pinned `Intercom-Version`): replies as the deciding admin, notes, assignment, state.

A conversation is the "ticket": replies and notes are `POST /conversations/{id}/reply`, assignment, close and
open are `POST /conversations/{id}/parts`. Intercom has no safe update: before a reply or an assignment the
conversation's parts are read, and a comment (from the customer or a teammate) newer than the stamp means
someone spoke meanwhile: nothing is written (Conflict). The comment goes first, so after an unknown outcome
the ledger finds it and `complete` applies the assignment and state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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

DEFAULT_API_URL = "https://api.intercom.io"
DEFAULT_VERSION = "2.11"
ADMIN_CACHE_SECONDS = 600.0
# Intercom conversations are open, closed or snoozed: "solved" closes, "open" reopens; pending and hold
# leave the state alone (an open conversation already waits for the customer).
STATE_FOR_STATUS = {"open": "open", "solved": "closed"}
ACTION_FOR_STATE = {"open": "open", "closed": "close"}


class IntercomHelpdesk(CompletesAfterComment):
    """One Intercom workspace, reached with an access token (Bearer) and a pinned API version."""

    name = "Intercom"

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str = DEFAULT_API_URL,
        version: str = DEFAULT_VERSION,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Intercom-Version": version,
                "Accept": "application/json",
                "User-Agent": "hitl/0.1",
            },
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )
        self.clock = clock
        self._admins: tuple[float, list[dict[str, Any]]] | None = None
        self._me: dict[str, Any] | None = None
        self._blocked_until = 0.0  # X-RateLimit-Remaining hit 0: no request before X-RateLimit-Reset
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- reads
    def check(self) -> str:
        """Whose INTERCOM_ACCESS_TOKEN this is (GET /me); raises Rejected or Unavailable."""
        me = self._whoami()
        app = me.get("app") or {}
        return (
            f"Intercom {self.base_url}: token of admin {me.get('name')} <{me.get('email')}> (id {me.get('id')}) "
            f"in workspace {app.get('name') or app.get('id_code') or '?'}"
        )

    def ticket_url(self, ticket_id: str) -> str:
        app = ((self._me or {}).get("app") or {}).get("id_code") or "_"
        return f"https://app.intercom.com/a/inbox/{app}/inbox/conversation/{ticket_id}"

    def ticket_stamp(self, ticket_id: str) -> str:
        return str(self._conversation(ticket_id).get("updated_at"))

    def find_agent(self, email: str) -> Agent | None:
        key = email.strip().lower()
        return next(
            (
                Agent(id=int(a["id"]), name=str(a.get("name") or key), email=key)
                for a in self._admin_list()
                if str(a.get("email", "")).lower() == key and str(a.get("id", "")).isdigit()
            ),
            None,
        )

    def latest_comments(self, ticket_id: str, limit: int = 30) -> list[Comment]:
        """Comments and notes, newest first (assignments and state changes are left out)."""
        parts = _parts(self._conversation(ticket_id))
        found = [_comment(p) for p in reversed(parts) if p.get("part_type") in ("comment", "note")]
        return found[: max(limit, 1)]

    # -- writes
    def reply(
        self, ticket_id: str, *, body: str, author_id: int | None, status: str | None, stamp: str | None
    ) -> WriteResult:
        self._refuse_if_changed(ticket_id, stamp)
        result = self._post_part(ticket_id, "comment", body, author_id)
        warning = self._complete_after_comment(
            ticket_id, assignee_id=None, status=status, author_id=author_id
        )
        return WriteResult(comment_id=result.comment_id, updated_at=result.updated_at, warning=warning)

    def note(
        self, ticket_id: str, *, body: str, author_id: int | None, stamp: str | None = None
    ) -> WriteResult:
        self._refuse_if_changed(ticket_id, stamp)
        return self._post_part(ticket_id, "note", body, author_id)

    def complete(
        self, ticket_id: str, *, assignee_id: int | None, status: str | None, author_id: int | None
    ) -> str | None:
        """Assign (unless already assigned to them) and open/close as the policy says; a refusal is a warning."""
        want = STATE_FOR_STATUS.get(status or "")
        if assignee_id is None and want is None:
            return None
        try:
            conversation = self._conversation(ticket_id)
            actor = self._admin_id(author_id)
            if assignee_id is not None and str(conversation.get("admin_assignee_id")) != str(assignee_id):
                self._parts_call(
                    ticket_id,
                    {
                        "message_type": "assignment",
                        "type": "admin",
                        "admin_id": actor,
                        "assignee_id": str(assignee_id),
                    },
                )
            if want is not None and conversation.get("state") != want:
                self._parts_call(
                    ticket_id, {"message_type": ACTION_FOR_STATE[want], "type": "admin", "admin_id": actor}
                )
        except Rejected as exc:
            return f"the conversation's assignee/state were not changed: {exc}"
        return None

    def _post_part(self, ticket_id: str, message_type: str, body: str, author_id: int | None) -> WriteResult:
        payload = {
            "message_type": message_type,
            "type": "admin",
            "admin_id": self._admin_id(author_id),
            "body": text_to_html(body),
        }
        data = self._call("POST", f"/conversations/{self._id(ticket_id)}/reply", json=payload)
        parts = _parts(data)
        part_id = str(parts[-1].get("id", "")) if parts else ""
        return WriteResult(
            comment_id=int(part_id) if part_id.isdigit() else None,
            updated_at=str(data["updated_at"]) if data.get("updated_at") is not None else None,
        )

    def _parts_call(self, ticket_id: str, payload: dict[str, Any]) -> None:
        self._call("POST", f"/conversations/{self._id(ticket_id)}/parts", json=payload)

    def _refuse_if_changed(self, ticket_id: str, stamp: str | None) -> None:
        """Conflict when someone commented after `stamp` (Intercom has no safe update of its own)."""
        given = parse_stamp(stamp)
        if given is None:
            return
        for part in _parts(self._conversation(ticket_id)):
            at = parse_stamp(part.get("created_at"))
            if part.get("part_type") == "comment" and at is not None and at > given:
                who = (part.get("author") or {}).get("type", "someone")
                raise Conflict(f"Intercom conversation {ticket_id}: a {who} replied at {at.isoformat()}")

    # -- who writes
    def _admin_id(self, author_id: int | None) -> str:
        """The deciding admin, or the token's own admin when the reviewer has no Intercom seat."""
        return str(author_id) if author_id is not None else str(self._whoami()["id"])

    def _whoami(self) -> dict[str, Any]:
        if self._me is None:
            me = self._call("GET", "/me")
            if me.get("id") is None:
                raise Rejected("Intercom GET /me did not name an admin: check INTERCOM_ACCESS_TOKEN")
            self._me = me
        return self._me

    def _admin_list(self) -> list[dict[str, Any]]:
        with self._lock:
            cached = self._admins
        if cached is not None and time.monotonic() - cached[0] < ADMIN_CACHE_SECONDS:
            return cached[1]
        admins = [a for a in self._call("GET", "/admins").get("admins") or [] if isinstance(a, dict)]
        with self._lock:
            self._admins = (time.monotonic(), admins)
        return admins

    def _conversation(self, ticket_id: str) -> dict[str, Any]:
        return self._call("GET", f"/conversations/{self._id(ticket_id)}")

    # -- plumbing
    @staticmethod
    def _id(ticket_id: str) -> str:
        if not str(ticket_id).isdigit():
            raise Rejected(f"Intercom conversation ids are numbers; {ticket_id!r} is not one")
        return str(ticket_id)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            wait = self._blocked_until - self.clock()
        if wait > 0:
            raise RateLimited(f"Intercom rate limit used up (X-RateLimit-Remaining: 0) for {wait:.0f}s", wait)
        response = send_request(self.http, self.name, method, path, **kwargs)
        self._note_rate_limit(response)
        if response.status_code < 300:
            data = response.json()
            return dict(data) if isinstance(data, dict) else {}
        raise _error(response, maybe_applied=method != "GET", wait=self._reset_wait(response))

    def _reset_wait(self, response: httpx.Response) -> float | None:
        """Seconds until X-RateLimit-Reset (a Unix time), if the response says."""
        try:
            return max(1.0, float(response.headers["X-RateLimit-Reset"]) - self.clock())
        except (KeyError, ValueError):
            return None

    def _note_rate_limit(self, response: httpx.Response) -> None:
        if response.headers.get("X-RateLimit-Remaining") != "0":
            return
        wait = self._reset_wait(response)
        if wait is not None:
            with self._lock:
                self._blocked_until = self.clock() + wait


def _parts(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    holder = conversation.get("conversation_parts") or {}
    parts = holder.get("conversation_parts") if isinstance(holder, dict) else None
    return [p for p in parts or [] if isinstance(p, dict)]


def _comment(part: dict[str, Any]) -> Comment:
    author = part.get("author") or {}
    author_id = str(author.get("id", ""))
    part_id = str(part.get("id", ""))
    return Comment(
        id=int(part_id) if part_id.isdigit() else 0,
        author_id=int(author_id) if author.get("type") == "admin" and author_id.isdigit() else None,
        body=html_to_text(str(part.get("body") or "")),
        public=part.get("part_type") == "comment",
        created_at=parse_stamp(part.get("created_at")),
    )


def error_detail(response: httpx.Response) -> str:
    """Intercom's error body: `{"type": "error.list", "errors": [{"code", "message"}]}`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return str(body)[:300]
    found = [f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    return "; ".join(found)[:500] or response.reason_phrase


def _error(response: httpx.Response, *, maybe_applied: bool, wait: float | None) -> Exception:
    """The exception an error response from Intercom stands for."""
    status = response.status_code
    detail = error_detail(response)
    if status == 429:
        return RateLimited(f"Intercom 429: {detail}", retry_after(response) or wait)
    if status >= 500 or status == 408:
        return Unavailable(
            f"Intercom {status}: {detail}", maybe_applied=maybe_applied, retry_after=retry_after(response)
        )
    if status in (401, 403):
        return Rejected(f"Intercom {status}: check INTERCOM_ACCESS_TOKEN and its permissions ({detail})")
    if status == 404:
        return Rejected(f"Intercom 404: no such conversation or admin ({detail})")
    return Rejected(f"Intercom {status}: {detail}")
