"""Came back within the window: of the replies made in a period, how many customers wrote again within
the policy's `came_back_window` (default 72 h). Exact, every reply counted, answered from the rollup.

- **Which replies.** Drafts that went to the customer as a reply (approved, edited, auto-sent) with a
  known customer, created in [since, until - window): only replies whose window has passed by `until`
  are judged, so a reply made an hour ago does not count as "did not come back".
- **Came back** = a later draft of the same customer within the window (`later_contact`, one seek per
  reply on ix_reviews_customer_created).
- **Cached units.** A reply's answer is final once its window has passed: no draft is created in the
  past (drafts carry the writer's clock). So a UTC day or hour is stored in `stats_rollup`, under a key
  of its own (the window and `VERSION`), once it ended `GRACE` + window before now; the edges are read
  live (at most about an hour and a quarter of replies at each end).
- **Late facts.** A review decided after its unit may be cached (pending for longer than the window)
  turns into a reply late: `bot.review.decisions` bumps its day's generation (`invalidate_decided`),
  so that day is computed again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlmodel import Session

from bot.reporting.stats.rollup import (
    GRACE,
    HOUR,
    Ranges,
    floor_hour,
    invalidate,
    merge,
    read_units,
    split,
    sum_of_cached,
    write_units,
)
from storage.models import UTCDateTime

VERSION = 1  # bump when what a unit holds or how it is counted changes
REPLY_STATUSES = ("approved", "edited", "auto_sent")  # drafts that went to the customer as a reply
CameBack = dict[str, list[int]]  # interaction type -> [replies, came back]


def key(window: timedelta) -> str:
    """The rollup rows of this window (a different window reads and fills rows of its own)."""
    basis = ["came_back", VERSION, window.total_seconds(), REPLY_STATUSES]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:32]


def later_contact(dialect: str) -> str:
    """A later draft of the same customer within :window seconds (ix_reviews_customer_created)."""
    if dialect == "sqlite":
        within = "julianday(l.created_at) <= julianday(r.created_at) + :window / 86400.0"
    else:
        within = "l.created_at <= r.created_at + make_interval(secs => :window)"
    return (
        "EXISTS (SELECT 1 FROM reviews l WHERE l.customer_key = r.customer_key "
        f"AND l.created_at > r.created_at AND {within})"
    )


def _statement(dialect: str, n_ranges: int) -> TextClause:
    """Replies per type created in each of `n_ranges` ranges, and how many came back (one GROUP BY each)."""
    statuses = ", ".join(f"'{s}'" for s in REPLY_STATUSES)
    hint = " INDEXED BY ix_reviews_created_at" if dialect == "sqlite" else ""
    branches = [
        f"SELECT r.interaction_type, count(*), sum(CASE WHEN {later_contact(dialect)} THEN 1 ELSE 0 END) "
        f"FROM reviews r{hint} WHERE r.created_at >= :since{i} AND r.created_at < :until{i} "
        f"AND r.status IN ({statuses}) AND r.customer_key IS NOT NULL GROUP BY r.interaction_type"
        for i in range(n_ranges)
    ]
    times = [
        bindparam(f"{end}{i}", type_=UTCDateTime()) for i in range(n_ranges) for end in ("since", "until")
    ]
    return text(" UNION ALL ".join(branches)).bindparams(*times)


def measure(session: Session, ranges: Ranges, window: timedelta) -> CameBack:
    """Replies created in `ranges` and how many came back, per type, by the exact query."""
    if not ranges:
        return {}
    params: dict[str, Any] = {"window": window.total_seconds()}
    for i, (since, until) in enumerate(ranges):
        params[f"since{i}"], params[f"until{i}"] = since, until
    out: CameBack = {}
    for itype, n, back in session.execute(_statement(session.get_bind().dialect.name, len(ranges)), params):
        mine = out.setdefault(str(itype), [0, 0])
        mine[0] += int(n or 0)
        mine[1] += int(back or 0)
    return out


def came_back(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    window: timedelta,
    now: datetime | None = None,
    cached: bool = True,
) -> CameBack:
    """Per type: the replies of [since, until) whose window closed by `until`, and how many came back.

    `cached` reads (and fills) the rollup's closed units; False counts the whole range live."""
    closed = until - window
    if closed <= since:
        return {}
    if not cached:
        return measure(session, ((since, closed),), window)
    return _from_units(session, since, closed, window, now or until)[0]


def fill(session: Session, *, since: datetime, now: datetime, window: timedelta) -> int:
    """Compute and store the units of [since, now - window) not cached yet; how many (the pre-fill job)."""
    closed = now - window
    return _from_units(session, since, closed, window, now)[1] if closed > since else 0


def _from_units(
    session: Session, since: datetime, closed: datetime, window: timedelta, now: datetime
) -> tuple[CameBack, int]:
    """The counts of [since, closed) from cached units, missing units (computed and stored) and the live
    edges; and how many units were computed."""
    units, live = split(since, closed, now - GRACE - window)
    k = key(window)
    rows, generation = read_units(session, k, units)
    computed = {u: measure(session, ((u.start, u.end),), window) for u in units if u not in rows}
    if computed:
        write_units(session, k, computed, generation, now)
    total: dict[str, Any] = {}
    for part in (*(json.loads(json.dumps(c)) for c in computed.values()), sum_of_cached(rows)):
        merge(total, part)
    merge(total, measure(session, live, window))
    return {t: [int(n), int(b)] for t, (n, b) in total.items()}, len(computed)


def invalidate_decided(session: Session, created_at: datetime, *, window: timedelta, now: datetime) -> None:
    """A review created at `created_at` became a reply now: if its day's came-back may be cached already
    (the window of its hour has passed), bump that day's generation in the caller's transaction."""
    if floor_hour(created_at) + HOUR + window <= now + GRACE:
        invalidate(session, created_at, now=now)
