"""The audit log as JSON Lines: who did what, when (ingest, posts, clicks, decisions, write-backs, pings, policy)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TextIO

from sqlalchemy import select
from sqlmodel import Session

from bot.reporting.stats.query import columns
from storage.models import AuditEvent


def export_audit(
    *,
    session: Session,
    out: TextIO,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
) -> int:
    """Write audit rows oldest first, one JSON object a line; returns how many (streamed, any size)."""
    a = columns(AuditEvent)
    q = select(AuditEvent).order_by(a.at, a.id).execution_options(yield_per=1000)
    if since is not None:
        q = q.where(a.at >= since)
    if until is not None:
        q = q.where(a.at < until)
    if action:
        q = q.where(a.action == action)
    n = 0
    for event in session.execute(q).scalars():
        out.write(
            json.dumps(
                {
                    "id": event.id,
                    "at": event.at.isoformat(),
                    "actor": event.actor,
                    "action": event.action,
                    "review_id": event.review_id,
                    "detail": event.detail,
                },
                ensure_ascii=False,
                default=str,
            )
            + "\n"
        )
        n += 1
    return n
