"""The `decision_callback` outbox kind: one signed POST to the draft's callback_url, retried like any write.

2xx is done; 408, 429 (after Retry-After), 5xx, timeouts and connection errors are retried with backoff;
any other answer (3xx included: redirects are not followed, so the allow-list cannot be stepped
around) dead-letters the row, announced in the ops channel, to be revived with `hitl outbox retry`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx

from bot.app.metrics import callback_call
from bot.app.runtime import Runtime
from bot.app.settings import secret
from bot.callbacks.hosts import allowed_hosts, host_allowed
from bot.callbacks.signing import signed_headers
from bot.outbox.kinds import DecisionCallback, OutboxKind
from bot.outbox.registry import KindPolicy, Permanent, Retry
from storage.models import OutboxItem

CALLBACK_POLICY = KindPolicy(max_attempts=12, max_age=timedelta(hours=24), initial_delay=2.0, max_delay=600.0)
RETRIED_STATUSES = frozenset({408, 429})


def callback_body(item: OutboxItem, callback: DecisionCallback) -> bytes:
    """The JSON sent: the payload without the URL, plus an id that stays the same across retries."""
    body: dict[str, Any] = callback.model_dump(mode="json", exclude={"url"})
    body["id"] = item.dedupe_key or f"outbox:{item.id}"
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def outcome(response: httpx.Response) -> dict[str, Any]:
    """Done for 2xx; otherwise raise Retry or Permanent as the status says."""
    status = response.status_code
    if 200 <= status < 300:
        return {"outcome": f"HTTP {status}"}
    detail = f"callback answered HTTP {status}: {response.text[:200]}"
    if status in RETRIED_STATUSES or status >= 500:
        raise Retry(detail, retry_after=_retry_after(response))
    if 300 <= status < 400:
        raise Permanent(f"{detail} (redirects are not followed)")
    raise Permanent(detail)


class CallbackSender:
    """Posts decision callbacks over one HTTP client (connection reuse across rows)."""

    def __init__(self, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0), follow_redirects=False, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def deliver(self, runtime: Runtime, item: OutboxItem, callback: DecisionCallback) -> dict[str, Any]:
        """Sign and POST one callback; the allow-list is checked again (it may have changed since ingest)."""
        settings = runtime.settings
        if not host_allowed(callback.url, allowed_hosts(settings)):
            raise Permanent(f"{callback.url} is no longer allowed by HITL_CALLBACK_HOSTS")
        key = secret(settings.callback_secret)
        if not key:
            raise Permanent("HITL_CALLBACK_SECRET is not set: callbacks cannot be signed")
        body = callback_body(item, callback)
        headers = signed_headers(key, int(runtime.clock.now().timestamp()), body)
        try:
            response = self.http.post(callback.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            callback_call(runtime, "timeout")
            raise Retry(f"callback timed out: {exc}") from exc
        except httpx.TransportError as exc:
            callback_call(runtime, "error")
            raise Retry(f"callback failed: {type(exc).__name__}: {exc}") from exc
        callback_call(runtime, str(response.status_code))
        return outcome(response)


def install(runtime: Runtime) -> None:
    """Register the decision_callback kind (one HTTP client per runtime)."""
    runtime.services.kinds.register(OutboxKind.DECISION_CALLBACK, CallbackSender().deliver, CALLBACK_POLICY)
