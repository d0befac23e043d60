"""Local stand-in for Zendesk's Ticketing API v2, served over real HTTP for tests and the offline demo.

Behaves like Zendesk where the app depends on it: Basic token auth, ticket updates with comments,
assignment and status, `safe_update` conflicts (409), closed tickets and the comment cap (422),
rate limiting (429 + Retry-After), and test controls for outages, latency and lost responses.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import html
import json
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.standin_base import ApiError, ServedStandin, serve_main

JSONDict = dict[str, Any]

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
MAX_COMMENTS = 5000
API_USER_ID = 900_000_001
HUMAN_AGENT_ID = 900_000_002
# Comments, audits, events and users created over HTTP draw ids from here, far above seeded ids.
FIRST_GENERATED_ID = 10_000_001
AGENT_ROLES = ("agent", "admin")


class ZendeskError(ApiError):
    """An API failure answered with Zendesk's status code and JSON error body."""


def _invalid(field: str, description: str) -> ZendeskError:
    return ZendeskError(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field: [{"description": description}]},
        },
    )


def _bad_request(description: str) -> ZendeskError:
    return ZendeskError(400, {"error": "InvalidParameter", "description": description})


def _not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def _rate_limited(retry_after: int) -> ZendeskError:
    return ZendeskError(
        429,
        {
            "error": "APIRateLimitExceeded",
            "description": "Number of allowed API requests per minute exceeded",
        },
        {"Retry-After": str(retry_after)},
    )


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _html_to_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _is_id(value: object) -> bool:
    return type(value) is int


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _json_error(error: ZendeskError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


class _Gate:
    """ASGI middleware: logs every request and applies outage, auth and rate limits before routing."""

    def __init__(self, app: ASGIApp, standin: ZendeskStandin) -> None:
        self.app = app
        self.standin = standin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        sent_status: list[int] = []
        completed = False

        async def record(message: Message) -> None:
            nonlocal completed
            if message["type"] == "http.response.start":
                sent_status.append(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
                # Log before the last byte leaves, so a client that saw the response also sees the log entry.
                self.standin._log_status(entry, sent_status[0] if sent_status else None)
            await send(message)

        entry = self.standin._log_request(scope, body)
        try:
            rejection = self.standin._admit(dict(scope["headers"]).get(b"authorization", b""))
            if rejection is not None:
                await _json_error(rejection)(scope, replay, record)
            else:
                await self.app(scope, replay, record)
        finally:
            if not completed:
                self.standin._log_status(entry, None)


def _checked_status(_field: str, value: object) -> object:
    if value not in STATUSES:
        raise _invalid("status", f"Status: {value!r} is not a valid status")
    return value


def _checked_subject(_field: str, value: object) -> object:
    if not isinstance(value, str):
        raise _invalid("subject", "Subject: must be a string")
    return value


def _checked_id(field: str, value: object) -> object:
    if value is not None and not _is_id(value):
        raise _invalid(field, f"{field}: must be an integer id or null")
    return value


def _checked_tags(tags: object) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise _invalid("tags", "Tags: must be a list of strings")
    return _dedupe(tags)


_FIELD_CHECKS: dict[str, Callable[[str, object], object]] = {
    "status": _checked_status,
    "subject": _checked_subject,
    "assignee_id": _checked_id,
    "group_id": _checked_id,
}


def _ticket_object(payload: object) -> JSONDict:
    data = payload.get("ticket") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise _bad_request("Expected a JSON object with a 'ticket' object")
    return data


def _first_comment(comment: object) -> JSONDict:
    """The fields a new ticket's first comment sets: its description and whether replies default to public."""
    if comment is None:
        return {}
    if not isinstance(comment, dict) or not isinstance(comment.get("public", True), bool):
        raise _invalid("comment", "Comment: must be an object with a boolean public")
    text = comment.get("body") or _html_to_text(comment.get("html_body") or "")
    return {"description": text, "default_public": comment.get("public", True)}


class ZendeskStandin(ServedStandin):
    """In-memory Zendesk Ticketing API v2 served by uvicorn on 127.0.0.1 in a background thread
    (the API lives under /api/v2 of `base_url`)."""

    title = "zendesk-standin"

    def __init__(
        self,
        *,
        email: str = "bot@example.com",
        api_token: str = "zd-test-token",
        port: int = 0,
        rate_limit_per_minute: int | None = None,
        state_file: str | None = None,
    ) -> None:
        super().__init__(port=port)
        self.email = email
        self.api_token = api_token
        self.rate_limit_per_minute = rate_limit_per_minute
        self.state_file = state_file
        self.api_user_id = API_USER_ID
        self.human_agent_id = HUMAN_AGENT_ID
        self._clear()
        if state_file is not None and os.path.exists(state_file):
            self._load(state_file)
        self.app = self._build_app()

    # ----- lifecycle -------------------------------------------------------------------------

    # ----- test controls ---------------------------------------------------------------------

    def human_update(
        self, ticket_id: int, body: str = "Reply written in Zendesk", public: bool = True
    ) -> JSONDict:
        """Simulate an agent replying in Zendesk: add a comment, bump updated_at, return the ticket."""
        with self._lock:
            ticket = self._stored_ticket(ticket_id)
            if ticket["status"] == "closed":
                raise ValueError(f"ticket {ticket_id} is closed")
            stamp = self._tick()
            self._append_comment(ticket_id, body, None, public, HUMAN_AGENT_ID, stamp)
            ticket["updated_at"] = stamp
            self._save()
            return copy.deepcopy(ticket)

    def close_ticket(self, ticket_id: int) -> JSONDict:
        """Set the ticket to closed (no later update is accepted) and return it."""
        with self._lock:
            ticket = self._stored_ticket(ticket_id)
            ticket["status"] = "closed"
            ticket["updated_at"] = self._tick()
            self._save()
            return copy.deepcopy(ticket)

    # ----- seeding and inspection ------------------------------------------------------------

    def add_user(self, id: int, email: str, name: str, *, role: str = "agent") -> JSONDict:
        """Create a user (an agent unless `role` says otherwise) and return it."""
        with self._lock:
            user = self._insert_user(id, email, name, role)
            self._save()
            return copy.deepcopy(user)

    def add_ticket(
        self,
        id: int,
        *,
        subject: str = "",
        status: str = "open",
        requester_id: int | None = None,
        **fields: Any,
    ) -> JSONDict:
        """Create a ticket; `description` adds the first comment, `default_public` its default visibility."""
        with self._lock:
            ticket = self._insert_ticket(id, subject, status, requester_id, fields)
            self._save()
            return copy.deepcopy(ticket)

    def ticket(self, id: int) -> JSONDict:
        """The ticket as the API shows it."""
        with self._lock:
            return copy.deepcopy(self._stored_ticket(id))

    def comments(self, id: int) -> list[JSONDict]:
        """All comments of the ticket, oldest first."""
        with self._lock:
            self._stored_ticket(id)
            return copy.deepcopy(self._comments[id])

    def public_replies(self, id: int) -> list[JSONDict]:
        """Public comments not written by the requester: the replies a customer would get."""
        with self._lock:
            requester_id = self._stored_ticket(id)["requester_id"]
            return [c for c in self.comments(id) if c["public"] and c["author_id"] != requester_id]

    def reset(self) -> None:
        """Forget all tickets, users (except the built-in ones), requests and test controls."""
        with self._lock:
            self._clear()
            self._save()

    # ----- state -----------------------------------------------------------------------------

    def _clear(self) -> None:
        with self._lock:
            self._users: dict[int, JSONDict] = {}
            self._tickets: dict[int, JSONDict] = {}
            self._comments: dict[int, list[JSONDict]] = {}
            self._default_public: dict[int, bool] = {}
            self._clock = 0
            self._next_id = FIRST_GENERATED_ID
            self._next_ticket_id = 1
            self._reset_controls()
            self._recent: deque[float] = deque()
            self._insert_user(API_USER_ID, self.email, "API user", "admin")
            self._insert_user(HUMAN_AGENT_ID, "human.agent@zendesk.invalid", "Human Agent", "agent")

    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {
            "users": list(self._users.values()),
            "tickets": list(self._tickets.values()),
            "comments": {str(k): v for k, v in self._comments.items()},
            "default_public": {str(k): v for k, v in self._default_public.items()},
            "clock": self._clock,
            "next_id": self._next_id,
            "next_ticket_id": self._next_ticket_id,
        }
        temporary = f"{self.state_file}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(temporary, self.state_file)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        self._users = {user["id"]: user for user in state["users"]}
        self._tickets = {ticket["id"]: ticket for ticket in state["tickets"]}
        self._comments = {int(k): v for k, v in state["comments"].items()}
        self._default_public = {int(k): v for k, v in state["default_public"].items()}
        self._clock = state["clock"]
        self._next_id = state["next_id"]
        self._next_ticket_id = state["next_ticket_id"]

    def _tick(self) -> str:
        # Zendesk stamps have second precision; a logical clock keeps them strictly increasing.
        self._clock = max(int(time.time()), self._clock + 1)
        return _iso(self._clock)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _stored_ticket(self, ticket_id: int) -> JSONDict:
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            raise KeyError(f"no ticket {ticket_id}")
        return ticket

    def _api_ticket(self, ticket_id: int) -> JSONDict:
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            raise _not_found()
        return ticket

    def _api_user(self, user_id: int) -> JSONDict:
        user = self._users.get(user_id)
        if user is None:
            raise _not_found()
        return user

    def _insert_user(self, user_id: int, email: str, name: str, role: str) -> JSONDict:
        if user_id in self._users:
            raise ValueError(f"user {user_id} exists")
        if any(user["email"].lower() == email.lower() for user in self._users.values()):
            raise ValueError(f"email {email} is already used")
        now = _iso(int(time.time()))
        user = {
            "id": user_id,
            "name": name,
            "email": email,
            "role": role,
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        self._users[user_id] = user
        return user

    def _insert_ticket(
        self, ticket_id: int, subject: str, status: str, requester_id: int | None, fields: JSONDict
    ) -> JSONDict:
        if ticket_id in self._tickets:
            raise ValueError(f"ticket {ticket_id} exists")
        if status not in STATUSES:
            raise ValueError(f"invalid status {status!r}")
        extra = dict(fields)
        default_public = bool(extra.pop("default_public", True))
        description = str(extra.pop("description", ""))
        stamp = self._tick()
        ticket: JSONDict = {
            "id": ticket_id,
            "subject": subject,
            "description": description,
            "status": status,
            "assignee_id": None,
            "group_id": None,
            "requester_id": requester_id,
            "tags": [],
            "created_at": stamp,
            "updated_at": stamp,
            **extra,
        }
        self._tickets[ticket_id] = ticket
        self._comments[ticket_id] = []
        self._default_public[ticket_id] = default_public
        if description:
            author_id = requester_id if requester_id is not None else API_USER_ID
            self._append_comment(ticket_id, description, None, default_public, author_id, stamp)
        self._next_ticket_id = max(self._next_ticket_id, ticket_id + 1)
        return ticket

    def _append_comment(
        self,
        ticket_id: int,
        body: str | None,
        html_body: str | None,
        public: bool,
        author_id: int,
        stamp: str,
    ) -> JSONDict:
        if html_body is not None:
            text = _html_to_text(html_body)
            rendered = html_body
        else:
            text = body or ""
            rendered = f"<p>{html.escape(text)}</p>"
        comment = {
            "id": self._new_id(),
            "type": "Comment",
            "author_id": author_id,
            "body": text,
            "html_body": rendered,
            "plain_body": text,
            "public": public,
            "attachments": [],
            "created_at": stamp,
        }
        self._comments[ticket_id].append(comment)
        return comment

    # ----- request gate ----------------------------------------------------------------------

    def _log_request(self, scope: Scope, body: bytes) -> JSONDict:
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "json": payload,
            "status": None,
            "time": time.time(),
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def _log_status(self, entry: JSONDict, status: int | None) -> None:
        with self._lock:
            entry["status"] = status

    def _admit(self, authorization: bytes) -> ZendeskError | None:
        with self._lock:
            if self._outage:
                return ZendeskError(503, {"error": "ServiceUnavailable", "description": "Maintenance"})
            if not self._authenticated(authorization):
                return ZendeskError(
                    401,
                    {"error": "Couldn't authenticate you"},
                    {"WWW-Authenticate": 'Basic realm="Web Password"'},
                )
            if self._forced_429 > 0:
                self._forced_429 -= 1
                return _rate_limited(self._forced_retry_after)
            if self.rate_limit_per_minute is not None:
                now = time.monotonic()
                while self._recent and now - self._recent[0] >= 60:
                    self._recent.popleft()
                if len(self._recent) >= self.rate_limit_per_minute:
                    return _rate_limited(max(1, math.ceil(60 - (now - self._recent[0]))))
                self._recent.append(now)
            return None

    def _authenticated(self, authorization: bytes) -> bool:
        scheme, _, encoded = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == f"{self.email}/token:{self.api_token}"

    # ----- writes ----------------------------------------------------------------------------

    def _internal_error(self) -> Response:
        return JSONResponse({"error": "InternalServerError", "description": "Something went wrong"}, 500)

    def _update_ticket(self, ticket_id: int, payload: object) -> tuple[int, JSONDict]:
        ticket = self._api_ticket(ticket_id)
        data = _ticket_object(payload)
        if data.get("safe_update"):
            self._check_stamp(ticket, data.get("updated_stamp"))
        if ticket["status"] == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        changes = {
            field: value for field, value in self._validated_fields(data).items() if ticket[field] != value
        }
        comment = self._validated_comment(ticket_id, data.get("comment"))
        author_id = comment["author_id"] if comment else API_USER_ID
        events = self._apply_update(ticket, changes, comment) if comment or changes else []
        return 200, copy.deepcopy({"ticket": ticket, "audit": self._audit(ticket, author_id, events)})

    def _audit(self, ticket: JSONDict, author_id: int, events: list[JSONDict]) -> JSONDict:
        """The audit Zendesk returns with an update: every event with its id."""
        return {
            "id": self._new_id(),
            "ticket_id": ticket["id"],
            "created_at": ticket["updated_at"],
            "author_id": author_id,
            "events": [event if "id" in event else {"id": self._new_id(), **event} for event in events],
        }

    def _apply_update(self, ticket: JSONDict, changes: JSONDict, comment: JSONDict | None) -> list[JSONDict]:
        """Add the comment and change the fields under one new stamp; the audit's events for them."""
        stamp = self._tick()
        events: list[JSONDict] = []
        if comment:
            added = self._append_comment(ticket["id"], stamp=stamp, **comment)
            # As in Zendesk, a Comment event's id is the comment's id.
            events.append(
                {key: added[key] for key in ("id", "type", "author_id", "body", "html_body", "public")}
            )
        for field, value in changes.items():
            events.append(
                {"type": "Change", "field_name": field, "value": value, "previous_value": ticket[field]}
            )
            ticket[field] = value
        ticket["updated_at"] = stamp
        return events

    def _check_stamp(self, ticket: JSONDict, stamp: object) -> None:
        if stamp is None:
            raise _invalid("updated_stamp", "Updated stamp: is required when safe_update is true")
        given = _parse_iso(stamp)
        if given is None:
            raise _invalid("updated_stamp", f"Updated stamp: {stamp!r} is not an ISO 8601 time")
        if given != _parse_iso(ticket["updated_at"]):
            raise ZendeskError(
                409,
                {
                    "error": "UpdateConflict",
                    "description": "Safe Update prevented the update due to outdated ticket data. "
                    "Please fetch the latest ticket data and try again.",
                },
            )

    def _validated_fields(self, data: JSONDict) -> JSONDict:
        """The ticket fields the request sets, each checked as Zendesk checks it (422 otherwise)."""
        fields: JSONDict = {}
        for field in ("status", "subject", "assignee_id", "group_id"):
            if field in data:
                fields[field] = _FIELD_CHECKS[field](field, data[field])
        assignee_id = fields.get("assignee_id")
        if assignee_id is not None and self._users.get(assignee_id, {}).get("role") not in AGENT_ROLES:
            raise _invalid("assignee_id", "Assignee: is not an agent")
        if "tags" in data:
            fields["tags"] = _checked_tags(data["tags"])
        return fields

    def _validated_comment(self, ticket_id: int, comment: object) -> JSONDict | None:
        if comment is None:
            return None
        if not isinstance(comment, dict):
            raise _invalid("comment", "Comment: must be an object")
        body, html_body = comment.get("body"), comment.get("html_body")
        text = html_body if html_body is not None else body
        if not isinstance(text, str) or not text.strip():
            raise _invalid("comment", "Comment: cannot be blank")
        public = comment.get("public", self._default_public[ticket_id])
        if not isinstance(public, bool):
            raise _invalid("comment", "Comment: public must be true or false")
        author_id = comment.get("author_id", API_USER_ID)
        if not _is_id(author_id) or author_id not in self._users:
            raise _invalid("author_id", f"Author: {author_id!r} is not a known user")
        if len(self._comments[ticket_id]) >= MAX_COMMENTS:
            raise _invalid("base", f"Ticket has reached the maximum of {MAX_COMMENTS} comments")
        return {"body": body, "html_body": html_body, "public": public, "author_id": author_id}

    def _add_tags(self, ticket_id: int, payload: object) -> tuple[int, JSONDict]:
        ticket = self._api_ticket(ticket_id)
        tags = payload.get("tags") if isinstance(payload, dict) else None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise _bad_request("Expected a JSON object with a 'tags' list of strings")
        if ticket["status"] == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        merged = _dedupe(ticket["tags"] + tags)
        if merged != ticket["tags"]:
            ticket["tags"] = merged
            ticket["updated_at"] = self._tick()
        return 200, {"tags": list(merged)}

    def _create_ticket(self, payload: object) -> tuple[int, JSONDict]:
        data = _ticket_object(payload)
        fields = self._validated_fields(data)
        requester_id = data.get("requester_id")
        if requester_id is not None and (not _is_id(requester_id) or requester_id not in self._users):
            raise _invalid("requester_id", f"Requester: {requester_id!r} is not a known user")
        fields.update(_first_comment(data.get("comment")))
        ticket = self._insert_ticket(
            self._next_ticket_id,
            fields.pop("subject", ""),
            fields.pop("status", "new"),
            requester_id,
            fields,
        )
        return 201, copy.deepcopy({"ticket": ticket})

    def _create_user(self, payload: object) -> tuple[int, JSONDict]:
        data = payload.get("user") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            raise _bad_request("Expected a JSON object with a 'user' object holding an email")
        try:
            user = self._insert_user(
                self._new_id(),
                data["email"],
                str(data.get("name") or data["email"]),
                str(data.get("role") or "end-user"),
            )
        except ValueError:
            raise _invalid("email", f"Email: {data['email']} is already being used by another user") from None
        return 201, copy.deepcopy({"user": user})

    # ----- reads -----------------------------------------------------------------------------

    def _comment_page(self, ticket_id: int, request: Request) -> JSONDict:
        params = request.query_params
        try:
            per_page = min(max(int(params.get("per_page", "100")), 1), 100)
            page = max(int(params.get("page", "1")), 1)
        except ValueError:
            raise _bad_request("per_page and page must be integers") from None
        with self._lock:
            self._api_ticket(ticket_id)
            comments = copy.deepcopy(self._comments[ticket_id])
        if params.get("sort_order") == "desc":
            comments.reverse()
        start = (page - 1) * per_page
        has_next = start + per_page < len(comments)
        return {
            "comments": comments[start : start + per_page],
            "next_page": str(request.url.include_query_params(page=page + 1)) if has_next else None,
            "previous_page": str(request.url.include_query_params(page=page - 1)) if page > 1 else None,
            "count": len(comments),
        }

    def _search_users(self, query: str) -> list[JSONDict]:
        term = query.strip()
        with self._lock:
            users = sorted(self._users.values(), key=lambda user: user["id"])
            if term.lower().startswith("email:"):
                email = term[len("email:") :].strip().strip('"').lower()
                found = [user for user in users if user["email"].lower() == email]
            else:
                needle = term.strip('"').lower()
                found = [
                    u
                    for u in users
                    if needle and (needle in u["email"].lower() or needle in u["name"].lower())
                ]
            return copy.deepcopy(found)

    # ----- HTTP app --------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Zendesk stand-in", docs_url=None, redoc_url=None, openapi_url=None)
        app.add_middleware(_Gate, standin=self)

        async def json_body(request: Request) -> object:
            raw = await request.body()
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                raise _bad_request("Request body is not valid JSON") from None

        async def write(apply: Callable[..., tuple[int, JSONDict]], *args: Any) -> Response:
            # A worker thread finishes the write even if the client disconnects meanwhile.
            return await run_in_threadpool(self._write, apply, *args)

        @app.exception_handler(ZendeskError)
        async def zendesk_error(request: Request, exc: ZendeskError) -> JSONResponse:
            return _json_error(exc)

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
            if exc.status_code == 404:
                return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, 404)
            return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

        @app.exception_handler(RequestValidationError)
        async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
            return _json_error(_bad_request(str(exc.errors())))

        @app.get("/api/v2/tickets/{ticket_id:int}.json")
        def show_ticket(ticket_id: int) -> JSONResponse:
            with self._lock:
                return JSONResponse({"ticket": copy.deepcopy(self._api_ticket(ticket_id))})

        @app.put("/api/v2/tickets/{ticket_id:int}.json")
        async def update_ticket(ticket_id: int, request: Request) -> Response:
            return await write(self._update_ticket, ticket_id, await json_body(request))

        @app.post("/api/v2/tickets.json")
        async def create_ticket(request: Request) -> Response:
            return await write(self._create_ticket, await json_body(request))

        @app.get("/api/v2/tickets/{ticket_id:int}/comments.json")
        def list_comments(ticket_id: int, request: Request) -> JSONResponse:
            return JSONResponse(self._comment_page(ticket_id, request))

        @app.put("/api/v2/tickets/{ticket_id:int}/tags.json")
        async def add_tags(ticket_id: int, request: Request) -> Response:
            return await write(self._add_tags, ticket_id, await json_body(request))

        @app.get("/api/v2/users/search.json")
        def search_users(query: str = "") -> JSONResponse:
            users = self._search_users(query)
            return JSONResponse(
                {"users": users, "next_page": None, "previous_page": None, "count": len(users)}
            )

        @app.get("/api/v2/users/me.json")
        def show_me() -> JSONResponse:
            with self._lock:
                return JSONResponse({"user": copy.deepcopy(self._api_user(API_USER_ID))})

        @app.get("/api/v2/users/{user_id:int}.json")
        def show_user(user_id: int) -> JSONResponse:
            with self._lock:
                return JSONResponse({"user": copy.deepcopy(self._api_user(user_id))})

        @app.post("/api/v2/users.json")
        async def create_user(request: Request) -> Response:
            return await write(self._create_user, await json_body(request))

        return app


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", default="bot@example.com")
    parser.add_argument("--api-token", default="zd-test-token")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None)


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in until SIGINT/SIGTERM, printing `READY <base_url>` once it listens."""
    serve_main(
        lambda a: ZendeskStandin(
            email=a.email,
            api_token=a.api_token,
            port=a.port,
            rate_limit_per_minute=a.rate_limit_per_minute,
            state_file=a.state,
        ),
        _args,
        argv,
    )


if __name__ == "__main__":
    main()
