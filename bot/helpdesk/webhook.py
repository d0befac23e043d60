"""A signed JSON POST per decision, for any helpdesk (or anything else) that can receive a webhook.

Signed like Slack signs its requests, so a receiver verifies it in a few lines (docs/helpdesk.md):
`X-Hitl-Signature: v0=hex(HMAC-SHA256(secret, "v0:{X-Hitl-Timestamp}:{raw body}"))`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from bot.helpdesk.base import Conflict, RateLimited, Rejected, Unavailable, response_detail, retry_after

MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Hitl-Signature` value for this timestamp and raw body."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature (constant-time compare)."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= MAX_SKEW_SECONDS and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSender:
    """POSTs decisions to HELPDESK_WEBHOOK_URL; any 2xx means delivered."""

    name = "webhook"

    def __init__(
        self, *, url: str, secret: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url
        self.secret = secret
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
            headers={"User-Agent": "hitl/0.1"},
        )

    def close(self) -> None:
        self.http.close()

    def send(self, event: dict[str, Any], *, now: float | None = None) -> int:
        """POST one event; returns the HTTP status, raises the helpdesk errors otherwise."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(now if now is not None else time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Hitl-Timestamp": timestamp,
            "X-Hitl-Signature": sign(self.secret, timestamp, body),
            "X-Hitl-Delivery": str(event["id"]),
        }
        try:
            response = self.http.post(self.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Unavailable(
                f"webhook unreachable: {type(exc).__name__}: {exc}", maybe_applied=False
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"webhook failed mid-request: {type(exc).__name__}: {exc}", maybe_applied=True
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return status
        detail = response_detail(response)
        if status == 409:
            raise Conflict(f"webhook 409: {detail}")
        if status == 429:
            raise RateLimited(f"webhook 429: {detail}", retry_after(response))
        if status >= 500 or status == 408:
            raise Unavailable(
                f"webhook {status}: {detail}", maybe_applied=True, retry_after=retry_after(response)
            )
        raise Rejected(f"webhook {status}: {detail}")
