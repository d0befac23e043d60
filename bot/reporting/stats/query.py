"""`compute_stats`: the feedback store aggregated in the database (SQLite and PostgreSQL) into a `Stats`.

A handful of GROUP BY-free range aggregates per interaction type (one row per interaction type x
decision x flag) are folded into `Counts`. No query returns one row per decision, so the time grows
with the index range scanned, not with Python loops.

Design (measured on 1,000,000 decisions, see bench/stats.py): a GROUP BY over a period makes
SQLite sort every row (a temp B-tree: ~1.5 s) and PostgreSQL read the wide rows (~0.3 s). So each
(interaction type, stage, decision) is aggregated on its own: an equality prefix plus a time range
on the covering index ix_decisions_stats, which reads exactly the period's index entries and never
a row; drafts likewise per (type, route, tier) on ix_reviews_stats, pure range counts (the tiers
found by a loose index scan). One UNION ALL statement per type
carries all its ranges (PostgreSQL round trips add up). Interaction types are found by a loose
index scan (a recursive CTE: one seek per type). Percentiles walk the partial index
ix_decisions_human_seconds in order from the nearer end: exact, equal to percentile_cont, and
cheaper than sorting (PostgreSQL's percentile_cont over the period took ~0.45 s).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import product
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, SQLModel

from bot.reporting.stats.model import BAND_EDGES, HUMAN_KINDS, REPLY_EDGES, ROUTES, Band, Counts, Stats
from bot.review.policy import Oversight
from storage.models import (
    HUMAN_DECISIONS,
    Decision,
    DecisionKind,
    DefectCategory,
    Review,
    ReviewStatus,
    UTCDateTime,
)

KINDS: tuple[tuple[str, str], ...] = (
    *(("review", str(k)) for k in (*HUMAN_KINDS, DecisionKind.AUTO_SEND)),
    ("qa", str(DecisionKind.QA_GOOD)),
    ("qa", str(DecisionKind.QA_DEFECT)),
)
DEFECT_KINDS = {DecisionKind.EDIT, DecisionKind.TAKE_OVER, DecisionKind.REJECT, DecisionKind.QA_DEFECT}

Aggregates = list[tuple[str, Any]]  # (name, SQL expression) per aggregate column of one branch


def columns(model: type[SQLModel]) -> ReadOnlyColumnCollection[str, Column[Any]]:
    """A table's columns as SQLAlchemy Core sees them (typed, unlike SQLModel's class attributes)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table.c


def route_tiers(session: Session, interaction_type: str) -> list[tuple[str, str]]:
    """The (route, tier) pairs a type's drafts have ever had: a loose scan of ix_reviews_stats per route."""
    parts = []
    for i, route in enumerate(ROUTES):
        where = f"interaction_type = :itype AND route = '{route}'"
        parts.append(
            f"r{i}(v) AS (SELECT min(tier) FROM reviews WHERE {where} UNION ALL "
            f"SELECT (SELECT min(tier) FROM reviews WHERE {where} AND tier > r{i}.v) FROM r{i} "
            f"WHERE r{i}.v IS NOT NULL)"
        )
    sql = (
        "WITH RECURSIVE "
        + ", ".join(parts)
        + " "
        + " UNION ALL ".join(
            f"SELECT '{route}', v FROM r{i} WHERE v IS NOT NULL" for i, route in enumerate(ROUTES)
        )
    )
    return [(str(a), str(b)) for a, b in session.execute(text(sql), {"itype": interaction_type})]


def distinct_values(session: Session, table: str, column: str) -> list[str]:
    """Distinct values of an indexed leading column, by a loose index scan (one seek per value)."""
    sql = (
        f"WITH RECURSIVE t(v) AS (SELECT min({column}) FROM {table} UNION ALL "
        f"SELECT (SELECT min({column}) FROM {table} WHERE {column} > t.v) FROM t WHERE t.v IS NOT NULL) "
        "SELECT v FROM t WHERE v IS NOT NULL"
    )
    return [str(v) for v in session.execute(text(sql)).scalars()]


