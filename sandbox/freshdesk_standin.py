"""Local stand-in for the Freshdesk API v2, over real HTTP, written from Freshdesk's public API reference.

Behaves like Freshdesk where the app depends on it: Basic auth with the API key as user and any password,
`POST /tickets/{id}/reply` and `/notes` (HTML bodies, `body_text` derived), `PUT /tickets/{id}` with
numeric statuses and `responder_id`, `GET /tickets/{id}/conversations` (oldest first, paged), agents found
by email, `GET /agents/me`, 404 with an empty body, 400 "Validation failed" with per-field errors, and 429
with `Retry-After`. Test controls (outage, latency, lost responses) come from `HttpStandin`.
"""

from __future__ import annotations

import base64
import binascii
import copy
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bot.helpdesk.base import html_to_text
from sandbox.standin_base import ApiError, HttpStandin, JSONDict, serve_main

API_AGENT_ID = 80_000_001
STATUSES = (2, 3, 4, 5)  # open, pending, resolved, closed


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(field: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(
        400,
        {"description": "Validation failed", "errors": [{"field": field, "message": message, "code": code}]},
    )


def _not_found() -> ApiError:
    return ApiError(404, None)  # Freshdesk answers an unknown id with an empty 404


class FreshdeskStandin(HttpStandin):
    """In-memory Freshdesk account: agents, tickets and their conversations."""

    title = "Freshdesk stand-in"

    def __init__(self, *, api_key: str = "fd-test-key", port: int = 0, state_file: str | None = None) -> None:
        self.api_key = api_key
        self.api_agent_id = API_AGENT_ID
        super().__init__(port=port, state_file=state_file)

    # ----- seeding and inspection
    def add_agent(self, id: int, email: str, name: str) -> JSONDict:
        with self._lock:
            agent = {
                "id": id,
                "available": True,
                "occasional": False,
                "ticket_scope": 1,
                "contact": {"name": name, "email": email, "active": True},
            }
            self._state["agents"][str(id)] = agent
            self._save()
            return copy.deepcopy(agent)

    def add_ticket(
        self, id: int, *, subject: str = "", status: int = 2, requester_id: int = 5001, description: str = ""
    ) -> JSONDict:
        with self._lock:
            stamp = _iso(self._tick())
            ticket = {
                "id": id,
                "subject": subject,
                "description": f"<div>{description}</div>",
                "description_text": description,
                "status": status,
                "priority": 1,
                "requester_id": requester_id,
                "responder_id": None,
                "group_id": None,
                "created_at": stamp,
                "updated_at": stamp,
            }
            self._state["tickets"][str(id)] = ticket
            self._state["conversations"][str(id)] = []
            self._save()
            return copy.deepcopy(ticket)

    def ticket(self, id: int) -> JSONDict:
        with self._lock:
            return copy.deepcopy(self._ticket(id))

    def conversations(self, id: int) -> list[JSONDict]:
        """Replies and notes, oldest first."""
        with self._lock:
            self._ticket(id)
            return copy.deepcopy(self._state["conversations"][str(id)])

    def public_replies(self, id: int) -> list[JSONDict]:
        """What the customer was sent: public, outgoing replies."""
        return [c for c in self.conversations(id) if not c["private"] and not c["incoming"]]

    def notes(self, id: int) -> list[JSONDict]:
        return [c for c in self.conversations(id) if c["private"]]

    def customer_reply(self, id: int, text: str = "Any news?") -> JSONDict:
        """The requester writes again: an incoming conversation and a newer `updated_at`."""
        with self._lock:
            ticket = self._ticket(id)
            added = self._append(ticket, text, ticket["requester_id"], private=False, incoming=True)
            self._save()
            return added

    def require_field_for_status(self, status: int, field: str) -> None:
        """Refuse (400) setting `status` while the ticket's custom field `field` is empty, as an admin can
        make a field mandatory before a ticket moves on."""
        with self._lock:
            self._state.setdefault("required", {})[str(status)] = field

    def deactivate_agent(self, id: int) -> None:
        """The agent is still listed, but no longer allowed to write (their contact is inactive)."""
        with self._lock:
            self._state["agents"][str(id)]["contact"]["active"] = False
            self._save()

    def delete_ticket(self, id: int) -> None:
        with self._lock:
            self._state["tickets"].pop(str(id), None)
            self._save()

    # ----- state
    def _empty_state(self) -> JSONDict:
        agent = {
            "id": API_AGENT_ID,
            "available": True,
            "occasional": False,
            "ticket_scope": 1,
            "contact": {"name": "API Agent", "email": "api@freshdesk.invalid", "active": True},
        }
        return {
            "agents": {str(API_AGENT_ID): agent},
            "tickets": {},
            "conversations": {},
            "clock": 0,
            "next_id": 10_000_001,
        }

    def _ticket(self, id: int) -> JSONDict:
        ticket: JSONDict | None = self._state["tickets"].get(str(id))
        if ticket is None:
            raise _not_found()
        return ticket

    def _append(
        self,
        ticket: JSONDict,
        body_html_or_text: str,
        user_id: int,
        *,
        private: bool,
        incoming: bool,
        html: bool = False,
    ) -> JSONDict:
        stamp = _iso(self._tick())
        text = html_to_text(body_html_or_text) if html else body_html_or_text
        conversation = {
            "id": self._new_id(),
            "body": body_html_or_text if html else f"<div>{text}</div>",
            "body_text": text,
            "incoming": incoming,
            "private": private,
            "user_id": user_id,
            "support_email": None,
            "source": 0 if not private else 2,
            "ticket_id": ticket["id"],
            "created_at": stamp,
            "updated_at": stamp,
            "attachments": [],
        }
        self._state["conversations"][str(ticket["id"])].append(conversation)
        ticket["updated_at"] = stamp
        return copy.deepcopy(conversation)

    def _authenticated(self, headers: dict[str, str]) -> bool:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.api_key

    def _unauthorized(self) -> ApiError:
        return ApiError(
            401,
            {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."},
        )

    def _rate_limited(self, retry_after: int) -> ApiError:
        return ApiError(
            429,
            {"message": "You have exceeded the limit of requests per minute"},
            {"Retry-After": str(retry_after), "X-RateLimit-Total": "50", "X-RateLimit-Remaining": "0"},
        )

    def _unavailable(self) -> ApiError:
        return ApiError(503, {"message": "Service Unavailable"})

    # ----- writes
    def _comment(self, ticket_id: int, payload: object, *, note: bool) -> tuple[int, JSONDict]:
        ticket = self._ticket(ticket_id)
        data = payload if isinstance(payload, dict) else {}
        body = data.get("body")
        if not isinstance(body, str) or not body.strip():
            raise _invalid("body", "It should not be blank as this is a mandatory field", "missing_field")
        user_id = data.get("user_id", API_AGENT_ID)
        agent = self._state["agents"].get(str(user_id))
        if agent is None or not agent["contact"]["active"]:
            raise _invalid("user_id", "There is no agent matching the given user_id")
        private = bool(data.get("private", True)) if note else False
        return 201, self._append(ticket, body, int(user_id), private=private, incoming=False, html=True)

    def _update(self, ticket_id: int, payload: object) -> tuple[int, JSONDict]:
        ticket = self._ticket(ticket_id)
        data = payload if isinstance(payload, dict) else {}
        self._check_update(ticket, data)
        for field in ("status", "responder_id", "group_id", "priority"):
            if field in data:
                ticket[field] = data[field]
        ticket["updated_at"] = _iso(self._tick())
        return 200, copy.deepcopy(ticket)

    def _check_update(self, ticket: JSONDict, data: JSONDict) -> None:
        """400 "Validation failed" as Freshdesk answers a bad status, responder or missing mandatory field."""
        if "status" in data and data["status"] not in STATUSES:
            raise _invalid("status", "It should be one of these values: '2,3,4,5'", "invalid_value")
        if (
            "responder_id" in data
            and data["responder_id"] is not None
            and str(data["responder_id"]) not in self._state["agents"]
        ):
            raise _invalid("responder_id", "There is no agent matching the given responder_id")
        required = self._state.get("required", {}).get(str(data.get("status")))
        if required and not (ticket.get("custom_fields") or {}).get(required):
            raise _invalid(
                f"custom_fields.{required}",
                "It should not be blank as this is a mandatory field",
                "missing_field",
            )

    # ----- HTTP
    def _routes(self, app: FastAPI) -> None:
        from starlette.concurrency import run_in_threadpool

        async def body(request: Request) -> object:
            import json

            raw = await request.body()
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(
                    400,
                    {
                        "description": "Validation failed",
                        "errors": [
                            {
                                "field": "body",
                                "message": "Request body has invalid json format",
                                "code": "invalid_json",
                            }
                        ],
                    },
                ) from None

        @app.get("/api/v2/agents/me")
        def me() -> JSONResponse:
            with self._lock:
                return JSONResponse(copy.deepcopy(self._state["agents"][str(API_AGENT_ID)]))

        @app.get("/api/v2/agents")
        def agents(email: str = "") -> JSONResponse:
            with self._lock:
                found = [
                    a
                    for a in self._state["agents"].values()
                    if not email or a["contact"]["email"].lower() == email.strip().lower()
                ]
                return JSONResponse(copy.deepcopy(found))

        @app.get("/api/v2/tickets/{ticket_id:int}")
        def show(ticket_id: int) -> JSONResponse:
            with self._lock:
                return JSONResponse(copy.deepcopy(self._ticket(ticket_id)))

        @app.put("/api/v2/tickets/{ticket_id:int}")
        async def update(ticket_id: int, request: Request) -> Response:
            return await run_in_threadpool(self._write, self._update, ticket_id, await body(request))

        @app.post("/api/v2/tickets/{ticket_id:int}/reply")
        async def reply(ticket_id: int, request: Request) -> Response:
            payload = await body(request)
            return await run_in_threadpool(self._write, lambda: self._comment(ticket_id, payload, note=False))

        @app.post("/api/v2/tickets/{ticket_id:int}/notes")
        async def note(ticket_id: int, request: Request) -> Response:
            payload = await body(request)
            return await run_in_threadpool(self._write, lambda: self._comment(ticket_id, payload, note=True))

        @app.get("/api/v2/tickets/{ticket_id:int}/conversations")
        def conversations(ticket_id: int, page: int = 1, per_page: int = 30) -> JSONResponse:
            per_page = min(max(per_page, 1), 100)
            with self._lock:
                self._ticket(ticket_id)
                items = copy.deepcopy(self._state["conversations"][str(ticket_id)])
            start = (max(page, 1) - 1) * per_page
            headers = {}
            if start + per_page < len(items):
                headers["link"] = (
                    f'<{self.base_url}/api/v2/tickets/{ticket_id}/conversations?page={page + 1}>; rel="next"'
                )
            return JSONResponse(items[start : start + per_page], headers=headers)


def _args(parser: Any) -> None:
    parser.add_argument("--api-key", default="fd-test-key")


if __name__ == "__main__":
    serve_main(lambda a: FreshdeskStandin(api_key=a.api_key, port=a.port, state_file=a.state), _args)
