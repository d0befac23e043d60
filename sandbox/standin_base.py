"""What the Zendesk, Freshdesk and Intercom stand-ins share: uvicorn on 127.0.0.1 in a thread, a request log, and
test controls (forced 429s, outages, latency, writes answered 500 or cut off mid-response), with state
optionally kept in a JSON file so a stand-in process outlives the app it serves (the crash test).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSONDict = dict[str, Any]


class ApiError(Exception):
    """An API failure answered with the vendor's status code, JSON body and headers."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class DroppedResponse(Response):
    """Starts a response promising a body, then ends: uvicorn closes the connection mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )


class _Gate:
    """ASGI middleware: logs every request and applies outage, auth and rate limits before routing."""

    def __init__(self, app: ASGIApp, standin: HttpStandin) -> None:
        self.app = app
        self.standin = standin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        entry = self.standin._log_request(scope, body)
        status: list[int] = []

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *self.standin._response_headers()],
                }
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                entry["status"] = status[0] if status else None  # logged before the last byte leaves
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rejection = self.standin._admit(headers)
        if rejection is not None:
            await rejection.response()(scope, replay, record)
        else:
            await self.app(scope, replay, record)


class ServedStandin:
    """A vendor stand-in's server and test controls: uvicorn on 127.0.0.1 in a thread, forced 429s,
    outages, latency, writes answered 500 or cut off mid-response. Subclasses set `self.app`."""

    title = "stand-in"
    app: FastAPI

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self._lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_controls()

    # ----- lifecycle
    @property
    def base_url(self) -> str:
        if self.port == 0:
            raise RuntimeError(f"{self.title} has no port yet: call start() first")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a background thread and return once the socket accepts requests."""
        if self._thread is not None:
            return self
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP;
        # without it every response waits ~40 ms (Nagle against the client's delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        # log_config=None: leave the host process's logging (pytest, the demo) as it is.
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self.title, daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{self.title} failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down (state is kept; start() serves it again on the same port)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----- test controls
    def force_429(self, times: int, retry_after: int = 1) -> None:
        """Answer the next `times` authenticated requests with 429 and `Retry-After: retry_after`."""
        with self._lock:
            self._forced_429, self._forced_retry_after = times, retry_after

    def set_outage(self, on: bool) -> None:
        """While on, every request gets 503."""
        with self._lock:
            self._outage = on

    def set_latency(self, seconds: float) -> None:
        """Wait this long before applying each write (it still applies if the client goes away)."""
        with self._lock:
            self._latency = seconds

    def fail_after_write(self, times: int, *, drop: bool = False) -> None:
        """Apply the next `times` writes, then answer 500, or with `drop` cut the connection mid-response."""
        with self._lock:
            self._fail_after_write, self._drop_connection = times, drop

    def requests(self, method: str | None = None, path_contains: str | None = None) -> list[JSONDict]:
        """Logged requests (method, path, query, json, status, ...); status None: no full answer."""
        with self._lock:
            return [
                copy.deepcopy(e)
                for e in self._log
                if (method is None or e["method"] == method.upper())
                and (path_contains is None or path_contains in e["path"])
            ]

    # ----- plumbing
    def _reset_controls(self) -> None:
        self._log: list[JSONDict] = []
        self._forced_429 = 0
        self._forced_retry_after = 1
        self._outage = False
        self._latency = 0.0
        self._fail_after_write = 0
        self._drop_connection = False

    def _save(self) -> None:
        """Persist the state (subclasses that keep a state file)."""

    def _internal_error(self) -> Response:
        return JSONResponse({"message": "internal error"}, status_code=500)

    def _write(self, apply: Callable[..., tuple[int, object]], *args: Any) -> Response:
        """Apply a write under the lock (after the latency), then answer, fail or cut the connection."""
        with self._lock:
            latency = self._latency
        if latency:
            time.sleep(latency)
        with self._lock:
            try:
                status, body = apply(*args)
            except ApiError as exc:
                return exc.response()
            self._save()
            fail = self._fail_after_write > 0
            if fail:
                self._fail_after_write -= 1
            drop = self._drop_connection
        if not fail:
            return JSONResponse(body, status_code=status)
        if drop:
            return DroppedResponse()
        return self._internal_error()


class HttpStandin(ServedStandin):
    """Base of a vendor stand-in with its state in one JSON dict (`_state`), kept in `state_file` if given;
    subclasses build routes in `_routes(app)`."""

    def __init__(self, *, port: int = 0, state_file: str | None = None) -> None:
        super().__init__(port=port)
        self.state_file = state_file
        self._state: JSONDict = self._empty_state()
        if state_file is not None and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as handle:
                self._state = json.load(handle)
        self.app = FastAPI(title=self.title, docs_url=None, redoc_url=None, openapi_url=None)
        self.app.add_middleware(_Gate, standin=self)

        @self.app.exception_handler(ApiError)
        async def api_error(_request: Any, exc: ApiError) -> Response:
            return exc.response()

        self._routes(self.app)

    # ----- for subclasses
    def _empty_state(self) -> JSONDict:
        raise NotImplementedError

    def _routes(self, app: FastAPI) -> None:
        raise NotImplementedError

    def _authenticated(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def _unauthorized(self) -> ApiError:
        return ApiError(401, {"message": "unauthorized"})

    def _rate_limited(self, retry_after: int) -> ApiError:
        return ApiError(429, {"message": "rate limited"}, {"Retry-After": str(retry_after)})

    def _unavailable(self) -> ApiError:
        return ApiError(503, {"message": "service unavailable"})

    def _response_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers added to every answer (rate-limit counters, for vendors that send them)."""
        return []

    def save(self) -> None:
        """Write the state file now (no-op without one)."""
        with self._lock:
            self._save()

    # ----- plumbing
    def _save(self) -> None:
        if self.state_file is None:
            return
        temporary = f"{self.state_file}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self._state, handle)
        os.replace(temporary, self.state_file)

    def _log_request(self, scope: Scope, body: bytes) -> JSONDict:
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        entry: JSONDict = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "json": payload,
            "headers": {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            "status": None,
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def _admit(self, headers: dict[str, str]) -> ApiError | None:
        with self._lock:
            if self._outage:
                return self._unavailable()
            if not self._authenticated(headers):
                return self._unauthorized()
            if self._forced_429 > 0:
                self._forced_429 -= 1
                return self._rate_limited(self._forced_retry_after)
        return None

    def _tick(self) -> int:
        """A strictly increasing Unix-second clock, so every write has a later stamp."""
        self._state["clock"] = max(int(time.time()), int(self._state.get("clock", 0)) + 1)
        return int(self._state["clock"])

    def _new_id(self) -> int:
        self._state["next_id"] = int(self._state.get("next_id", 10_000_001)) + 1
        return int(self._state["next_id"]) - 1


def serve_main(
    make: Callable[[Any], ServedStandin], add_args: Callable[[Any], None], argv: list[str] | None = None
) -> None:
    """`python -m sandbox.<vendor>_standin --port 0 --state FILE`: prints `READY <url>`, serves until SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state", default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    add_args(parser)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    standin = make(args)
    standin.set_latency(args.latency)
    with standin:
        print(f"READY {standin.base_url}", flush=True)
        stopping.wait()