# ---------------------------------------------------------------- aggregates per decision kind


def _heavy_edit(o: Oversight) -> Any:
    d = columns(Decision)
    return or_(d.edit_distance.is_(None), d.edit_distance >= o.heavy_edit_distance)


def _kind_aggregates(kind: str, o: Oversight) -> Aggregates:
    """SLA, heavy edits and take-overs of review-routed drafts, for the kinds that have them."""
    d = columns(Decision)
    aggs: Aggregates = []
    if kind in HUMAN_KINDS:
        aggs += [
            ("breached", func.count().filter(d.sla_breached.is_(True))),
            ("sla_known", func.count(d.sla_breached)),
        ]  # met = known - breached: one FILTER less a row
    if kind == DecisionKind.EDIT:
        aggs.append(("heavy", func.count().filter(_heavy_edit(o))))
    if kind == DecisionKind.TAKE_OVER:
        aggs.append(("on_review", func.count().filter(d.route == "review")))
    return aggs


def _defect_aggregates(kind: str, o: Oversight) -> Aggregates:
    """Defects by category (every known one and the policy's severe ones) for kinds that carry a defect.

    QA defects count here only for auto-sent replies: a defect in a human-approved reply is counted
    apart (`_qa_human_aggregates`), so `defects` and the severe counts keep meaning AI defects."""
    if kind not in DEFECT_KINDS:
        return []
    d = columns(Decision)
    cats = list(dict.fromkeys([*(str(c) for c in DefectCategory), *o.severe_defects]))
    auto = d.route == "auto_send" if kind == DecisionKind.QA_DEFECT else None

    def only_auto(cond: Any) -> Any:
        return cond if auto is None else and_(cond, auto)

    return [
        (
            "defects",
            func.count(d.defect_category)
            if auto is None
            else func.count().filter(only_auto(d.defect_category.is_not(None))),
        ),
        *((f"defect:{c}", func.count().filter(only_auto(d.defect_category == c))) for c in cats),
    ]


def _qa_human_aggregates(kind: str) -> Aggregates:
    """QA ratings of replies a human approved or edited (route other than auto_send; issue 12)."""
    if kind not in (DecisionKind.QA_GOOD, DecisionKind.QA_DEFECT):
        return []
    return [("human", func.count().filter(columns(Decision).route != "auto_send"))]


def _band_aggregates(kind: str, o: Oversight) -> Aggregates:
    """Decisions per confidence band (and heavy edits per band, for edits)."""
    if kind not in HUMAN_KINDS and kind != DecisionKind.AUTO_SEND:
        return []
    d = columns(Decision)
    edges = (0.0, *BAND_EDGES, 2.0)
    aggs: Aggregates = []
    for i in range(len(edges) - 1):
        band = and_(d.confidence >= edges[i], d.confidence < edges[i + 1])
        aggs.append((f"band:{i}", func.count().filter(band)))
        if kind == DecisionKind.EDIT:
            aggs.append((f"heavyband:{i}", func.count().filter(and_(band, _heavy_edit(o)))))
    return aggs


def _timing_aggregates(kind: str, o: Oversight) -> Aggregates:
    """Replies sent within each REPLY_EDGES bucket (approve, edit, auto-send) and capped reviewer time."""
    d = columns(Decision)
    aggs: Aggregates = []
    if kind in (DecisionKind.APPROVE, DecisionKind.EDIT, DecisionKind.AUTO_SEND):
        aggs += [
            (f"reply:{i}", func.count().filter(d.seconds_to_decision <= e)) for i, e in enumerate(REPLY_EDGES)
        ]
    if kind in HUMAN_KINDS:
        cap = o.review_time_cap.total_seconds()
        capped = case(
            (d.seconds_to_decision > cap, cap), (d.seconds_to_decision < 0, 0.0), else_=d.seconds_to_decision
        )
        aggs.append(("reviewer_seconds", func.sum(whole_seconds(capped))))
    return aggs


