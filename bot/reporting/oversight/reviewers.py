"""Each reviewer's pace and the later QA verdict on what they approved: the fast-approver warning's numbers.

All aggregates run in the database and read the period only:
- the reviewers are found by a loose index scan of the partial index ix_decisions_approvals (approvals
  only, 0006: one seek per reviewer), and each one's approvals of the period are a range of it
  (actor, decided_at): counted in one UNION ALL statement, the median read at its rank (LIMIT 2 OFFSET);
- the team's median is the median of those reviewers' medians (each reviewer counts once);
- the QA verdicts start from the period's QA ratings (few: a sampled share), each joined to the
  approval it rates through the unique (review_id, stage) key; they come first, since the reviewers are
  counted only when some reviewer's approved replies fail QA more often than the team's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from bot.reporting.oversight.interval import Rate
from bot.reporting.stats.query import distinct_values
from storage.models import APPROVALS, UTCDateTime

CHUNK = 50  # reviewers per UNION ALL statement


@dataclass(frozen=True)
class ReviewerPace:
    """One reviewer's approvals in the period: how many, the median time, and QA's later verdict on them."""

    actor_id: str
    approvals: int
    median_seconds: float | None
    qa: Rate  # QA defects among this reviewer's approved replies that were rated


@dataclass(frozen=True)
class TeamPace:
    """Every reviewer with enough approvals; the team's median (the median of those reviewers' own medians,
    so one busy reviewer does not set the bar) and the QA defect rate of all approved replies rated.

    When no reviewer's approved replies fail QA more often than the team's, no warning can follow and the
    reviewers are not counted (the costly part: a range of every approval of the period): `reviewers` is
    empty and `approvals` None."""

    reviewers: tuple[ReviewerPace, ...]
    median_seconds: float | None
    approvals: int | None
    qa: Rate


class _Q:
    """Runs the statements of one period, with the SQLite index hint where its planner needs one."""

    def __init__(self, session: Session, since: datetime, until: datetime) -> None:
        self.session = session
        sqlite = session.get_bind().dialect.name == "sqlite"
        self.hint = " INDEXED BY ix_decisions_approvals" if sqlite else ""
        self.params: dict[str, Any] = {"since": since, "until": until}

    def run(self, sql: str, extra: dict[str, Any] | None = None) -> Any:
        times = [bindparam(t, type_=UTCDateTime()) for t in ("since", "until") if f":{t}" in sql]
        params = {k: v for k, v in {**self.params, **(extra or {})}.items() if f":{k}" in sql}
        return self.session.execute(text(sql).bindparams(*times), params)

    def reviewers(self) -> list[str]:
        """Everyone who ever approved a draft: a loose scan of ix_decisions_approvals."""
        base = f"SELECT min(actor_id) FROM decisions{self.hint} WHERE {APPROVALS}"
        sql = (
            f"WITH RECURSIVE a(v) AS ({base} UNION ALL SELECT ({base} AND actor_id > a.v) FROM a "
            "WHERE a.v IS NOT NULL) SELECT v FROM a WHERE v IS NOT NULL"
        )
        return [str(v) for v in self.run(sql).scalars()]

    def counts(self, actors: list[str]) -> dict[str, tuple[int, int]]:
        """(approvals, approvals with a time) per reviewer in the period: one range each."""
        out: dict[str, tuple[int, int]] = {}
        for start in range(0, len(actors), CHUNK):
            chunk = actors[start : start + CHUNK]
            parts = [
                f"SELECT :a{i}, count(*), count(seconds_to_decision) FROM decisions{self.hint} "
                f"WHERE {APPROVALS} AND actor_id = :a{i} AND decided_at >= :since AND decided_at < :until"
                for i in range(len(chunk))
            ]
            rows = self.run(" UNION ALL ".join(parts), {f"a{i}": a for i, a in enumerate(chunk)})
            out.update({str(a): (int(n), int(timed)) for a, n, timed in rows if n})
        return out

    def reviewer_median(self, actor: str, timed: int) -> float | None:
        """The median approval time of one reviewer (percentile_cont(0.5)), read at its rank."""
        sql = (
            f"SELECT seconds_to_decision FROM decisions{self.hint} WHERE {APPROVALS} AND actor_id = :actor "
            "AND decided_at >= :since AND decided_at < :until AND seconds_to_decision IS NOT NULL "
            "ORDER BY seconds_to_decision LIMIT 2 OFFSET :skip"
        )
        return _median(self, sql, timed, {"actor": actor})

    def qa_of_approvals(self, types: list[str]) -> dict[str, tuple[int, int]]:
        """(QA-rated, defects) per approver, of the approvals of the period rated so far.

        Driven from the period's QA ratings of human replies (ix_decisions_stats, a sampled share) to the
        approval each rates (the unique review_id, stage key); SQLite is told that order (CROSS JOIN), as
        its planner would otherwise walk every approval of the period."""
        if not types:
            return {}
        names = ", ".join(f":t{i}" for i in range(len(types)))
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        q_from = (
            "decisions q INDEXED BY ix_decisions_stats CROSS JOIN decisions r"
            if sqlite
            else ("decisions q JOIN decisions r ON r.review_id = q.review_id")
        )
        sql = (
            "SELECT r.actor_id, count(*), sum(CASE WHEN q.decision = 'qa_defect' THEN 1 ELSE 0 END) "
            f"FROM {q_from} WHERE r.review_id = q.review_id AND r.stage = 'review' "
            f"AND q.interaction_type IN ({names}) AND q.stage = 'qa' AND q.decision IN ('qa_good', 'qa_defect') "
            "AND q.decided_at >= :since AND q.decided_at < :until AND q.route != 'auto_send' "
            "AND r.decision = 'approve' AND r.decided_at >= :since AND r.decided_at < :until GROUP BY r.actor_id"
        )
        rows = self.run(sql, {f"t{i}": t for i, t in enumerate(types)})
        return {str(a): (int(n), int(bad or 0)) for a, n, bad in rows if a is not None}


def _median(q: _Q, sql: str, n: int, params: dict[str, Any]) -> float | None:
    """percentile_cont(0.5) of n values: the one or two in the middle, read with LIMIT 2 OFFSET."""
    if n <= 0:
        return None
    values = [float(v) for v in q.run(sql, {**params, "skip": (n - 1) // 2}).scalars()]
    if not values:
        return None
    return values[0] if n % 2 or len(values) < 2 else (values[0] + values[1]) / 2


def _middle(values: list[float]) -> float | None:
    """The median of a few numbers (the reviewers' own medians)."""
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _rate(rated_and_defects: tuple[int, int] | None) -> Rate:
    rated, defects = rated_and_defects or (0, 0)
    return Rate(defects, rated)


def _worse_than_team(rate: Rate, team: Rate) -> bool:
    return rate.low is not None and team.value is not None and rate.low > team.value


def _some_worse(rated: Iterable[tuple[int, int] | None], team: Rate) -> bool:
    """Whether any of these (rated, defects) fails QA more often than the team, on the Wilson lower bound."""
    return any(_worse_than_team(_rate(r), team) for r in rated)


def _paces(
    q: _Q, counts: dict[str, tuple[int, int]], qa: dict[str, tuple[int, int]], *, timed: bool
) -> tuple[ReviewerPace, ...]:
    """Each reviewer's pace; their median approval time only when `timed`."""
    return tuple(
        ReviewerPace(actor, n, q.reviewer_median(actor, t) if timed else None, _rate(qa.get(actor)))
        for actor, (n, t) in sorted(counts.items())
    )


def reviewer_pace(*, session: Session, since: datetime, until: datetime, min_approvals: int) -> TeamPace:
    """Approval pace and later QA defect rate per reviewer with at least `min_approvals` in [since, until).

    Only when some reviewer's approved replies fail QA more often than the team's, on the Wilson lower
    bound, are the reviewers counted and their medians read (each reviewer's approval times of the
    period, ordered): otherwise no warning can follow (TeamPace)."""
    q = _Q(session, since, until)
    qa = q.qa_of_approvals(distinct_values(session, "decisions", "interaction_type"))
    team = Rate(sum(bad for _, bad in qa.values()), sum(n for n, _ in qa.values()))
    if not _some_worse(qa.values(), team):
        return TeamPace(reviewers=(), median_seconds=None, approvals=None, qa=team)
    counts = {a: c for a, c in q.counts(q.reviewers()).items() if c[0] >= min_approvals}
    reviewers = _paces(q, counts, qa, timed=_some_worse((qa.get(a) for a in counts), team))
    return TeamPace(
        reviewers=reviewers,
        median_seconds=_middle([r.median_seconds for r in reviewers if r.median_seconds is not None]),
        approvals=sum(r.approvals for r in reviewers),
        qa=team,
    )
