"""Local stand-in for the Intercom REST API, over real HTTP, written from Intercom's public API reference.

Behaves like Intercom where the app depends on it: Bearer tokens, the `Intercom-Version` header (unknown
versions refused), `GET /me`, `GET /admins`, `GET /conversations/{id}` with its parts, admin replies and
notes (`POST /conversations/{id}/reply`), assignment, close and open (`POST /conversations/{id}/parts`),
`error.list` bodies, and rate limits reported on every answer (`X-RateLimit-Limit/Remaining/Reset`, 429 when
used up). Test controls (outage, latency, lost responses) come from `HttpStandin`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from sandbox.standin_base import ApiError, HttpStandin, JSONDict, serve_main

TOKEN_ADMIN_ID = "7001"
VERSIONS = {f"2.{n}" for n in range(14)} | {"1.4", "Preview"}


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(
        status,
        {"type": "error.list", "request_id": "req-standin", "errors": [{"code": code, "message": message}]},
        headers,
    )


class IntercomStandin(HttpStandin):
    """In-memory Intercom workspace: admins and conversations with their parts."""

    title = "Intercom stand-in"

    def __init__(
        self,
        *,
        access_token: str = "ic-test-token",
        port: int = 0,
        state_file: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_token = access_token
        self.clock = clock  # X-RateLimit-Reset is read against it
        self.token_admin_id = TOKEN_ADMIN_ID
        self._limit: tuple[int, float] | None = None  # (requests allowed, window seconds)
        self._window_start = 0.0
        self._window_count = 0
        super().__init__(port=port, state_file=state_file)

    # ----- seeding and inspection
    def add_admin(self, id: str, email: str, name: str) -> JSONDict:
        with self._lock:
            admin = {"type": "admin", "id": id, "name": name, "email": email, "has_inbox_seat": True}
            self._state["admins"][id] = admin
            self._save()
            return copy.deepcopy(admin)

    def add_conversation(
        self, id: str, *, body: str = "Where is my order?", user_id: str = "u-1"
    ) -> JSONDict:
        with self._lock:
            now = self._tick()
            author = {"type": "user", "id": user_id, "name": "Maya Patel", "email": "maya@example.com"}
            conversation = {
                "type": "conversation",
                "id": id,
                "created_at": now,
                "updated_at": now,
                "title": None,
                "state": "open",
                "open": True,
                "admin_assignee_id": None,
                "team_assignee_id": None,
                "source": {
                    "type": "conversation",
                    "id": str(self._new_id()),
                    "body": f"<p>{body}</p>",
                    "author": author,
                },
                "conversation_parts": {
                    "type": "conversation_part.list",
                    "conversation_parts": [],
                    "total_count": 0,
                },
            }
            self._state["conversations"][id] = conversation
            self._save()
            return copy.deepcopy(conversation)

    def conversation(self, id: str) -> JSONDict:
        with self._lock:
            return copy.deepcopy(self._conversation(id))

    def parts(self, id: str, part_type: str | None = None) -> list[JSONDict]:
        parts = self.conversation(id)["conversation_parts"]["conversation_parts"]
        return [p for p in parts if part_type is None or p["part_type"] == part_type]

    def admin_replies(self, id: str) -> list[JSONDict]:
        """What the customer was sent: comments by admins."""
        return [p for p in self.parts(id, "comment") if p["author"]["type"] == "admin"]

    def user_reply(self, id: str, text: str = "Any news?") -> JSONDict:
        """The customer writes again."""
        with self._lock:
            conversation = self._conversation(id)
            author = dict(conversation["source"]["author"])
            part = self._add_part(conversation, "comment", f"<p>{text}</p>", author)
            self._save()
            return part

    def rate_limit(self, limit: int, window_seconds: float = 10.0) -> None:
        """Allow `limit` requests per window; answers carry X-RateLimit-* and 429 comes when used up."""
        with self._lock:
            self._limit = (limit, window_seconds)
            self._window_start, self._window_count = self.clock(), 0

    # ----- state
    def _empty_state(self) -> JSONDict:
        me = {
            "type": "admin",
            "id": TOKEN_ADMIN_ID,
            "name": "Support Bot",
            "email": "bot@intercom.invalid",
            "has_inbox_seat": True,
        }
        return {
            "admins": {TOKEN_ADMIN_ID: me},
            "conversations": {},
            "app": {"type": "app", "id_code": "abc123", "name": "Northwind"},
            "clock": 0,
            "next_id": 10_000_001,
        }

    def _conversation(self, id: str) -> JSONDict:
        conversation: JSONDict | None = self._state["conversations"].get(str(id))
        if conversation is None:
            raise _errors(404, "not_found", "Resource Not Found")
        return conversation

    def _add_part(
        self, conversation: JSONDict, part_type: str, body: str | None, author: JSONDict, **extra: Any
    ) -> JSONDict:
        now = self._tick()
        part = {
            "type": "conversation_part",
            "id": str(self._new_id()),
            "part_type": part_type,
            "body": body,
            "created_at": now,
            "updated_at": now,
            "notified_at": now,
            "author": author,
            "attachments": [],
            "redacted": False,
            **extra,
        }
        holder = conversation["conversation_parts"]
        holder["conversation_parts"].append(part)
        holder["total_count"] = len(holder["conversation_parts"])
        conversation["updated_at"] = now
        return copy.deepcopy(part)

    def _admin(self, admin_id: object) -> JSONDict:
        admin: JSONDict | None = self._state["admins"].get(str(admin_id))
        if admin is None:
            raise _errors(404, "admin_not_found", f"Admin {admin_id} not found")
        return {k: admin[k] for k in ("type", "id", "name", "email")}

    # ----- gate
    def _authenticated(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization", "") == f"Bearer {self.access_token}"

    def _unauthorized(self) -> ApiError:
        return _errors(401, "unauthorized", "Access Token Invalid")

    def _unavailable(self) -> ApiError:
        return _errors(503, "service_unavailable", "Sorry, the API service is temporarily unavailable")

    def _rate_limited(self, retry_after: int) -> ApiError:
        reset = str(int(self.clock()) + retry_after)
        return _errors(
            429,
            "rate_limit_exceeded",
            "Exceeded rate limit of 167 in 10_seconds",
            {"X-RateLimit-Limit": "167", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        )

    def _admit(self, headers: dict[str, str]) -> ApiError | None:
        rejection = super()._admit(headers)
        if rejection is not None:
            return rejection
        version = headers.get("intercom-version")
        if version is not None and version not in VERSIONS:
            return _errors(
                400, "intercom_version_invalid", f"The requested version could not be found: {version}"
            )
        with self._lock:
            return self._count_request()

    def _count_request(self) -> ApiError | None:
        if self._limit is None:
            return None
        limit, window = self._limit
        now = self.clock()
        if now - self._window_start >= window:
            self._window_start, self._window_count = now, 0
        if self._window_count >= limit:
            reset = int(self._window_start + window) + 1
            return _errors(
                429,
                "rate_limit_exceeded",
                f"Exceeded rate limit of {limit} in {window:g}_seconds",
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            )
        self._window_count += 1
        return None

    def _response_headers(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            if self._limit is None:
                return []
            limit, window = self._limit
            remaining = max(0, limit - self._window_count)
            reset = int(self._window_start + window) + 1
        return [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]

    # ----- writes
    def _reply(self, id: str, payload: object) -> tuple[int, JSONDict]:
        conversation = self._conversation(id)
        data = payload if isinstance(payload, dict) else {}
        message_type = data.get("message_type")
        if data.get("type") != "admin" or message_type not in ("comment", "note"):
            raise _errors(400, "parameter_invalid", "type must be admin and message_type comment or note")
        body = data.get("body")
        if not isinstance(body, str) or not body.strip():
            raise _errors(400, "parameter_not_found", "Body is required")
        self._add_part(conversation, str(message_type), body, self._admin(data.get("admin_id")))
        return 200, copy.deepcopy(conversation)

    def _manage(self, id: str, payload: object) -> tuple[int, JSONDict]:
        conversation = self._conversation(id)
        data = payload if isinstance(payload, dict) else {}
        author = self._admin(data.get("admin_id"))
        kind = data.get("message_type")
        if kind == "assignment":
            assignee = str(data.get("assignee_id"))
            if assignee != "0":
                self._admin(assignee)
            conversation["admin_assignee_id"] = None if assignee == "0" else int(assignee)
            self._add_part(
                conversation,
                "assignment",
                data.get("body"),
                author,
                assigned_to={"type": "admin", "id": assignee},
            )
        elif kind in ("close", "open"):
            conversation["state"] = "closed" if kind == "close" else "open"
            conversation["open"] = kind == "open"
            self._add_part(conversation, kind, data.get("body"), author)
        else:
            raise _errors(400, "parameter_invalid", "message_type must be assignment, close, open or snoozed")
        return 200, copy.deepcopy(conversation)

    # ----- HTTP
    def _routes(self, app: FastAPI) -> None:
        async def body(request: Request) -> object:
            raw = await request.body()
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                raise _errors(400, "parameter_invalid", "Request body is not valid JSON") from None

        @app.get("/me")
        def me() -> JSONResponse:
            with self._lock:
                return JSONResponse(
                    {
                        **copy.deepcopy(self._state["admins"][TOKEN_ADMIN_ID]),
                        "app": copy.deepcopy(self._state["app"]),
                    }
                )

        @app.get("/admins")
        def admins() -> JSONResponse:
            with self._lock:
                return JSONResponse(
                    {"type": "admin.list", "admins": copy.deepcopy(list(self._state["admins"].values()))}
                )

        @app.get("/conversations/{conversation_id}")
        def show(conversation_id: str) -> JSONResponse:
            with self._lock:
                return JSONResponse(copy.deepcopy(self._conversation(conversation_id)))

        @app.post("/conversations/{conversation_id}/reply")
        async def reply(conversation_id: str, request: Request) -> Response:
            payload = await body(request)
            return await run_in_threadpool(self._write, self._reply, conversation_id, payload)

        @app.post("/conversations/{conversation_id}/parts")
        async def manage(conversation_id: str, request: Request) -> Response:
            payload = await body(request)
            return await run_in_threadpool(self._write, self._manage, conversation_id, payload)


def _args(parser: Any) -> None:
    parser.add_argument("--access-token", default="ic-test-token")


if __name__ == "__main__":
    serve_main(lambda a: IntercomStandin(access_token=a.access_token, port=a.port, state_file=a.state), _args)