class whole_seconds(FunctionElement[int]):
    """A non-negative number of seconds rounded half up to an integer, the same on both databases.

    Reviewer time is summed as integers so that sums of days add up to the sum of the period exactly
    (a float sum truncated once per day would not)."""

    type = BigInteger()
    inherit_cache = True


@compiles(whole_seconds, "sqlite")
def _whole_seconds_sqlite(element: whole_seconds, compiler: Any, **kw: Any) -> str:
    return (
        f"CAST(({compiler.process(element.clauses, **kw)}) + 0.5 AS INTEGER)"  # truncates: floor for x >= 0
    )


@compiles(whole_seconds)
def _whole_seconds(element: whole_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor(({compiler.process(element.clauses, **kw)}) + 0.5) AS BIGINT)"


def _aggregates(kind: str, o: Oversight, calibration: bool) -> Aggregates:
    """The aggregates one decision kind needs (fewer per row = faster), as (name, expression).

    `calibration` (the oversight review) adds confidence bands, reply-time buckets and reviewer time."""
    aggs: Aggregates = [("n", func.count()), *_kind_aggregates(kind, o), *_defect_aggregates(kind, o)]
    aggs += _qa_human_aggregates(kind)
    if calibration:
        aggs += _band_aggregates(kind, o) + _timing_aggregates(kind, o)
    return aggs


def _branch(label: str, aggs: Aggregates, width: int) -> Any:
    """`SELECT 'label', agg1, agg2, ..., NULL, NULL` padded to `width` aggregate columns."""
    pad = [cast(null(), BigInteger) for _ in range(width - len(aggs))]
    return select(literal(label, String).label("label"), *(expr for _, expr in aggs), *pad)


# ---------------------------------------------------------------- folding aggregate rows into counts


def _fold_defects(c: Counts, kind: str, v: dict[str, int], severe: set[str]) -> None:
    listed = {key.split(":", 1)[1]: value for key, value in v.items() if key.startswith("defect:")}
    for cat, value in listed.items():
        if not value:
            continue
        c.defects[cat] += value
        if cat in severe:
            c.severe_defects += value
            if kind == DecisionKind.QA_DEFECT:
                c.qa_severe += value
    unlisted = v.get("defects", 0) - sum(listed.values())
    if unlisted > 0:
        c.defects["other"] += unlisted


def _add_to_band(b: Band, kind: str, value: int) -> None:
    if kind == DecisionKind.AUTO_SEND:
        b.auto_send += value
        return
    b.human += value
    if kind == DecisionKind.APPROVE:
        b.approve += value
    if kind == DecisionKind.REJECT:
        b.errors += value


def _fold_bands(bands: dict[int, Band], kind: str, v: dict[str, int]) -> None:
    for key, value in v.items():
        if key.startswith("band:"):
            _add_to_band(bands[int(key.split(":")[1])], kind, value)
        elif key.startswith("heavyband:"):
            bands[int(key.split(":")[1])].errors += value


def _fold_decisions(c: Counts, kind: str, v: dict[str, int]) -> None:
    n = v["n"]
    if kind == DecisionKind.AUTO_SEND:
        c.auto_send += n
        return
    setattr(c, kind, getattr(c, kind) + n)
    c.sla_breached += v.get("breached", 0)
    c.sla_met += v.get("sla_known", 0) - v.get("breached", 0)
    c.heavy_edits += v.get("heavy", 0)
    c.take_over_on_review += v.get("on_review", 0)


def _fold_timing(c: Counts, kind: str, v: dict[str, int]) -> None:
    c.reviewer_seconds += v.get("reviewer_seconds", 0)
    if f"reply:{len(REPLY_EDGES) - 1}" not in v:
        return
    into = c.reply_auto if kind == DecisionKind.AUTO_SEND else c.reply_reviewed
    for i in range(len(REPLY_EDGES)):
        into[i] += v[f"reply:{i}"]


