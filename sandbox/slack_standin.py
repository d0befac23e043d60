"""A local stand-in for Slack's Web API: real HTTP, Slack-shaped answers, Slack's limits.

Tests and the offline demo point `slack_sdk.WebClient(base_url=standin.base_url)` at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

TEAM_ID = "T0SANDBOX1"
TEAM_NAME = "HITL Sandbox"
TEAM_DOMAIN = "hitl-sandbox"
APP_ID = "A0HITLAPP1"
BOT_USER_ID = "U0HITLBOT1"
BOT_ID = "B0HITLBOT1"
BOT_NAME = "hitl"

MAX_MESSAGE_BLOCKS = 50
# Tier 4 (views.publish, ...): 100+ calls a minute per workspace, with short bursts.
TIER4_PER_MINUTE = 100
TIER4_BURST = 20
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_BLOCK_TEXT = 12_000
MAX_MESSAGE_TEXT = 40_000
FILE_HEAD_BYTES = 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_JSON_FIELDS = ("blocks", "view", "metadata", "attachments", "files")
# What a token installed from manifest.yml is granted; Slack reports it in the x-oauth-scopes header.
BOT_SCOPES = (
    "chat:write",
    "chat:write.public",
    "commands",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "im:write",
    "files:write",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
)


class SlackError(Exception):
    """An error Slack would answer: `{"ok": false, "error": ...}` with an HTTP status and headers."""

    def __init__(
        self,
        error: str,
        messages: list[str] | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Slack would send."""
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def _require(args: Mapping[str, Any], name: str, error: str = "invalid_arguments") -> Any:
    value = args.get(name)
    if value in (None, ""):
        raise SlackError(error, [f"[ERROR] missing required field: {name}"])
    return value


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """Fields of a multipart/form-data body: str for plain fields, bytes for file parts."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise SlackError("invalid_form_data")
    fields: dict[str, Any] = {}
    for chunk in body.split(b"--" + match.group(1).encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, value = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        value = value[:-2] if value.endswith(b"\r\n") else value
        text_head = head.decode("utf-8", "replace")
        name = re.search(r'(?<![\w-])name="([^"]*)"', text_head)
        if name:
            fields[name.group(1)] = value if "filename=" in text_head else value.decode("utf-8", "replace")
    return fields


def _parse_request_args(headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Arguments of a Web API call, from the query string plus a JSON, form or multipart body."""
    args: dict[str, Any] = dict(query)
    content_type = headers.get("content-type", "")
    if body:
        if content_type.lower().startswith("application/json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(parsed, dict):
                raise SlackError("invalid_json")
            args.update(parsed)
        elif content_type.lower().startswith("multipart/form-data"):
            args.update(_parse_multipart(body, content_type))
        else:
            args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    for key in _JSON_FIELDS:
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


def _shape_errors(raw: Any, normalized: Any, pointer: str) -> list[str]:
    """Fields slack_sdk dropped (unknown to Block Kit) or strings where Slack wants an object."""
    if isinstance(raw, str) and isinstance(normalized, dict):
        return [f"[ERROR] must provide an object [json-pointer:{pointer}]"]
    if isinstance(raw, dict) and isinstance(normalized, dict):
        return _object_shape_errors(raw, normalized, pointer)
    errors: list[str] = []
    if isinstance(raw, list) and isinstance(normalized, list) and len(raw) == len(normalized):
        for i, (r, n) in enumerate(zip(raw, normalized, strict=True)):
            errors += _shape_errors(r, n, f"{pointer}/{i}")
    return errors


def _object_shape_errors(raw: dict[str, Any], normalized: dict[str, Any], pointer: str) -> list[str]:
    errors: list[str] = []
    for key, value in raw.items():
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            continue
        if key not in normalized:
            errors.append(f"[ERROR] unknown field: {key} [json-pointer:{pointer}/{key}]")
        else:
            errors += _shape_errors(value, normalized[key], f"{pointer}/{key}")
    return errors


def _text_length(value: Any) -> int:
    """Total length of every `text` string inside a block structure."""
    if isinstance(value, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else _text_length(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return 0


def _file_entries(args: dict[str, Any]) -> list[dict[str, Any]]:
    """The `files` argument of files.completeUploadExternal: a list of {id, title}."""
    entries = _require(args, "files")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("id") for e in entries):
        raise SlackError("invalid_arguments", ["[ERROR] files must be a list of {id, title}"])
    return entries


def _page(items: list[dict[str, Any]], args: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """One page of a cursor-paginated answer, and the next cursor ("" on the last page)."""
    start = int(args.get("cursor") or 0)
    limit = max(1, min(int(args.get("limit") or 100), 1000))
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else "")


def _in_history(message: dict[str, Any]) -> bool:
    """conversations.history lists top-level messages and replies broadcast to the channel."""
    thread_ts = message.get("thread_ts")
    return not thread_ts or thread_ts == message["ts"] or bool(message.get("reply_broadcast"))


def _metadata(value: Any) -> dict[str, Any] | None:
    """A message's `metadata` as Slack stores it: {event_type, event_payload}, else invalid_metadata_format."""
    if value in (None, ""):
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not isinstance(value.get("event_payload", {}), dict)
    ):
        raise SlackError("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": value.get("event_payload", {})}


def _invalid(message: str, pointer: str, error: str = "invalid_blocks") -> SlackError:
    return SlackError(error, [f"[ERROR] {message} [json-pointer:{pointer}]"])


def _short_id() -> str:
    return secrets.token_urlsafe(4).replace("-", "x").replace("_", "y")


def _fill_ids(block: dict[str, Any]) -> None:
    """Give blocks and interactive elements the ids Slack generates when the app leaves them out."""
    block.setdefault("block_id", _short_id())
    elements = [block.get("accessory"), block.get("element")]
    if block.get("type") == "actions":
        elements += block.get("elements", [])
    for element in elements:
        if isinstance(element, dict) and element.get("type") not in (None, "image"):
            element.setdefault("action_id", _short_id())


def validate_blocks(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[dict[str, Any]]:
    """Blocks as Slack stores them, validated by slack_sdk's models; SlackError where Slack would refuse."""
    if not isinstance(blocks, list):
        raise _invalid("must provide an array", pointer, "invalid_blocks_format")
    if len(blocks) > limit:
        raise _invalid(f"no more than {limit} items allowed", pointer)
    normalized: list[dict[str, Any]] = []
    errors: list[str] = []
    for i, raw in enumerate(blocks):
        as_dict, block_errors = _normalized_block(raw, f"{pointer}/{i}")
        errors += block_errors
        if as_dict is not None:
            normalized.append(as_dict)
    errors += _duplicate_block_ids(normalized, pointer)
    if errors:
        raise SlackError("invalid_blocks", errors)
    for item in normalized:
        _fill_ids(item)
    return normalized


def _duplicate_block_ids(blocks: list[dict[str, Any]], pointer: str) -> list[str]:
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    return [
        f"[ERROR] duplicate block_id: {b} [json-pointer:{pointer}]"
        for b in sorted(set(block_ids))
        if block_ids.count(b) > 1
    ]


def _normalized_block(raw: Any, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    """One block as slack_sdk's model renders it, and the errors Slack would report for it."""
    try:
        block = Block.parse(raw) if isinstance(raw, dict) else None
        if block is None:
            raise ValueError(f"unsupported block: {raw!r:.80}")
        as_dict = block.to_dict()
    except Exception as exc:  # slack_sdk raises SlackObjectFormationError, TypeError, ... on bad input
        return None, [f"[ERROR] {exc} [json-pointer:{where}]"]
    return as_dict, _shape_errors(raw, as_dict, where)


def validate_view(view: Any) -> dict[str, Any]:
    """Validate a modal/home view with slack_sdk's `View` and return its normalised dict."""
    if not isinstance(view, dict):
        raise _invalid("must provide an object", "/view", "invalid_arguments")
    if view.get("type") not in ("modal", "home"):
        raise _invalid('type must be "modal" or "home"', "/view/type")
    if view["type"] == "modal" and not view.get("title"):
        raise _invalid("missing required field: title", "/view/title")
    blocks = validate_blocks(view.get("blocks"), limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    try:
        as_dict = View(**{**view, "blocks": blocks}).to_dict()
    except Exception as exc:  # SlackObjectFormationError or bad argument types
        raise _invalid(str(exc), "/view") from None
    errors = _shape_errors({k: v for k, v in view.items() if k != "blocks"}, as_dict, "/view")
    if errors:
        raise SlackError("invalid_blocks", errors)
    return as_dict


class SlackStandin:
    """Slack's Web API on 127.0.0.1, in a background uvicorn thread, with inspection helpers for tests."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        post_rate_per_channel: float = 1.0,
        burst: int = 3,
        port: int = 0,
        trigger_ttl: float = 3.0,
        strict_fallback: bool = False,
        channel_ids: bool = False,
    ) -> None:
        self.token = token
        self.post_rate_per_channel = post_rate_per_channel
        self.burst = burst
        self.port = port
        self.trigger_ttl = trigger_ttl
        self.strict_fallback = strict_fallback
        # As Slack does: channels have ids (C…), names (#support-review) are resolved to them and posts
        # answer with the id. Off by default, where a channel is the string it was posted to.
        self.channel_ids = channel_ids
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self.scopes = list(BOT_SCOPES)
        self._reset_state()
        self._methods: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "api.test": lambda args, _base: {"args": args},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "usergroups.list": self._usergroups_list,
            "conversations.list": self._conversations_list,
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """Web API base URL for `WebClient(base_url=...)`, ending in `/api/`."""
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SlackStandin:
        """Serve in a background thread and return once the server answers."""
        self._socket = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )  # asyncio sets TCP_NODELAY only then
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="slack-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._server.started:
                try:
                    if httpx.post(self.base_url + "api.test", timeout=1).status_code == 200:
                        with self._lock:
                            self._calls.clear()
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("Slack stand-in did not start within 10 s")

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    def add_user(self, user_id: str, name: str, email: str | None = None, is_bot: bool = False) -> None:
        """Register a workspace member for users.info / users.lookupByEmail."""
        profile: dict[str, Any] = {"real_name": name, "display_name": name}
        if email is not None:
            profile["email"] = email
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": is_bot,
                "is_admin": False,
                "tz": "Europe/London",
                "profile": profile,
            }

    def add_usergroup(self, group_id: str, user_ids: list[str]) -> None:
        """Register a user group (`S...`) and its members."""
        with self._lock:
            self._usergroups[group_id] = list(user_ids)

    def add_channel(self, name: str, *, is_private: bool = False, is_member: bool = True) -> str:
        """Register a channel for conversations.list / conversations.info; returns its id."""
        with self._lock:
            channel_id = ("G" if is_private else "C") + f"0SANDBOX{len(self._channels) + 1:02d}"
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name.lstrip("#"),
                "is_channel": not is_private,
                "is_private": is_private,
                "is_archived": False,
                "is_member": is_member,
            }
            return channel_id

    def issue_trigger_id(self) -> str:
        """A trigger_id as an interaction would carry: valid for `trigger_ttl` seconds, usable once."""
        trigger_id = f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger_id] = time.monotonic() + self.trigger_ttl
        return trigger_id

    def force_ratelimit(self, method: str, times: int, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After: retry_after`."""
        with self._lock:
            self._forced_limits[method] = (times, retry_after)

    def drop_responses(self, method: str, times: int = 1, hang: float = 3.0) -> None:
        """Carry out the next `times` calls of `method`, then hold their answers `hang` s (a lost answer)."""
        with self._lock:
            self._dropped[method] = (times, hang)

    def set_outage(self, on: bool) -> None:
        """While on, every request answers HTTP 503."""
        with self._lock:
            self._outage = on

    def reset(self) -> None:
        """Forget all traffic, triggers and test controls; registered users and groups stay."""
        with self._lock:
            self._reset_state()

    # ------------------------------------------------------------------ inspection (deep copies)

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posted messages (top-level and thread replies) in posting order, optionally for one channel."""
        with self._lock:
            key = None if channel is None else self._resolve(channel, create=False)
            return copy.deepcopy([m for m in self._messages if key is None or m["channel"] == key])

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Replies in the thread whose parent is `ts` (the parent itself excluded)."""
        with self._lock:
            return copy.deepcopy(
                [
                    m
                    for m in self._messages
                    if m["channel"] == self._resolve(channel, create=False)
                    and m.get("thread_ts") == ts
                    and m["ts"] != ts
                ]
            )

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """One stored message; KeyError if there is none."""
        with self._lock:
            message = self._find_message(self._resolve(channel, create=False), ts)
            if message is None:
                raise KeyError((channel, ts))
            return copy.deepcopy(message)

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages, optionally only those shown to `user`."""
        with self._lock:
            return copy.deepcopy([e for e in self._ephemerals if user is None or e["user"] == user])

    def views(self) -> list[dict[str, Any]]:
        """Opened or pushed views in their current state, in opening order."""
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def home(self, user: str) -> dict[str, Any] | None:
        """The Home tab view last published for `user` (None if none was)."""
        with self._lock:
            return copy.deepcopy(self._homes.get(user))

    def homes(self) -> dict[str, dict[str, Any]]:
        """Every published Home view, by user id."""
        with self._lock:
            return copy.deepcopy(self._homes)

    def files(self) -> list[dict[str, Any]]:
        """Completed file uploads: id, channel, title, initial_comment, length, head (first bytes), ..."""
        with self._lock:
            return copy.deepcopy(self._files)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Every request received: method, time, status, args (without token) and error."""
        with self._lock:
            return copy.deepcopy([c for c in self._calls if method is None or c["method"] == method])

    def warnings(self) -> list[dict[str, Any]]:
        """Warnings Slack would have attached to answers, e.g. `missing_text_fallback`."""
        with self._lock:
            return copy.deepcopy(self._warnings)

    # ------------------------------------------------------------------ HTTP plumbing

    def _reset_state(self) -> None:
        self._messages: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._homes: dict[str, dict[str, Any]] = {}  # user id → their published Home view
        self._uploads: dict[str, dict[str, Any]] = {}
        self._files: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._warnings: list[dict[str, Any]] = []
        self._triggers: dict[str, float | None] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._forced_limits: dict[str, tuple[int, int]] = {}
        self._dms: dict[tuple[str, ...], str] = {}
        self._dropped: dict[str, tuple[int, float]] = {}
        self._outage = False
        self._last_ts_us = 0
        self._counter = 0

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route("/api/{method}", methods=["GET", "POST"])
        async def api(method: str, request: Request) -> Response:
            body = await request.body()
            root_url = str(request.url).split("?")[0].rsplit("/api/", 1)[0] + "/"  # honours a mount prefix
            status, payload, headers = self._handle(
                method, request.headers, request.query_params, body, root_url
            )
            hang = self._take_drop(method) if status == 200 else 0.0
            if hang:
                await asyncio.sleep(hang)  # done, but the client gave up waiting for the answer
            return JSONResponse(payload, status_code=status, headers=headers)

        @app.post("/upload/{file_id}")
        async def upload(file_id: str, request: Request) -> Response:
            body = await request.body()
            status, text = self._handle_upload(file_id, request.headers.get("content-type", ""), body)
            return PlainTextResponse(text, status_code=status)

        return app

    def _record(self, method: str, status: int, args: dict[str, Any], error: str | None) -> None:
        self._calls.append(
            {
                "method": method,
                "time": time.time(),
                "status": status,
                "args": {k: v for k, v in args.items() if k != "token"},
                "error": error,
            }
        )

    def _handle(
        self, method: str, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, root_url: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one Web API call: (HTTP status, JSON body, headers)."""
        with self._lock:
            args: dict[str, Any] = {}
            try:
                args = _parse_request_args(headers, query, body)
                if self._outage:
                    raise SlackError("service_unavailable", status=503)
                self._check_forced_limit(method)
                handler = self._methods.get(method)
                if handler is None:
                    raise SlackError("unknown_method")
                if method != "api.test":
                    self._authenticate(headers, args)
                warned_before = len(self._warnings)
                result = {"ok": True, **handler(args, root_url)}
                warned = [w["warning"] for w in self._warnings[warned_before:]]
                if warned:
                    result.update(warning=",".join(warned), response_metadata={"warnings": warned})
            except SlackError as err:
                self._record(method, err.status, args, err.error)
                return err.status, err.body(), err.headers
            self._record(method, 200, args, None)
            return 200, result, {"x-oauth-scopes": ",".join(self.scopes)}

    def _handle_upload(self, file_id: str, content_type: str, body: bytes) -> tuple[int, str]:
        """Receive the bytes of a files.getUploadURLExternal upload (raw or multipart)."""
        with self._lock:
            if self._outage:
                self._record("upload", 503, {"file_id": file_id}, "service_unavailable")
                return 503, "service unavailable"
            if content_type.lower().startswith("multipart/form-data"):
                try:
                    parts = [v for v in _parse_multipart(body, content_type).values() if isinstance(v, bytes)]
                except SlackError:
                    parts = []
                if not parts:
                    self._record("upload", 400, {"file_id": file_id}, "invalid_form_data")
                    return 400, "no file part in multipart body"
                body = parts[0]
            upload = self._uploads.get(file_id)
            if upload is None:
                self._record("upload", 404, {"file_id": file_id}, "file_not_found")
                return 404, "file not found"
            upload["data"] = body
            self._record("upload", 200, {"file_id": file_id, "length": len(body)}, None)
            return 200, f"OK - {len(body)}"

    def _check_forced_limit(self, method: str) -> None:
        times, retry_after = self._forced_limits.get(method, (0, 1))
        if times > 0:
            self._forced_limits[method] = (times - 1, retry_after)
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    def _authenticate(self, headers: Mapping[str, str], args: Mapping[str, Any]) -> None:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else args.get("token")
        if not token:
            raise SlackError("not_authed")
        if token != self.token:
            raise SlackError("invalid_auth")

    def _take_post_token(self, channel: str) -> None:
        """Per-channel token bucket for chat.postMessage; 429 with Retry-After when empty."""
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.post_rate_per_channel)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.post_rate_per_channel))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        self._buckets[channel] = (tokens - 1, now)

    def _take_method_token(self, method: str, per_minute: float, burst: int) -> None:
        """A workspace-wide token bucket for one Web API method (its tier); 429 with Retry-After when empty."""
        rate, now = per_minute / 60.0, time.monotonic()
        tokens, last = self._buckets.get(f"method:{method}", (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[f"method:{method}"] = (tokens, now)
            raise SlackError(
                "ratelimited",
                status=429,
                headers={"Retry-After": str(max(1, math.ceil((1 - tokens) / rate)))},
            )
        self._buckets[f"method:{method}"] = (tokens - 1, now)

    def _next_ts(self) -> str:
        us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}0{self._counter:09d}"

    def _take_drop(self, method: str) -> float:
        with self._lock:
            times, hang = self._dropped.get(method, (0, 0.0))
            if times <= 0:
                return 0.0
            self._dropped[method] = (times - 1, hang)
            self._calls[-1]["answer_lost"] = True
            return hang

    def _channel_for(self, name: str, *, private: bool = False) -> str:
        bare = name.lstrip("#")
        found = next((c["id"] for c in self._channels.values() if c["name"] == bare), None)
        return str(found) if found is not None else self.add_channel(bare, is_private=private)

    def _resolve(self, channel: str, *, create: bool) -> str:
        """The id a channel argument names (ids mode), or the argument itself."""
        if not self.channel_ids or channel in self._channels or channel.startswith("D"):
            return channel
        bare = channel.lstrip("#")
        found = next((c["id"] for c in self._channels.values() if c["name"] == bare), None)
        if found is None and create and channel.startswith("#"):
            found = self._channel_for(bare)  # chat:write.public: any public channel by name
        if found is None:
            raise SlackError("channel_not_found")
        return str(found)

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._messages if m["channel"] == channel and m["ts"] == ts), None)

    def _message_content(self, method: str, args: dict[str, Any], channel: str) -> tuple[str | None, Any]:
        """Validated (text, blocks) of a message call; blocks is None when not sent."""
        text, blocks = args.get("text"), args.get("blocks")
        if not text and not blocks:
            raise SlackError("no_text")
        if blocks is not None:
            blocks = validate_blocks(blocks, limit=MAX_MESSAGE_BLOCKS)
            if _text_length(blocks) > MAX_MESSAGE_BLOCK_TEXT:
                raise SlackError("msg_blocks_too_long")
            if not text:
                if self.strict_fallback:
                    raise SlackError("missing_text_fallback")
                self._warnings.append(
                    {"method": method, "warning": "missing_text_fallback", "channel": channel}
                )
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            text = text[:MAX_MESSAGE_TEXT]
        return text, blocks

    @staticmethod
    def _public(message: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in message.items() if k not in ("channel", "history") and v is not None}

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        channel = self._resolve(_require(args, "channel", "channel_not_found"), create=True)
        self._take_post_token(channel)
        text, blocks = self._message_content("chat.postMessage", args, channel)
        thread_ts = args.get("thread_ts") or None
        message = {
            "type": "message",
            "channel": channel,
            "ts": self._next_ts(),
            "text": text or "",
            "blocks": blocks,
            "thread_ts": thread_ts,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "reply_broadcast": bool(thread_ts) and _truthy(args.get("reply_broadcast")),
            "metadata": _metadata(args.get("metadata")),
            "history": [],
        }
        if thread_ts:
            parent = self._find_message(channel, thread_ts)
            if parent is not None:
                parent.update(
                    thread_ts=thread_ts,
                    reply_count=parent.get("reply_count", 0) + 1,
                    latest_reply=message["ts"],
                )
        self._messages.append(message)
        return {"channel": channel, "ts": message["ts"], "message": self._public(message)}

    def _chat_update(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        channel = self._resolve(_require(args, "channel", "channel_not_found"), create=False)
        ts = _require(args, "ts", "message_not_found")
        message = self._find_message(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = self._message_content("chat.update", args, channel)
        message["history"].append(
            {
                "text": message["text"],
                "blocks": copy.deepcopy(message["blocks"]),
                "edited": copy.deepcopy(message.get("edited")),
            }
        )
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks or None
        if args.get("metadata") is not None:
            message["metadata"] = args["metadata"]
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"channel": channel, "ts": ts, "text": message["text"], "message": self._public(message)}

    def _chat_post_ephemeral(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        channel = self._resolve(_require(args, "channel", "channel_not_found"), create=True)
        user = _require(args, "user", "user_not_found")
        text, blocks = self._message_content("chat.postEphemeral", args, channel)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "ts": ts,
                "text": text or "",
                "blocks": blocks,
                "thread_ts": args.get("thread_ts") or None,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        channel = self._resolve(_require(args, "channel", "channel_not_found"), create=False)
        ts = _require(args, "message_ts", "message_not_found")
        message = self._find_message(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        channel_id = channel.lstrip("#")
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        if message.get("thread_ts") and message["thread_ts"] != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={channel_id}"
        return {"channel": channel, "permalink": link}

    def _conversations_open(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        users = args.get("users") or ""
        members = tuple(
            sorted(u.strip() for u in (users.split(",") if isinstance(users, str) else users) if u.strip())
        )
        if not members:
            raise SlackError("users_list_not_supplied")
        already_open = members in self._dms
        if not already_open:
            self._dms[members] = self._new_id("D" if len(members) == 1 else "G")
        result: dict[str, Any] = {"channel": {"id": self._dms[members]}}
        if already_open:
            result.update(no_op=True, already_open=True)
        return result

    def _conversations_history(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        """Top-level messages (and broadcast replies), newest first; metadata with include_all_metadata."""
        channel = self._resolve(_require(args, "channel", "channel_not_found"), create=False)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or math.inf)
        with_metadata = _truthy(args.get("include_all_metadata"))
        found = [
            {k: v for k, v in self._public(m).items() if with_metadata or k != "metadata"}
            for m in reversed(self._messages)
            if m["channel"] == channel and _in_history(m) and oldest < float(m["ts"]) < latest
        ]
        page, next_cursor = _page(found, args)
        return {
            "messages": page,
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _use_trigger(self, trigger_id: str) -> None:
        expires = self._triggers.get(trigger_id)
        if expires is None:
            raise SlackError("invalid_trigger_id")
        self._triggers[trigger_id] = None
        if time.monotonic() > expires:
            raise SlackError("expired_trigger_id")

    def _views_open(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        trigger_id = _require(args, "trigger_id")
        view = validate_view(_require(args, "view"))
        self._use_trigger(trigger_id)
        view_id = self._new_id("V")
        return self._store_view(view, view_id, root_view_id=view_id, previous_view_id=None)

    def _views_update(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        current = (
            self._views.get(view_id)
            if view_id
            else next(
                (v for v in self._views.values() if external_id and v.get("external_id") == external_id), None
            )
        )
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view = validate_view(_require(args, "view"))
        return self._store_view(
            view,
            current["id"],
            root_view_id=current["root_view_id"],
            previous_view_id=current["previous_view_id"],
        )

    def _views_publish(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        """Publish a user's Home tab: a validated view of type "home", replacing the one before (hash checked)."""
        user = _require(args, "user_id")
        self._take_method_token("views.publish", TIER4_PER_MINUTE, TIER4_BURST)
        view = validate_view(_require(args, "view"))
        if view.get("type") != "home":
            raise _invalid('views.publish takes a view of type "home"', "/view/type")
        current = self._homes.get(user)
        if args.get("hash") and current is not None and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view_id = current["id"] if current is not None else self._new_id("V")
        answer = self._store_view(view, view_id, root_view_id=view_id, previous_view_id=None)
        self._homes[user] = self._views.pop(view_id)
        return answer

    def _store_view(
        self, view: dict[str, Any], view_id: str, *, root_view_id: str, previous_view_id: str | None
    ) -> dict[str, Any]:
        """Store a validated view with the fields Slack adds, and answer with it."""
        view.update(
            id=view_id,
            team_id=TEAM_ID,
            app_id=APP_ID,
            bot_id=BOT_ID,
            app_installed_team_id=TEAM_ID,
            root_view_id=root_view_id,
            previous_view_id=previous_view_id,
            state={"values": {}},
            hash=f"{int(time.time())}.{secrets.token_hex(4)}",
        )
        for key, default in (
            ("private_metadata", ""),
            ("callback_id", ""),
            ("external_id", ""),
            ("clear_on_close", False),
            ("notify_on_close", False),
        ):
            view.setdefault(key, default)
        self._views[view_id] = view
        return {"view": copy.deepcopy(view)}

    def _users_info(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        user = self._users.get(args.get("user", ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _users_lookup_by_email(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        email = str(args.get("email", "")).lower()
        for user in self._users.values():
            if email and user["profile"].get("email", "").lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    def _usergroups_users_list(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        members = self._usergroups.get(args.get("usergroup", ""))
        if members is None:
            raise SlackError("no_such_subteam")
        return {"users": list(members)}

    def _usergroups_list(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        groups = [
            {"id": gid, "handle": gid.lower(), "date_delete": 0, "user_count": len(members)}
            for gid, members in self._usergroups.items()
        ]
        return {"usergroups": groups}

    def _conversations_list(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        types = str(args.get("types") or "public_channel").split(",")
        wanted = [
            c
            for c in self._channels.values()
            if ("private_channel" if c["is_private"] else "public_channel") in types
        ]
        return {"channels": copy.deepcopy(wanted), "response_metadata": {"next_cursor": ""}}

    def _conversations_info(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        channel = self._channels.get(str(args.get("channel", "")))
        if channel is None:
            raise SlackError("channel_not_found")
        return {"channel": copy.deepcopy(channel)}

    def _files_get_upload_url(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        filename = _require(args, "filename")
        try:
            length = int(_require(args, "length"))
        except ValueError:
            raise SlackError("invalid_arguments", ["[ERROR] length must be an integer"]) from None
        file_id = self._new_id("F")
        self._uploads[file_id] = {
            "filename": filename,
            "length": length,
            "data": None,
            "alt_txt": args.get("alt_txt"),
        }
        return {"upload_url": f"{root_url.rstrip('/')}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any], root_url: str) -> dict[str, Any]:
        entries = _file_entries(args)
        channels = [c for c in str(args.get("channels") or "").split(",") if c]
        channel = args.get("channel_id") or (channels[0] if channels else None)
        return {"files": [self._complete_file(entry, args, channel, channels) for entry in entries]}

    def _complete_file(
        self, entry: dict[str, Any], args: dict[str, Any], channel: str | None, channels: list[str]
    ) -> dict[str, Any]:
        """Share one uploaded file: store it as posted and describe it as files.completeUploadExternal does."""
        upload = self._uploads.get(entry["id"])
        if upload is None or upload["data"] is None:
            raise SlackError("file_not_found")
        data: bytes = upload["data"]
        if len(data) != upload["length"]:
            raise SlackError("file_upload_size_mismatch")
        record = {
            "id": entry["id"],
            "name": upload["filename"],
            "title": entry.get("title") or upload["filename"],
            "channel": channel,
            "channels": channels or ([channel] if channel else []),
            "initial_comment": args.get("initial_comment"),
            "thread_ts": args.get("thread_ts") or None,
            "length": len(data),
            "head": data[:FILE_HEAD_BYTES],
            "is_png": data.startswith(PNG_SIGNATURE),
            "alt_txt": upload["alt_txt"],
        }
        self._files.append(record)
        del self._uploads[entry["id"]]
        return {
            "id": record["id"],
            "name": record["name"],
            "title": record["title"],
            "size": record["length"],
            "user": BOT_USER_ID,
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{BOT_USER_ID}/{record['id']}",
        }
