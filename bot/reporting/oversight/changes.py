"""Recorded oversight changes in the review: applied or not, and the type's numbers before and after.

`change_sections` runs inside every oversight review (`build_review`): a recorded change whose
threshold the running policy now has is marked applied (at the time a service recorded that policy,
from its `policy_changed` audit row, else now), and the review shows the type's approve rate, error
rate, QA defect rate and volume in equal periods before and after it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.reporting.format import span_label
from bot.reporting.oversight.recommend import approved_rate, error_rate, qa_auto_defects
from bot.reporting.stats.model import Counts
from bot.reporting.stats.query import compute_stats
from bot.review.policy import Policy
from storage.db import session_scope
from storage.models import AuditEvent, OversightChange

log = logging.getLogger("hitl.oversight")

MAX_SHOWN_CHANGES = 5  # recorded changes the review shows, most recent first
TOLERANCE = 1e-9


class SectionData(NamedTuple):
    """A review section's fields (title, lines, per_type), built here and wrapped by the review."""

    title: str
    lines: tuple[str, ...]
    per_type: dict[str, tuple[str, ...]]


def same_threshold(a: object, b: object) -> bool:
    """Two thresholds equal within float noise (None only equals None)."""
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) < TOLERANCE


# ---------------------------------------------------------------- applied, and before / after


def _in_policy(change: OversightChange, policy: Policy) -> bool:
    return same_threshold(
        policy.thresholds(change.interaction_type).auto_send_at, change.after.get("auto_send_at")
    )


def _when_recorded(session: Session, change: OversightChange, now: datetime) -> datetime:
    """When a service first started with a policy carrying the change (its `policy_changed` row), else now."""
    a = AuditEvent
    q = (
        select(a)
        .where(col(a.action) == "policy_changed", col(a.at) >= change.accepted_at, col(a.at) <= now)
        .order_by(col(a.at))
    )
    needle = f"interaction_types.{change.interaction_type}"
    for event in session.execute(q).scalars():
        if any(
            str(line).startswith((f"{needle}.", f"{needle}:")) for line in event.detail.get("changes") or []
        ):
            recorded: datetime = event.at
            return recorded
    return now


def _mark_applied(session: Session, applied: dict[int, datetime]) -> None:
    """Store applied_at in its own short write transaction (the review itself only reads)."""
    bind = session.get_bind()
    engine = bind.execution_options(sqlite_begin="IMMEDIATE") if bind.dialect.name == "sqlite" else bind
    try:
        with session_scope(engine) as writer:  # type: ignore[arg-type]
            for change_id, at in applied.items():
                writer.execute(
                    update(OversightChange)
                    .where(col(OversightChange.id) == change_id, col(OversightChange.applied_at).is_(None))
                    .values(applied_at=at)
                )
    except Exception as exc:  # noqa: BLE001 - the review still shows the change; the next one stores it
        log.warning("could not mark oversight changes %s applied: %r", sorted(applied), exc)


def recorded_changes(
    *, session: Session, policy: Policy, now: datetime, interaction_type: str | None = None
) -> list[OversightChange]:
    """The latest recorded changes (most recent first), with applied_at filled in where the policy has them."""
    q = select(OversightChange).order_by(col(OversightChange.accepted_at).desc()).limit(MAX_SHOWN_CHANGES)
    if interaction_type:
        q = q.where(col(OversightChange.interaction_type) == interaction_type)
    changes = list(session.execute(q).scalars())
    newly = {
        c.id: _when_recorded(session, c, now)
        for c in changes
        if c.applied_at is None and _in_policy(c, policy)
    }
    for c in changes:
        if c.id in newly:
            session.expunge(c)
            c.applied_at = newly[c.id]
    if newly:
        _mark_applied(session, {k: v for k, v in newly.items() if k is not None})
    return changes


def _metrics(c: Counts) -> str:
    return (
        f"approved without edit {approved_rate(c).text()} · error rate {error_rate(c).text()} · "
        f"QA defects {qa_auto_defects(c).text() if c.qa_rated else '— (no QA ratings)'} · "
        f"{c.volume} drafts"
    )


def _threshold(value: object) -> str:
    if isinstance(value, int | float):
        return "never auto-send" if value > 1 else f"{value:.2f}"
    return "—"


def _head(change: OversightChange) -> str:
    before, after = change.before.get("auto_send_at"), change.after.get("auto_send_at")
    return (
        f"change #{change.id} ({change.verdict}: auto_send_at {_threshold(before)} → {_threshold(after)}), "
        f"accepted {change.accepted_at:%Y-%m-%d} by {_who(change.actor)}: “{change.reason[:200]}”"
    )


def _change_lines(
    session: Session, change: OversightChange, policy: Policy, now: datetime, period: timedelta
) -> tuple[str, ...]:
    """The change, and once applied the type's numbers in two equal windows: before it, and since."""
    head = _head(change)
    if change.applied_at is None:
        return (head, "not applied yet: the running policy does not have the new threshold")
    at = change.applied_at
    applied = f"{head}; applied {at:%Y-%m-%d %H:%M} UTC"
    window = min(period, now - at)
    if window < timedelta(hours=1):
        return (applied, "no numbers since it was applied yet (less than an hour)")
    o, itype, span = policy.oversight, change.interaction_type, span_label(window)
    was = compute_stats(session=session, since=at - window, until=at, interaction_type=itype, oversight=o)
    since = compute_stats(session=session, since=at, until=at + window, interaction_type=itype, oversight=o)
    empty = Counts()
    return (
        applied,
        f"the {span} before: " + _metrics(was.by_type.get(itype, empty)),
        f"the {span} after: " + _metrics(since.by_type.get(itype, empty)),
    )


def _who(actor: str) -> str:
    return f"<@{actor}>" if actor[:1] in ("U", "W") and actor.isalnum() else actor


def change_sections(
    *, session: Session, policy: Policy, now: datetime, period: timedelta, interaction_type: str | None = None
) -> list[SectionData]:
    """The review's "Oversight changes" section: recorded changes per type, before and after once applied."""
    changes = recorded_changes(session=session, policy=policy, now=now, interaction_type=interaction_type)
    if not changes:
        return []
    per_type: dict[str, tuple[str, ...]] = {}
    for change in changes:
        per_type[change.interaction_type] = per_type.get(change.interaction_type, ()) + _change_lines(
            session, change, policy, now, period
        )
    pending = sum(1 for c in changes if c.applied_at is None)
    lines = (f"{len(changes)} recorded change(s), {pending} not applied yet",)
    return [SectionData("Oversight changes", lines, per_type)]