def _fold(c: Counts, bands: dict[int, Band], kind: str, v: dict[str, int], severe: set[str]) -> None:
    """Add one (type, kind) aggregate row to the type's counts and confidence bands."""
    _fold_defects(c, kind, v, severe)
    _fold_timing(c, kind, v)
    if kind == DecisionKind.QA_GOOD:
        c.qa_good += v["n"] - v.get("human", 0)  # qa_good / qa_defect: auto-sent replies only
        c.qa_human_good += v.get("human", 0)
        return
    if kind == DecisionKind.QA_DEFECT:
        c.qa_defect += v["n"] - v.get("human", 0)
        c.qa_human_defect += v.get("human", 0)
        return
    _fold_bands(bands, kind, v)
    _fold_decisions(c, kind, v)


# ---------------------------------------------------------------- one statement per interaction type


@dataclass
class Tally:
    """What the per-type statements add up to, across types."""

    by_type: dict[str, Counts] = field(default_factory=dict)
    bands_by_type: dict[str, dict[int, Band]] = field(default_factory=dict)
    volume: Counter[tuple[str, str]] = field(default_factory=Counter)
    human: int = 0


@dataclass(frozen=True)
class Plan:
    """The time ranges (one period, or the pieces the rollup reads live) and the aggregates every
    per-type statement uses."""

    ranges: tuple[tuple[datetime, datetime], ...]
    calibration: bool
    severe: set[str]
    aggregates: dict[str, Aggregates]
    signature: tuple[Any, ...]  # what the aggregates depend on: the cached statements' key

    @property
    def width(self) -> int:
        return max(len(a) for a in self.aggregates.values())


Tiers = tuple[tuple[str, str], ...]
_STATEMENTS: dict[tuple[Any, ...], tuple[dict[str, Aggregates], TextClause]] = {}
_STATEMENTS_MAX = 256
_AGGREGATES: dict[tuple[Any, ...], dict[str, Aggregates]] = {}


def make_plan(ranges: tuple[tuple[datetime, datetime], ...], o: Oversight, calibration: bool) -> Plan:
    """The per-type statements' plan over `ranges` (each [since, until)) with the policy's parameters."""
    signature = plan_signature(o, calibration)
    if signature not in _AGGREGATES:  # building the expressions costs more than running a short range
        if len(_AGGREGATES) >= _STATEMENTS_MAX:
            _AGGREGATES.clear()
        _AGGREGATES[signature] = {kind: _aggregates(kind, o, calibration) for _, kind in KINDS}
    return Plan(
        ranges=ranges,
        calibration=calibration,
        severe=set(o.severe_defects),
        aggregates=_AGGREGATES[signature],
        signature=signature,
    )


def plan_signature(o: Oversight, calibration: bool) -> tuple[Any, ...]:
    """The policy parameters the aggregates read (and the constants they are built from)."""
    return (
        calibration,
        o.heavy_edit_distance,
        tuple(o.severe_defects),
        o.review_time_cap.total_seconds(),
        BAND_EDGES,
        REPLY_EDGES,
        tuple(str(c) for c in DefectCategory),
        KINDS,
    )


def _slot(name: str) -> Any:
    """A placeholder compiled into the cached SQL text and turned into a bound parameter afterwards."""
    return literal_column(f"__slot_{name}__")


