"""Response bodies more than one route answers with (kept apart so the OpenAPI helpers can name them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ReviewCreated(BaseModel):
    """A draft taken in: where it went and why (POST /v1/drafts and the helpdesk webhooks)."""

    id: str
    route: str
    tier: str
    reasons: list[dict[str, str]]
    sla_due_at: datetime | None
    status: str
