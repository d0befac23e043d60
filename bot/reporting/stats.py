"""Manager statistics over the feedback store, aggregated in the database (SQLite and PostgreSQL).

`compute_stats` runs a handful of GROUP BY queries whose results are small (one row per
interaction type x decision x flag), then folds those rows into `Stats`. No query returns one
row per decision, so the time grows with the index range scanned, not with Python loops.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from sqlalchemy import (
    BigInteger,
    Column,
    String,
    Table,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlmodel import Session, SQLModel

from bot.common.durations import format_duration, parse_duration
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

HUMAN_KINDS = (DecisionKind.APPROVE, DecisionKind.EDIT, DecisionKind.TAKE_OVER, DecisionKind.REJECT)
BAND_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
ROUTES = ("auto_send", "review", "take_over")
MAX_PERIOD = timedelta(days=731)
_PERIOD = re.compile(r"^\d+[hdw]$")


class BadPeriod(ValueError):
    """A period the user wrote that is not like 24h, 7d, 4w or 30d."""


def parse_period(text: str) -> timedelta:
    """`24h`, `7d`, `4w`, `30d` as a timedelta (1 hour to 2 years)."""
    cleaned = text.strip().lower()
    if not _PERIOD.match(cleaned):
        raise BadPeriod(f"{text!r} is not a period; write it like 24h, 7d, 4w or 30d")
    delta = parse_duration(cleaned)
    if delta < timedelta(hours=1) or delta > MAX_PERIOD:
        raise BadPeriod(f"{text!r}: a period is from 1h to {MAX_PERIOD.days}d")
    return delta


def is_period(word: str) -> bool:
    return bool(_PERIOD.match(word.strip().lower()))


def band_label(index: int) -> str:
    """Human label of confidence band `index` (0 = below the first edge)."""
    if index == 0:
        return f"<{BAND_EDGES[0]:.2f}"
    if index >= len(BAND_EDGES):
        return f"≥{BAND_EDGES[-1]:.2f}"
    return f"{BAND_EDGES[index - 1]:.2f}–{BAND_EDGES[index]:.2f}"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Counts:
    """Decision and volume counts of one interaction type (or of all of them) in a period."""

    volume: int = 0
    routed: Counter[str] = field(default_factory=Counter)
    approve: int = 0
    edit: int = 0
    take_over: int = 0
    reject: int = 0
    auto_send: int = 0
    heavy_edits: int = 0
    sla_met: int = 0
    sla_breached: int = 0
    qa_good: int = 0
    qa_defect: int = 0
    qa_severe: int = 0
    severe_defects: int = 0
    take_over_on_review: int = 0
    defects: Counter[str] = field(default_factory=Counter)

    @property
    def human(self) -> int:
        """Drafts a human decided (approve, edit, take over, reject)."""
        return self.approve + self.edit + self.take_over + self.reject

    @property
    def judged(self) -> int:
        """Drafts a human judged as a reply (taking over judges the ticket, not the draft)."""
        return self.approve + self.edit + self.reject

    @property
    def decided(self) -> int:
        return self.human + self.auto_send

    @property
    def qa_rated(self) -> int:
        return self.qa_good + self.qa_defect

    @property
    def errors(self) -> int:
        """AI errors a human caught: rejects plus heavy edits."""
        return self.reject + self.heavy_edits

    @property
    def approve_rate(self) -> float | None:
        return _rate(self.approve, self.human)

    @property
    def edit_rate(self) -> float | None:
        return _rate(self.edit, self.human)

    @property
    def take_over_rate(self) -> float | None:
        return _rate(self.take_over, self.human)

    @property
    def reject_rate(self) -> float | None:
        return _rate(self.reject, self.human)

    @property
    def error_rate(self) -> float | None:
        return _rate(self.errors, self.judged)

    @property
    def qa_pass_rate(self) -> float | None:
        return _rate(self.qa_good, self.qa_rated)

    @property
    def sla_breach_rate(self) -> float | None:
        return _rate(self.sla_breached, self.sla_met + self.sla_breached)

    def add(self, other: Counts) -> None:
        """Fold `other` into these counts."""
        for name in (
            "volume",
            "approve",
            "edit",
            "take_over",
            "reject",
            "auto_send",
            "heavy_edits",
            "sla_met",
            "sla_breached",
            "qa_good",
            "qa_defect",
            "qa_severe",
            "severe_defects",
            "take_over_on_review",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.routed.update(other.routed)
        self.defects.update(other.defects)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["routed"] = dict(self.routed)
        d["defects"] = dict(self.defects.most_common())
        for name in (
            "human",
            "judged",
            "decided",
            "qa_rated",
            "errors",
            "approve_rate",
            "edit_rate",
            "take_over_rate",
            "reject_rate",
            "error_rate",
            "qa_pass_rate",
            "sla_breach_rate",
        ):
            d[name] = getattr(self, name)
        return d


@dataclass
class Band:
    """Decisions of one confidence band: how often humans approved the draft as it was."""

    index: int
    human: int = 0
    approve: int = 0
    errors: int = 0
    auto_send: int = 0

    @property
    def label(self) -> str:
        return band_label(self.index)

    @property
    def approve_rate(self) -> float | None:
        return _rate(self.approve, self.human)


@dataclass
class Stats:
    """Everything `/hitl stats` shows for one period (and optionally one interaction type)."""

    since: datetime
    until: datetime
    interaction_type: str | None
    total: Counts
    by_type: dict[str, Counts]
    volume: dict[tuple[str, str], int]
    median_seconds: float | None
    p90_seconds: float | None
    pending: int
    pending_overdue: int
    pending_by_type: dict[str, tuple[int, int]]
    calibration: dict[str, dict[int, Band]]

    @property
    def period(self) -> timedelta:
        return self.until - self.since

    def top_defects(self, n: int = 5) -> list[tuple[str, int]]:
        return self.total.defects.most_common(n)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `hitl stats --json`."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "interaction_type": self.interaction_type,
            "total": self.total.as_dict(),
            "by_type": {k: v.as_dict() for k, v in self.by_type.items()},
            "volume_by_route_tier": [
                {"route": r, "tier": t, "count": n} for (r, t), n in sorted(self.volume.items())
            ],
            "time_to_decision_seconds": {"median": self.median_seconds, "p90": self.p90_seconds},
            "pending": self.pending,
            "pending_overdue": self.pending_overdue,
            "top_defects": dict(self.top_defects()),
            "calibration": {
                t: [
                    {
                        "band": b.label,
                        "human": b.human,
                        "approve": b.approve,
                        "approve_rate": b.approve_rate,
                        "auto_send": b.auto_send,
                    }
                    for _, b in sorted(bands.items())
                ]
                for t, bands in self.calibration.items()
            },
        }


# ---------------------------------------------------------------- queries
#
# Design (measured on 1,000,000 decisions, see bench/stats.py): a GROUP BY over a period makes
# SQLite sort every row (a temp B-tree: ~1.5 s) and PostgreSQL read the wide rows (~0.3 s). So each
# (interaction type, stage, decision) is aggregated on its own: an equality prefix plus a time range
# on the covering index ix_decisions_stats, which reads exactly the period's index entries and never
# a row; drafts likewise per (type, route, tier) on ix_reviews_stats, pure range counts (the tiers
# found by a loose index scan). One UNION ALL statement per type
# carries all its ranges (PostgreSQL round trips add up). Interaction types are found by a loose
# index scan (a recursive CTE: one seek per type). Percentiles walk the partial index
# ix_decisions_human_seconds in order from the nearer end: exact, equal to percentile_cont, and
# cheaper than sorting (PostgreSQL's percentile_cont over the period took ~0.45 s).

KINDS: tuple[tuple[str, str], ...] = (
    *(("review", str(k)) for k in (*HUMAN_KINDS, DecisionKind.AUTO_SEND)),
    ("qa", str(DecisionKind.QA_GOOD)),
    ("qa", str(DecisionKind.QA_DEFECT)),
)
DEFECT_KINDS = {DecisionKind.EDIT, DecisionKind.TAKE_OVER, DecisionKind.REJECT, DecisionKind.QA_DEFECT}


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


def _aggregates(kind: str, o: Oversight, calibration: bool) -> list[tuple[str, Any]]:
    """The aggregates one decision kind needs (fewer per row = faster), as (name, expression)."""
    d = columns(Decision)
    aggs: list[tuple[str, Any]] = [("n", func.count())]
    human = kind in HUMAN_KINDS
    heavy = or_(d.edit_distance.is_(None), d.edit_distance >= o.heavy_edit_distance)
    if human:
        aggs += [
            ("breached", func.count().filter(d.sla_breached.is_(True))),
            ("sla_known", func.count(d.sla_breached)),
        ]  # met = known - breached: one FILTER less a row
    if kind == DecisionKind.EDIT:
        aggs.append(("heavy", func.count().filter(heavy)))
    if kind == DecisionKind.TAKE_OVER:
        aggs.append(("on_review", func.count().filter(d.route == "review")))
    if kind in DEFECT_KINDS:
        cats = list(dict.fromkeys([*(str(c) for c in DefectCategory), *o.severe_defects]))
        aggs.append(("defects", func.count(d.defect_category)))
        aggs += [(f"defect:{c}", func.count().filter(d.defect_category == c)) for c in cats]
    if calibration and (human or kind == DecisionKind.AUTO_SEND):
        edges = (0.0, *BAND_EDGES, 2.0)
        for i in range(len(edges) - 1):
            band = and_(d.confidence >= edges[i], d.confidence < edges[i + 1])
            aggs.append((f"band:{i}", func.count().filter(band)))
            if kind == DecisionKind.EDIT:
                aggs.append((f"heavyband:{i}", func.count().filter(and_(band, heavy))))
    return aggs


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

    `calibration` adds approval by confidence band (for the oversight review)."""
    o = oversight or Oversight()
    now = now or until
    d, r = columns(Decision), columns(Review)
    if session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement run 5 times on a connection; PostgreSQL then switches to a generic
        # plan that cannot see the time range and scans (0.6 s instead of 40 ms). This transaction only.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    if interaction_type:
        types = [interaction_type]
    else:
        types = sorted(
            set(distinct_values(session, "decisions", "interaction_type"))
            | set(distinct_values(session, "reviews", "interaction_type"))
        )
    severe = set(o.severe_defects)
    aggregates = {kind: _aggregates(kind, o, calibration) for _, kind in KINDS}
    volume_aggs: list[tuple[str, Any]] = [("n", func.count())]
    width = max(len(a) for a in aggregates.values())
    by_type: dict[str, Counts] = {}
    bands_by_type: dict[str, dict[int, Band]] = {}
    volume: Counter[tuple[str, str]] = Counter()
    human = 0
    for itype in types:
        # One statement per type: a UNION ALL of index range aggregates, one branch per decision kind
        # and per route, padded to a common width and labelled.
        branches: list[tuple[str, list[tuple[str, Any]]]] = []
        selects = []
        for stage, kind in KINDS:
            aggs = aggregates[kind]
            branches.append((f"d:{kind}", aggs))
            selects.append(
                _branch(f"d:{kind}", aggs, width).where(
                    d.interaction_type == itype,
                    d.stage == stage,
                    d.decision == kind,
                    d.decided_at >= since,
                    d.decided_at < until,
                )
            )
        for route, tier in route_tiers(session, itype):
            branches.append((f"r:{route}:{tier}", volume_aggs))
            selects.append(
                _branch(f"r:{route}:{tier}", volume_aggs, width).where(
                    r.interaction_type == itype,
                    r.route == route,
                    r.tier == tier,
                    r.created_at >= since,
                    r.created_at < until,
                )
            )
        names = dict(branches)
        c = Counts()
        bands = {i: Band(i) for i in range(len(BAND_EDGES) + 1)} if calibration else {}
        for label, *values in session.execute(union_all(*selects)):
            aggs = names[label]
            v = {name: int(value or 0) for (name, _), value in zip(aggs, values)}
            if not v["n"]:
                continue
            what, key = label.split(":", 1)
            if what == "d":
                _fold(c, bands, key, v, severe)
                human += v["n"] if key in HUMAN_KINDS else 0
                continue
            route, tier = key.split(":", 1)
            c.volume += v["n"]
            c.routed[route] += v["n"]
            volume[(route, tier)] += v["n"]
        if c.volume or c.decided or c.qa_rated:
            by_type[itype] = c
            if calibration:
                bands_by_type[itype] = {i: b for i, b in bands.items() if b.human or b.auto_send}

    # The queue now (ix_reviews_pending): pending, and pending past their SLA.
    pq = select(r.interaction_type, func.count(), func.count().filter(r.sla_due_at < now)).where(
        r.status == ReviewStatus.PENDING
    )
    if interaction_type:
        pq = pq.where(r.interaction_type == interaction_type)
    pending_by_type = {
        t: (int(n), int(od or 0)) for t, n, od in session.execute(pq.group_by(r.interaction_type))
    }

    median, p90 = percentiles(
        session, since=since, until=until, interaction_type=interaction_type, human=human, ps=(0.5, 0.9)
    )
    total = Counts()
    for c in by_type.values():
        total.add(c)
    ordered = dict(sorted(by_type.items(), key=lambda kv: (-kv[1].volume - kv[1].decided, kv[0])))
    return Stats(
        since=since,
        until=until,
        interaction_type=interaction_type,
        total=total,
        by_type=ordered,
        volume=dict(volume),
        median_seconds=median,
        p90_seconds=p90,
        pending=sum(n for n, _ in pending_by_type.values()),
        pending_overdue=sum(od for _, od in pending_by_type.values()),
        pending_by_type=pending_by_type,
        calibration=bands_by_type,
    )