def _type_sql(dialect: Any, plan: Plan, tiers: Tiers) -> tuple[dict[str, Aggregates], TextClause]:
    """A UNION ALL of index range aggregates, one branch per decision kind and per (route, tier) and per
    time range, padded to a common width and labelled; with the aggregates of each label.

    Compiled once per shape (dialect, policy parameters, number of ranges, tiers) into SQL text with bound
    parameters for the type and the ranges: building and compiling this tree through SQLAlchemy cost
    about 20 ms a statement, far more than PostgreSQL spends planning and running it."""
    d, r = columns(Decision), columns(Review)
    branches: list[tuple[str, Aggregates]] = []
    selects = []
    ranges = [(_slot(f"since{i}"), _slot(f"until{i}")) for i in range(len(plan.ranges))]
    for (stage, kind), (since, until) in product(KINDS, ranges):
        aggs = plan.aggregates[kind]
        branches.append((f"d:{kind}", aggs))
        selects.append(
            _branch(f"d:{kind}", aggs, plan.width).where(
                d.interaction_type == _slot("itype"),
                d.stage == stage,
                d.decision == kind,
                d.decided_at >= since,
                d.decided_at < until,
            )
        )
    volume_aggs: Aggregates = [("n", func.count())]
    for (route, tier), (since, until) in product(tiers, ranges):
        branches.append((f"r:{route}:{tier}", volume_aggs))
        selects.append(
            _branch(f"r:{route}:{tier}", volume_aggs, plan.width).where(
                r.interaction_type == _slot("itype"),
                r.route == route,
                r.tier == tier,
                r.created_at >= since,
                r.created_at < until,
            )
        )
    sql = str(union_all(*selects).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    sql = re.sub(r"__slot_(\w+?)__", r":\1", sql.replace(":", "\\:"))
    times = [
        bindparam(f"{end}{i}", type_=UTCDateTime()) for i in range(len(ranges)) for end in ("since", "until")
    ]
    return dict(branches), text(sql).bindparams(bindparam("itype", type_=String()), *times)


def _type_statement(
    session: Session, plan: Plan, itype: str, tiers: Tiers | None = None
) -> tuple[dict[str, Aggregates], TextClause, dict[str, Any]]:
    """The cached statement of one type over the plan's ranges, and its parameters."""
    dialect = session.get_bind().dialect
    tiers = tuple(route_tiers(session, itype)) if tiers is None else tiers
    key = (dialect.name, plan.signature, len(plan.ranges), tiers)
    if key not in _STATEMENTS:
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        _STATEMENTS[key] = _type_sql(dialect, plan, tiers)
    names, statement = _STATEMENTS[key]
    params: dict[str, Any] = {"itype": itype}
    for i, (since, until) in enumerate(plan.ranges):
        params[f"since{i}"], params[f"until{i}"] = since, until
    return names, statement, params


def _fold_row(
    c: Counts, bands: dict[int, Band], plan: Plan, label: str, v: dict[str, int], tally: Tally
) -> None:
    """One labelled aggregate row: a decision kind (`d:<kind>`) or a (route, tier) volume (`r:<route>:<tier>`)."""
    what, key = label.split(":", 1)
    if what == "d":
        _fold(c, bands, key, v, plan.severe)
        tally.human += v["n"] if key in HUMAN_KINDS else 0
        return
    route, tier = key.split(":", 1)
    c.volume += v["n"]
    c.routed[route] += v["n"]
    tally.volume[(route, tier)] += v["n"]


def _empty_bands(calibration: bool) -> dict[int, Band]:
    return {i: Band(i) for i in range(len(BAND_EDGES) + 1)} if calibration else {}


def _used_bands(bands: dict[int, Band]) -> dict[int, Band]:
    return {i: b for i, b in bands.items() if b.human or b.auto_send}


def _row_values(aggs: Aggregates, values: list[Any]) -> dict[str, int]:
    return {name: int(value or 0) for (name, _), value in zip(aggs, values, strict=False)}


def count_type(session: Session, plan: Plan, itype: str, tally: Tally, tiers: Tiers | None = None) -> None:
    """Run one type's statement and add its rows to `tally` (`tiers`: the type's (route, tier) pairs, when
    the caller has read them already)."""
    names, statement, params = _type_statement(session, plan, itype, tiers)
    c = Counts()
    bands = _empty_bands(plan.calibration)
    for label, *values in session.execute(statement, params):
        v = _row_values(names[label], values)
        if v["n"]:
            _fold_row(c, bands, plan, label, v, tally)
    if c.volume or c.decided or c.qa_rated or c.qa_human_rated:
        tally.by_type[itype] = c
        if plan.calibration:
            tally.bands_by_type[itype] = _used_bands(bands)


def interaction_types(session: Session, interaction_type: str | None) -> list[str]:
    if interaction_type:
        return [interaction_type]
    return sorted(
        set(distinct_values(session, "decisions", "interaction_type"))
        | set(distinct_values(session, "reviews", "interaction_type"))
    )


def pending_by_type(
    session: Session, now: datetime, interaction_type: str | None
) -> dict[str, tuple[int, int]]:
    """The queue now (ix_reviews_pending): pending, and pending past their SLA, per type."""
    r = columns(Review)
    pq = select(r.interaction_type, func.count(), func.count().filter(r.sla_due_at < now)).where(
        r.status == ReviewStatus.PENDING
    )
    if interaction_type:
        pq = pq.where(r.interaction_type == interaction_type)
    return {t: (int(n), int(od or 0)) for t, n, od in session.execute(pq.group_by(r.interaction_type))}


def use_custom_plans(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement run 5 times on a connection; PostgreSQL then switches to a generic
        # plan that cannot see the time range and scans (0.6 s instead of 40 ms). This transaction only.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _sum(counts: list[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total.add(c)
    return total


def canonical(c: Counts, severe: set[str]) -> Counts:
    """`c` with its Counters in one fixed order (routes, then defect categories as listed, then the
    rest by name), so equal counts rank ties the same however they were summed (the live queries or
    the rollup's cached days)."""
    order = list(dict.fromkeys([*(str(k) for k in DefectCategory), *sorted(severe)]))
    c.routed = Counter(
        {r: c.routed[r] for r in (*ROUTES, *sorted(set(c.routed) - set(ROUTES))) if c.routed[r]}
    )
    rest = sorted(set(c.defects) - set(order))
    c.defects = Counter({k: c.defects[k] for k in (*order, *rest) if c.defects[k]})
    return c


def order_types(by_type: dict[str, Counts]) -> dict[str, Counts]:
    """Busiest types first (drafts plus decisions), then by name."""
    return dict(sorted(by_type.items(), key=lambda kv: (-kv[1].volume - kv[1].decided, kv[0])))


def compute_stats(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    interaction_type: str | None = None,
    oversight: Oversight | None = None,
    now: datetime | None = None,
    calibration: bool = False,
) -> Stats:
    """Aggregate the feedback store: decisions made in [since, until), drafts created then, the queue at `now`.

    `calibration` adds approval by confidence band (for the oversight review). Always the exact queries
    over the whole period; `bot.reporting.stats.rollup.cached_stats` gives the same answer from cached
    closed days."""
    o = oversight or Oversight()
    use_custom_plans(session)
    plan = make_plan(((since, until),), o, calibration)
    tally = Tally()
    for itype in interaction_types(session, interaction_type):
        count_type(session, plan, itype, tally)
    queue = pending_by_type(session, now or until, interaction_type)
    median, p90 = percentiles(
        session, since=since, until=until, interaction_type=interaction_type, human=tally.human, ps=(0.5, 0.9)
    )
    by_type = {t: canonical(c, plan.severe) for t, c in order_types(tally.by_type).items()}
    return Stats(
        since=since,
        until=until,
        interaction_type=interaction_type,
        total=canonical(_sum(list(by_type.values())), plan.severe),
        by_type=by_type,
        volume=dict(tally.volume),
        median_seconds=median,
        p90_seconds=p90,
        pending=sum(n for n, _ in queue.values()),
        pending_overdue=sum(od for _, od in queue.values()),
        pending_by_type=queue,
        calibration=tally.bands_by_type,
    )


# ---------------------------------------------------------------- percentiles of time to decision


@dataclass(frozen=True)
class SecondsWalk:
    """Reads human decision times of a period in index order (ix_decisions_human_seconds)."""

    session: Session
    hint: str
    type_filter: str
    params: dict[str, Any]

    @classmethod
    def of(
        cls, session: Session, since: datetime, until: datetime, interaction_type: str | None
    ) -> SecondsWalk:
        sqlite = session.get_bind().dialect.name == "sqlite"
        hint = " INDEXED BY ix_decisions_human_seconds" if sqlite else ""  # SQLite's planner would sort
        params: dict[str, Any] = {"since": since, "until": until}
        if interaction_type:
            params["itype"] = interaction_type
        return cls(session, hint, " AND interaction_type = :itype" if interaction_type else "", params)

    def _run(self, sql: str, extra: dict[str, Any] | None = None) -> Any:
        # HUMAN_DECISIONS is the partial index's predicate verbatim (no bound parameters), so both planners
        # can prove the index applies.
        times = (bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
        return self.session.execute(text(sql).bindparams(*times), {**self.params, **(extra or {})})

    def ranked_in(self, low: float | None, high: float | None, skip: int) -> list[float]:
        """The timed values of the period in [low, high) from rank `skip` on (two at most), ascending.

        The rollup's histograms say which seconds range holds a wanted rank, so this reads that range of
        the index only, not everything below it."""
        bounds = "".join(
            (
                " AND seconds_to_decision >= :low" if low is not None else "",
                " AND seconds_to_decision < :high" if high is not None else "",
            )
        )
        sql = (
            f"SELECT seconds_to_decision FROM decisions{self.hint} WHERE {HUMAN_DECISIONS} "
            f"AND seconds_to_decision IS NOT NULL{bounds} AND decided_at >= :since AND decided_at < :until"
            f"{self.type_filter} ORDER BY seconds_to_decision LIMIT 2 OFFSET :skip"
        )
        extra = {"low": low, "high": high, "skip": skip}
        return [float(v) for v in self._run(sql, {k: v for k, v in extra.items() if v is not None}).scalars()]

    def untimed(self) -> int:
        """Human decisions of the period without a time (NULLs sort first in the index)."""
        return int(
            self._run(
                f"SELECT count(*) FROM decisions{self.hint} WHERE {HUMAN_DECISIONS} "
                "AND seconds_to_decision IS NULL "
                f"AND decided_at >= :since AND decided_at < :until{self.type_filter}"
            ).scalar_one()
        )

    def _two_from(self, lo: int, n: int, backwards: bool) -> list[float]:
        """The values at ranks lo and lo + 1 (of n), read from the nearer end."""
        sql = (
            f"SELECT seconds_to_decision FROM decisions{self.hint} WHERE {HUMAN_DECISIONS} "
            f"AND seconds_to_decision IS NOT NULL AND decided_at >= :since AND decided_at < :until"
            f"{self.type_filter} ORDER BY seconds_to_decision {'DESC' if backwards else 'ASC'} "
            "LIMIT 2 OFFSET :skip"
        )
        skip = max(0, n - 2 - lo) if backwards else lo
        vals = [float(v) for v in self._run(sql, {"skip": skip}).scalars()]
        if backwards:
            vals.reverse()
            if lo == n - 1:  # the top value itself: only one row lies at or above it
                vals = vals[-1:]
        return vals

    def percentile(self, p: float, n: int) -> float | None:
        """percentile_cont(p) over n timed values."""
        pos = p * (n - 1)
        lo = math.floor(pos)
        vals = self._two_from(lo, n, lo > n / 2)
        if not vals:
            return None
        low, high = vals[0], vals[1] if len(vals) > 1 else vals[0]
        return low + (high - low) * (pos - lo)


def percentiles(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    interaction_type: str | None,
    human: int,
    ps: tuple[float, ...],
) -> tuple[float | None, ...]:
    """Continuous percentiles (percentile_cont's definition) of time to a human decision in [since, until).

    `human` is how many human decisions there are (known from the aggregates); those without a time
    are counted from the index (NULLs sort first). Each value is then read at its rank by walking
    ix_decisions_human_seconds from the nearer end: exact, no sort."""
    if human == 0:
        return tuple(None for _ in ps)
    walk = SecondsWalk.of(session, since, until, interaction_type)
    n = human - walk.untimed()
    if n <= 0:
        return tuple(None for _ in ps)
    return tuple(walk.percentile(p, n) for p in ps)
