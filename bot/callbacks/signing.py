"""The signature receivers check: HMAC-SHA256 over `timestamp + "." + body`, sent as `v1=<hex>`."""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Hitl-Timestamp"
SIGNATURE_HEADER = "X-Hitl-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Hitl-Signature value for this body sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one signed callback POST."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