def _branch(label: str, aggs: list[tuple[str, Any]], width: int) -> Any:
    """`SELECT 'label', agg1, agg2, ..., NULL, NULL` padded to `width` aggregate columns."""
    pad = [cast(null(), BigInteger) for _ in range(width - len(aggs))]
    return select(literal(label, String).label("label"), *(expr for _, expr in aggs), *pad)


def _fold(c: Counts, bands: dict[int, Band], kind: str, v: dict[str, int], severe: set[str]) -> None:
    """Add one (type, kind) aggregate row to the type's counts and confidence bands."""
    n = v["n"]
    for key, value in v.items():
        if key.startswith("defect:") and value:
            cat = key.split(":", 1)[1]
            c.defects[cat] += value
            c.severe_defects += value if cat in severe else 0
            c.qa_severe += value if cat in severe and kind == DecisionKind.QA_DEFECT else 0
    unlisted = v.get("defects", 0) - sum(val for key, val in v.items() if key.startswith("defect:"))
    if unlisted > 0:
        c.defects["other"] += unlisted
    if kind == DecisionKind.QA_GOOD:
        c.qa_good += n
        return
    if kind == DecisionKind.QA_DEFECT:
        c.qa_defect += n
        return
    for key, value in v.items():
        if key.startswith("band:"):
            b = bands[int(key.split(":")[1])]
            if kind == DecisionKind.AUTO_SEND:
                b.auto_send += value
            else:
                b.human += value
                b.approve += value if kind == DecisionKind.APPROVE else 0
                b.errors += value if kind == DecisionKind.REJECT else 0
        elif key.startswith("heavyband:"):
            bands[int(key.split(":")[1])].errors += value
    if kind == DecisionKind.AUTO_SEND:
        c.auto_send += n
        return
    setattr(c, kind, getattr(c, kind) + n)
    c.sla_breached += v.get("breached", 0)
    c.sla_met += v.get("sla_known", 0) - v.get("breached", 0)
    c.heavy_edits += v.get("heavy", 0)
    c.take_over_on_review += v.get("on_review", 0)


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
    sqlite = session.get_bind().dialect.name == "sqlite"
    hint = " INDEXED BY ix_decisions_human_seconds" if sqlite else ""  # SQLite's planner would sort instead
    type_filter = " AND interaction_type = :itype" if interaction_type else ""
    # HUMAN_DECISIONS is the partial index's predicate verbatim (no bound parameters), so both planners
    # can prove the index applies.
    params: dict[str, Any] = {"since": since, "until": until}
    if interaction_type:
        params["itype"] = interaction_type
    times = (bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
    untimed = session.execute(
        text(
            f"SELECT count(*) FROM decisions{hint} WHERE {HUMAN_DECISIONS} AND seconds_to_decision IS NULL "
            f"AND decided_at >= :since AND decided_at < :until{type_filter}"
        ).bindparams(*times),
        params,
    ).scalar_one()
    n = human - int(untimed)
    if n <= 0:
        return tuple(None for _ in ps)
    out: list[float | None] = []
    for p in ps:
        pos = p * (n - 1)
        lo = math.floor(pos)
        backwards = lo > n / 2
        sql = (
            f"SELECT seconds_to_decision FROM decisions{hint} WHERE {HUMAN_DECISIONS} "
            f"AND seconds_to_decision IS NOT NULL AND decided_at >= :since AND decided_at < :until{type_filter} "
            f"ORDER BY seconds_to_decision {'DESC' if backwards else 'ASC'} LIMIT 2 OFFSET :skip"
        )
        skip = max(0, n - 2 - lo) if backwards else lo
        vals = [
            float(v)
            for v in session.execute(text(sql).bindparams(*times), {**params, "skip": skip}).scalars()
        ]
        if not vals:
            out.append(None)
            continue
        if backwards:
            vals.reverse()
            if lo == n - 1:  # the top value itself: only one row lies at or above it
                vals = vals[-1:]
        low, high = vals[0], vals[1] if len(vals) > 1 else vals[0]
        out.append(low + (high - low) * (pos - lo))
    return tuple(out)


# ---------------------------------------------------------------- rendering


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def secs(x: float | None) -> str:
    return "—" if x is None else format_duration(timedelta(seconds=x))


def span_label(period: timedelta) -> str:
    """`7d`, `30d`, `24h`, `36h`: a period as the user would write it."""
    seconds = int(period.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return format_duration(period)


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 reject`, `2 rejects`."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def period_label(stats: Stats) -> str:
    return f"last {span_label(stats.period)} · {stats.interaction_type or 'all types'}"


def _dates(stats: Stats) -> str:
    fmt = "%Y-%m-%d %H:%M"
    return f"{stats.since.strftime(fmt)} → {stats.until.strftime(fmt)} UTC"


def summary_lines(stats: Stats) -> list[tuple[str, str]]:
    """(label, value) pairs shared by the text and the Block Kit renderings."""
    t = stats.total
    routes = " · ".join(f"{r} {t.routed.get(r, 0)}" for r in ROUTES)
    tiers: Counter[str] = Counter()
    for (_, tier), n in stats.volume.items():
        tiers[tier] += n
    by_tier = " · ".join(f"{k} {n}" for k, n in tiers.most_common()) or "—"
    decisions = (
        f"{t.human} by humans: approve {pct(t.approve_rate)} · edit {pct(t.edit_rate)} · "
        f"take over {pct(t.take_over_rate)} · reject {pct(t.reject_rate)}; {t.auto_send} auto-sent"
    )
    sla = (
        f"{t.sla_met} met · {t.sla_breached} breached ({pct(t.sla_breach_rate)}); "
        f"queue now: {stats.pending} pending, {stats.pending_overdue} past due"
    )
    qa = (
        f"{t.qa_rated} rated: {t.qa_good} good, {t.qa_defect} defect (pass {pct(t.qa_pass_rate)})"
        if t.qa_rated
        else f"none rated ({t.auto_send} auto-sent)"
    )
    defects = " · ".join(f"{k} {n}" for k, n in stats.top_defects()) or "none"
    return [
        ("Volume", f"{t.volume} drafts — {routes}"),
        ("By tier", by_tier),
        ("Decisions", decisions),
        ("Time to decision", f"median {secs(stats.median_seconds)} · p90 {secs(stats.p90_seconds)}"),
        ("SLA", sla),
        (
            "AI error rate",
            (
                f"{pct(t.error_rate)} ({plural(t.reject, 'reject')} + {plural(t.heavy_edits, 'heavy edit')} "
                f"of {t.judged} judged)"
            ),
        ),
        ("QA of auto-sent", qa),
        ("Top defects", defects),
    ]


TABLE_COLUMNS = ("type", "vol", "auto", "human", "appr", "edit", "t/o", "rej", "error", "QA", "SLA✗")


def type_rows(stats: Stats) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for itype, c in stats.by_type.items():
        rows.append(
            (
                itype,
                str(c.volume),
                str(c.auto_send),
                str(c.human),
                pct(c.approve_rate),
                pct(c.edit_rate),
                pct(c.take_over_rate),
                pct(c.reject_rate),
                pct(c.error_rate),
                pct(c.qa_pass_rate),
                pct(c.sla_breach_rate),
            )
        )
    return rows


def format_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            (v.ljust(w) if i == 0 else v.rjust(w))
            for i, (v, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return [line(columns), *(line(r) for r in rows)]


def render_stats_text(stats: Stats) -> str:
    """Plain text for the terminal (`hitl stats`, the demo)."""
    out = [f"hitl stats — {period_label(stats)} ({_dates(stats)})"]
    width = max(len(k) for k, _ in summary_lines(stats))
    out += [f"  {k.ljust(width)}  {v}" for k, v in summary_lines(stats)]
    if stats.by_type:
        out += ["", "  By interaction type (error = rejects + heavy edits per judged draft; QA = pass rate):"]
        out += ["    " + line for line in format_table(TABLE_COLUMNS, type_rows(stats))]
    elif stats.total.volume == 0:
        out.append("  No drafts or decisions in this period.")
    return "\n".join(out)


def code_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], limit: int = 2900) -> str:
    """A monospace table in a code block, cut to whole rows within `limit` characters."""
    lines = format_table(columns, rows)
    kept: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in kept) + len(line) + 20 > limit:
            kept.append(f"… {len(lines) - len(kept)} more")
            break
        kept.append(line)
    return "```" + "\n".join(kept) + "```"


def render_stats_blocks(stats: Stats) -> tuple[str, list[Block]]:
    """(fallback text, Block Kit blocks) for Slack, built from slack_sdk models so limits are checked."""
    lines = summary_lines(stats)
    blocks: list[Block] = [
        HeaderBlock(text=f"hitl stats · {period_label(stats)}"[:150]),
        ContextBlock(elements=[MarkdownTextObject(text=_dates(stats))]),
        SectionBlock(fields=[MarkdownTextObject(text=f"*{k}*\n{v}"[:2000]) for k, v in lines[:10]]),
    ]
    if stats.by_type:
        blocks.append(DividerBlock())
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text="*By interaction type*  _error = rejects + heavy edits per judged draft_\n"
                    + code_table(TABLE_COLUMNS, type_rows(stats))
                )
            )
        )
    elif stats.total.volume == 0:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text="No drafts or decisions in this period.")])
        )
    t = stats.total
    text = (
        f"hitl stats ({period_label(stats)}): {t.volume} drafts, {t.human} human decisions, "
        f"approve {pct(t.approve_rate)}, error rate {pct(t.error_rate)}, SLA breached {t.sla_breached}"
    )
    return text, blocks
