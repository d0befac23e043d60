"""The stats rollup: closed UTC days and hours aggregated once, so `/hitl stats 30d` and `/hitl review 30d`
read a few dozen cached rows and only the open edges of their period live.

Why a rollup and not more indexes: a 30-day window covers every row of a 30-day store, so even reading
covering indexes range by range (`bot.reporting.stats.query`) grows with the rows (about 350 ms on
PostgreSQL at 200,000 decisions). The answer must stay exact, so the rollup holds what the exact
queries return for a unit of time, and a period is the sum of its units:

- **Units.** A period [since, until) is split into whole UTC days, whole UTC hours at its edges, and at
  most a partial hour at each end that is read live. A unit is cached only once it is *closed*: it
  ended at least `GRACE` (15 min) before `now`. Decisions and drafts are written with the writer's
  clock (`decided_at`, `created_at` = now), so nothing lands in a closed unit later as long as replicas'
  clocks agree within a few minutes and a transaction lasts less than that.
- **What a unit holds** (`TypeSums`, one per interaction type, JSON in `stats_rollup.payload`): the
  `Counts` the exact per-type statements return with calibration (bands, reply-time buckets, reviewer
  time), drafts per (route, tier), how many human decisions, a histogram of their time to decision,
  outcome counts by the outcome's `at` (CSAT per kind of reply, reopened, resolved) and repeat
  contacts. All are sums, so `TypeSums.add` folds units together (`Counts.add` sums every field).
- **Late facts.** Outcomes carry a caller-given `at` and arrive late; an SLA timeout moves a pending
  review to another tier (its drafts-per-tier count changes). Their transactions call `invalidate`,
  which bumps the day's generation in `stats_rollup_epochs`; a cached row is used only while its
  generation equals its day's. The generation is read before the unit's facts, and bumped in the same
  transaction as the fact, so a filler racing a late write can store a stale row but never one that
  looks fresh: it carries the old generation.
- **Parameters.** `params_key` hashes the policy parameters the aggregates read (heavy edit distance,
  severe defects, review time cap), the band/bucket edges, the histogram edges, the `Counts` fields and
  `ROLLUP_VERSION`: a policy change or an upgrade reads (and fills) fresh rows; old ones are ignored.
- **Percentiles are exact.** Time to decision p50/p90 is `percentile_cont` of the period. The units'
  histograms (edges `SECONDS_EDGES`, 5% apart) give how many values lie below each edge in the period,
  so the rank wanted falls in one known bucket; one query reads that seconds range of
  ix_decisions_human_seconds from the bucket's first rank: the same two values the full walk would find.
- **Filling.** Missing or stale units are computed by the same exact queries when a report needs them,
  and written with INSERT ... ON CONFLICT on a connection of their own, so two replicas filling the same
  day store it once, and a database that refuses the write (a read-only replica) only costs the report
  its speed: it answers from what it computed. The scheduler pre-fills closed hours (`prefill`), so a
  manager rarely pays for the cold rows.
- **Kept live** (cheap, or not sums): the queue now, SLA escalations (distinct reviews), the QA
  backlog, what-if replays. Came-back has units of its own (`bot.reporting.stats.came_back`): a reply's
  answer is final only once its window has passed, later than the unit closes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import operator
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Integer, String, Text, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.reporting.stats.model import HUMAN_KINDS, Band, Counts, Stats
from bot.reporting.stats.query import (
    SecondsWalk,
    Tally,
    Tiers,
    canonical,
    count_type,
    interaction_types,
    make_plan,
    order_types,
    pending_by_type,
    plan_signature,
    route_tiers,
    use_custom_plans,
)
from bot.review.policy import Oversight
from storage.models import REPEAT_CONTACT, StatsRollup, StatsRollupEpoch, UTCDateTime

log = logging.getLogger("hitl.stats.rollup")

ROLLUP_VERSION = 3  # bump when what a unit holds or how it is computed changes
GRACE = timedelta(minutes=15)  # a unit is closed this long after it ends (clock skew, long transactions)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
# Time-to-decision histogram edges (seconds): 0, then 5% apart from 1.05 s to about 66 days.
SECONDS_EDGES: tuple[float, ...] = (0.0, *(round(1.05**k, 3) for k in range(1, 320)))
OUTCOME_KINDS = ("csat", "reopened", "resolved")
Ranges = tuple[tuple[datetime, datetime], ...]


# ---------------------------------------------------------------- what a unit holds


def _counts_json(c: Counts) -> dict[str, Any]:
    return {f.name: getattr(c, f.name) for f in fields(c)}


def _counts_of(d: dict[str, Any]) -> Counts:
    c = Counts()
    for f in fields(c):
        mine = getattr(c, f.name)
        value = d[f.name]
        setattr(c, f.name, Counter(value) if isinstance(mine, Counter) else value)
    return c


@dataclass
class TypeSums:
    """One interaction type's additive figures over a unit of time (or a sum of units)."""

    counts: Counts = field(default_factory=Counts)
    bands: dict[int, Band] = field(default_factory=dict)
    volume: Counter[tuple[str, str]] = field(default_factory=Counter)  # drafts per (route, tier)
    human: int = 0  # human decisions (timed or not)
    seconds: Counter[int] = field(default_factory=Counter)  # SECONDS_EDGES bucket -> timed human decisions
    csat: dict[str, list[int]] = field(default_factory=dict)  # the reply's decision -> [rated, satisfied]
    reopened: int = 0
    resolved: int = 0
    repeat_contacts: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON whose sum (`merge`) is the JSON of the sum: numbers, dicts of them, equal-length lists."""
        seconds = [0] * (len(SECONDS_EDGES) + 1)
        for b, n in self.seconds.items():
            seconds[b] = n
        return {
            "counts": _counts_json(self.counts),
            "bands": {str(i): [b.human, b.approve, b.errors, b.auto_send] for i, b in self.bands.items()},
            "volume": {f"{r}\t{t}": n for (r, t), n in self.volume.items()},
            "human": self.human,
            "seconds": seconds,
            "csat": {k: list(v) for k, v in self.csat.items()},
            "outcomes": [self.reopened, self.resolved],
            "repeat": self.repeat_contacts,
        }

    @classmethod
    def of_json(cls, d: dict[str, Any]) -> TypeSums:
        volume: Counter[tuple[str, str]] = Counter()
        for key, n in d["volume"].items():
            route, tier = key.split("\t", 1)
            volume[(route, tier)] = n
        return cls(
            counts=_counts_of(d["counts"]),
            bands={int(i): Band(int(i), *v) for i, v in d["bands"].items()},
            volume=volume,
            human=d["human"],
            seconds=Counter({b: n for b, n in enumerate(d["seconds"]) if n}),
            csat={k: list(v) for k, v in d["csat"].items()},
            reopened=d["outcomes"][0],
            resolved=d["outcomes"][1],
            repeat_contacts=d["repeat"],
        )


def merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Add JSON sums: numbers add, dicts merge key by key, lists add element by element.

    Summing a period's units this way, and building objects once at the end, is what keeps reading 50
    cached units cheap. `other`'s containers may be adopted by `into`: pass freshly parsed JSON."""
    for key, value in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = value
        elif isinstance(value, dict):
            merge(mine, value)
        elif isinstance(value, list):
            into[key] = list(map(operator.add, mine, value))  # equal lengths: the same fields and edges
        else:
            into[key] = mine + value


Sums = dict[str, TypeSums]


def params_key(o: Oversight) -> str:
    """What the cached rows were computed with; anything else reads (and fills) rows of its own."""
    basis = [ROLLUP_VERSION, plan_signature(o, True), SECONDS_EDGES, [f.name for f in fields(Counts)]]
    return hashlib.sha256(json.dumps(basis, default=str).encode()).hexdigest()[:32]


# ---------------------------------------------------------------- units of time


def floor_day(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Unit:
    """A UTC day or hour that can be cached once closed."""

    kind: str  # day | hour
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + (DAY if self.kind == "day" else HOUR)

    @property
    def day(self) -> datetime:
        return floor_day(self.start)


def _next_piece(t: datetime, until: datetime, closed_before: datetime) -> tuple[Unit | None, datetime]:
    """The unit starting at `t` (a whole closed day, else a whole closed hour), or None and where the
    live piece from `t` ends."""
    for kind, start in (("day", floor_day(t)), ("hour", floor_hour(t))):
        unit = Unit(kind, start)
        if start == t and unit.end <= until and unit.end <= closed_before:
            return unit, unit.end
    return None, min(floor_hour(t) + HOUR, until)


def split(since: datetime, until: datetime, closed_before: datetime) -> tuple[list[Unit], Ranges]:
    """[since, until) as cacheable units and the live ranges between them (adjacent pieces merged)."""
    units: list[Unit] = []
    live: list[tuple[datetime, datetime]] = []
    t = since.astimezone(UTC)
    until = until.astimezone(UTC)
    while t < until:
        unit, end = _next_piece(t, until, closed_before)
        if unit is not None:
            units.append(unit)
        elif live and live[-1][1] == t:
            live[-1] = (live[-1][0], end)
        else:
            live.append((t, end))
        t = end
    return units, tuple(live)


# ---------------------------------------------------------------- computing a unit (or the live edges)


def _hint(session: Session, index: str) -> str:
    """SQLite's planner would rather scan an index in GROUP BY order than read a short range of another."""
    return f" INDEXED BY {index}" if session.get_bind().dialect.name == "sqlite" else ""


def _times(n: int) -> list[Any]:
    return [bindparam(f"{end}{i}", type_=UTCDateTime()) for i in range(n) for end in ("since", "until")]


def _time_params(ranges: Ranges) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, (since, until) in enumerate(ranges):
        params[f"since{i}"], params[f"until{i}"] = since, until
    return params


def _type_params(types: list[str]) -> tuple[list[Any], dict[str, Any]]:
    return [bindparam(f"t{j}") for j in range(len(types))], {f"t{j}": t for j, t in enumerate(types)}


def _seconds_statement(types: list[str], n_ranges: int) -> TextClause:
    """Timed human decisions per type, read from ix_decisions_stats (one covering range per branch)."""
    branches = [
        f"SELECT interaction_type, seconds_to_decision FROM decisions WHERE interaction_type = :t{j} "
        f"AND stage = 'review' AND decision = '{kind}' AND decided_at >= :since{i} AND decided_at < :until{i} "
        "AND seconds_to_decision IS NOT NULL"
        for j in range(len(types))
        for kind in HUMAN_KINDS
        for i in range(n_ranges)
    ]
    return text(" UNION ALL ".join(branches)).bindparams(*_times(n_ranges))


def _add_seconds(session: Session, ranges: Ranges, types: list[str], into: Sums) -> None:
    if not types:
        return
    _, tparams = _type_params(types)
    rows = session.execute(_seconds_statement(types, len(ranges)), {**tparams, **_time_params(ranges)})
    for itype, seconds in rows:
        into.setdefault(itype, TypeSums()).seconds[bisect.bisect_right(SECONDS_EDGES, seconds)] += 1


def _add_outcomes(session: Session, ranges: Ranges, into: Sums) -> None:
    """Outcome counts by the outcome's `at` (ix_outcomes_at), as `customer_outcomes` counts them."""
    branches = [
        "SELECT interaction_type, kind, decision, count(*), sum(CASE WHEN satisfied THEN 1 ELSE 0 END) "
        f"FROM outcomes{_hint(session, 'ix_outcomes_at')} WHERE at >= :since{i} AND at < :until{i} "
        "AND kind IN ('csat', 'reopened', 'resolved') "
        "GROUP BY interaction_type, kind, decision"
        for i in range(len(ranges))
    ]
    sql = text(" UNION ALL ".join(branches)).bindparams(*_times(len(ranges)))
    for itype, kind, decision, n, satisfied in session.execute(sql, _time_params(ranges)):
        s = into.setdefault(str(itype), TypeSums())
        if kind == "csat" and decision is not None:
            pair = s.csat.setdefault(str(decision), [0, 0])
            pair[0] += int(n)
            pair[1] += int(satisfied or 0)
        elif kind == "reopened":
            s.reopened += int(satisfied or 0)
        elif kind == "resolved":
            s.resolved += int(satisfied or 0)


def _add_repeat_contacts(session: Session, ranges: Ranges, types: list[str], into: Sums) -> None:
    """Drafts a repeat contact sent to humans, per type (the partial index ix_reviews_repeat_contact)."""
    if not types:
        return
    hint = _hint(session, "ix_reviews_repeat_contact")
    branches = [
        f"SELECT :t{j}, count(*) FROM reviews{hint} WHERE {REPEAT_CONTACT} AND interaction_type = :t{j} "
        f"AND created_at >= :since{i} AND created_at < :until{i}"
        for j in range(len(types))
        for i in range(len(ranges))
    ]
    _, tparams = _type_params(types)
    sql = text(" UNION ALL ".join(branches)).bindparams(*_times(len(ranges)))
    for itype, n in session.execute(sql, {**tparams, **_time_params(ranges)}):
        if n:
            into.setdefault(str(itype), TypeSums()).repeat_contacts += int(n)


def _add_live_volume(session: Session, ranges: Ranges, into: Sums) -> None:
    """Drafts per (type, route, tier) of short live ranges (ix_reviews_created_at), without the loose
    scans for each type's tiers that the per-type statements need."""
    branches = [
        f"SELECT interaction_type, route, tier, count(*) FROM reviews{_hint(session, 'ix_reviews_created_at')} "
        f"WHERE created_at >= :since{i} AND created_at < :until{i} GROUP BY interaction_type, route, tier"
        for i in range(len(ranges))
    ]
    sql = text(" UNION ALL ".join(branches)).bindparams(*_times(len(ranges)))
    for itype, route, tier, n in session.execute(sql, _time_params(ranges)):
        c = into.setdefault(str(itype), TypeSums())
        c.counts.volume += int(n)
        c.counts.routed[str(route)] += int(n)
        c.volume[(str(route), str(tier))] += int(n)


def measure(
    session: Session, ranges: Ranges, o: Oversight, types: list[str], tiers: dict[str, Tiers] | None
) -> Sums:
    """Every type's sums over `ranges`, by the exact queries. `tiers` None: live edges (short ranges;
    drafts counted by one GROUP BY instead of per-tier ranges)."""
    plan = make_plan(ranges, o, calibration=True)
    out: Sums = {}
    for itype in types:
        tally = Tally()
        count_type(session, plan, itype, tally, tiers[itype] if tiers is not None else ())
        c = tally.by_type.get(itype)
        if c is not None:
            out[itype] = TypeSums(c, tally.bands_by_type.get(itype, {}), tally.volume, tally.human)
    if tiers is None:
        _add_live_volume(session, ranges, out)
    _add_seconds(session, ranges, types, out)
    _add_outcomes(session, ranges, out)
    _add_repeat_contacts(session, ranges, types, out)
    return out


# ---------------------------------------------------------------- the cache table


def read_units(session: Session, key: str, units: list[Unit]) -> tuple[dict[Unit, str], dict[datetime, int]]:
    """Cached rows of `units` still current (their generation is their day's) as their JSON text, and
    the days' generations."""
    if not units:
        return {}, {}
    params = {"key": key, "a": units[0].start, "b": units[-1].end, "da": units[0].day}
    a, b, da = (bindparam(n, type_=UTCDateTime()) for n in ("a", "b", "da"))
    # The generations first: a row computed before a late write carries the generation before it.
    epochs = (
        text("SELECT day, generation FROM stats_rollup_epochs WHERE day >= :da AND day < :b")
        .bindparams(da, b)
        .columns(day=UTCDateTime(), generation=Integer())
    )
    generation = {d: int(g) for d, g in session.execute(epochs, params)}
    rows = (
        text(
            "SELECT unit, start, generation, payload FROM stats_rollup "
            "WHERE params_key = :key AND start >= :a AND start < :b"
        )
        .bindparams(a, b)
        .columns(unit=String(), start=UTCDateTime(), generation=Integer(), payload=Text())
    )
    wanted = set(units)
    out: dict[Unit, str] = {}
    for kind, start, gen, payload in session.execute(rows, params):
        unit = Unit(str(kind), start)
        if unit in wanted and gen == generation.get(unit.day, 0):
            out[unit] = str(payload)
    return out, generation


SUMS_KEPT = 8  # sums of cached units remembered: a report's periods (this one, the one before, changes)
_sums: OrderedDict[tuple[tuple[str, datetime, str], ...], str] = OrderedDict()
_sums_lock = threading.Lock()


def sum_of_cached(payloads: Mapping[Unit, str]) -> dict[str, Any]:
    """The cached units' JSON added up, as fresh containers (`merge` may adopt them).

    Parsing a period's 50 or so units is most of a warm report's time (about a third of `/hitl review
    30d` at 1,000,000 decisions), and reports ask for the same closed units again and again: the sum is
    remembered, keyed by the payloads themselves, so a unit stored again (a new generation, other
    parameters) is another key, never a stale answer."""
    key = tuple(sorted((u.kind, u.start, p) for u, p in payloads.items()))
    with _sums_lock:
        known = _sums.get(key)
        if known is not None:
            _sums.move_to_end(key)
    if known is None:
        total: dict[str, Any] = {}
        for payload in payloads.values():
            merge(total, json.loads(payload))
        known = json.dumps(total, separators=(",", ":"))
        with _sums_lock:
            _sums[key] = known
            while len(_sums) > SUMS_KEPT:
                _sums.popitem(last=False)
    result: dict[str, Any] = json.loads(known)
    return result


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def write_units(
    session: Session,
    key: str,
    computed: Mapping[Unit, Mapping[str, Any]],
    generation: dict[datetime, int],
    now: datetime,
) -> bool:
    """Store computed units on a connection of their own; False (logged) when the database refuses."""
    bind = session.get_bind()
    engine: Engine = bind.engine if isinstance(bind, Connection) else bind
    table = StatsRollup.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "params_key": key,
            "start": unit.start,
            "unit": unit.kind,
            "generation": generation.get(unit.day, 0),
            "payload": json.dumps(payload, separators=(",", ":")),
            "computed_at": now,
        }
        for unit, payload in computed.items()
    ]
    ins = _insert(engine.dialect.name)(table)
    upsert = ins.on_conflict_do_update(
        index_elements=["params_key", "start", "unit"],
        set_={"generation": ins.excluded.generation, "payload": ins.excluded.payload, "computed_at": now},
        where=table.c.generation < ins.excluded.generation,
    )
    try:
        with engine.connect() as conn:
            _store_rows(conn, upsert, rows)
    except SQLAlchemyError as exc:
        log.warning("stats rollup not stored (%s): this report was answered from live queries", exc)
        return False
    return True


SQLITE_WAIT_MS = 200  # a report in a SQLite write transaction holds the lock: give up soon, answer anyway


def _store_rows(conn: Connection, upsert: Any, rows: list[dict[str, Any]]) -> None:
    sqlite_db = conn.dialect.name == "sqlite"
    busy = 0
    if sqlite_db:
        busy = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_WAIT_MS}")
        conn.commit()  # the pragmas began a transaction of their own
    try:
        with conn.begin():
            for i in range(0, len(rows), 100):
                conn.execute(upsert, rows[i : i + 100])
    finally:
        if sqlite_db:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy}")
            conn.commit()


def invalidate(session: Session, *at: datetime | None, now: datetime) -> None:
    """Something dated `at` is being written late (an outcome, a review moved to another tier): bump the
    generation of each such day that may be cached already, in the caller's transaction."""
    days = {floor_day(t) for t in at if t is not None and floor_hour(t) + HOUR <= now + GRACE}
    if not days:
        return
    table = StatsRollupEpoch.__table__  # type: ignore[attr-defined]
    ins = _insert(session.get_bind().dialect.name)(table)
    bump = ins.on_conflict_do_update(
        index_elements=["day"],
        set_={"generation": table.c.generation + 1, "updated_at": ins.excluded.updated_at},
    )
    for day in sorted(days):  # one order, so two writers never wait on each other's days
        session.execute(bump, {"day": day, "generation": 1, "updated_at": now})


# ---------------------------------------------------------------- a period


@dataclass
class Window:
    """A period's sums: cached units, units computed now, and the live edges."""

    since: datetime
    until: datetime
    sums: Sums
    cached: int = 0
    computed: int = 0
    live: Ranges = ()

    def picked(self, interaction_type: str | None) -> Sums:
        return {t: s for t, s in self.sums.items() if interaction_type in (None, t)}


def window(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    oversight: Oversight,
    store: bool = True,
) -> Window:
    """The sums of [since, until): cached closed units, the missing ones computed (and stored), the
    open edges live."""
    units, live = split(since, until, now - GRACE)
    key = params_key(oversight)
    cached, generation = read_units(session, key, units)
    missing = [u for u in units if u not in cached]
    types = interaction_types(session, None) if missing or live else []
    computed = _compute(session, missing, oversight, types)
    if computed and store:
        write_units(session, key, computed, generation, now)
    live_json = _as_json(measure(session, live, oversight, types, None)) if live else {}
    sums = _summed(
        [*(json.loads(json.dumps(p)) for p in computed.values()), sum_of_cached(cached), live_json]
    )
    return Window(since, until, sums, cached=len(cached), computed=len(missing), live=live)


def _compute(
    session: Session, units: list[Unit], o: Oversight, types: list[str]
) -> dict[Unit, dict[str, Any]]:
    """Each unit's sums by the exact queries, as the JSON stored for it."""
    if not units:
        return {}
    tiers = {t: tuple(route_tiers(session, t)) for t in types}
    return {u: _as_json(measure(session, ((u.start, u.end),), o, types, tiers)) for u in units}


def _summed(parts: list[dict[str, Any]]) -> Sums:
    """The units' JSON added up (computed units passed as copies: `merge` adopts containers)."""
    total: dict[str, Any] = {}
    for part in parts:
        merge(total, part)
    return {t: TypeSums.of_json(d) for t, d in total.items()}


def _as_json(sums: Sums) -> dict[str, Any]:
    return {t: s.to_json() for t, s in sums.items()}


def fill(session: Session, *, since: datetime, now: datetime, oversight: Oversight) -> int:
    """Compute and store the closed units of [since, now) not cached yet; how many (the pre-fill job)."""
    return window(session, since=since, until=floor_hour(now - GRACE), now=now, oversight=oversight).computed


# ---------------------------------------------------------------- stats from a window


def _bucket_bounds(b: int) -> tuple[float | None, float | None]:
    low = SECONDS_EDGES[b - 1] if b > 0 else None
    high = SECONDS_EDGES[b] if b < len(SECONDS_EDGES) else None
    return low, high


def _locate(cumulative: list[tuple[int, int, int]], rank: int) -> tuple[int, int]:
    """(bucket, values before it) of the value at `rank` (0-based) from (bucket, before, count) rows."""
    for b, before, n in cumulative:
        if before <= rank < before + n:
            return b, before
    raise ValueError(f"rank {rank} outside the histogram")


def histogram_percentiles(
    walk: SecondsWalk, hist: Counter[int], ps: tuple[float, ...]
) -> tuple[float | None, ...]:
    """percentile_cont(p) of the period's timed human decisions, guided by their histogram."""
    cumulative, before = [], 0
    for b in sorted(k for k, v in hist.items() if v):
        cumulative.append((b, before, hist[b]))
        before += hist[b]
    n = before
    if n == 0:
        return tuple(None for _ in ps)
    out: list[float | None] = []
    for p in ps:
        pos = p * (n - 1)
        lo = math.floor(pos)
        first, skip_before = _locate(cumulative, lo)
        last, _ = _locate(cumulative, min(lo + 1, n - 1))
        vals = walk.ranked_in(_bucket_bounds(first)[0], _bucket_bounds(last)[1], lo - skip_before)
        low, high = vals[0], vals[1] if len(vals) > 1 else vals[0]
        out.append(low + (high - low) * (pos - lo))
    return tuple(out)


def _type_counts(s: TypeSums, calibration: bool) -> Counts:
    c = Counts()
    c.add(s.counts)
    if not calibration:  # the plain stats do not read the oversight review's timing aggregates
        c.reply_auto = Counts().reply_auto
        c.reply_reviewed = Counts().reply_reviewed
        c.reviewer_seconds = 0
    return c


def _types_of(
    picked: Sums, calibration: bool, severe: set[str]
) -> tuple[dict[str, Counts], dict[str, dict[int, Band]]]:
    """The types compute_stats lists (any draft, decision or QA rating) and their confidence bands."""
    by_type: dict[str, Counts] = {}
    bands: dict[str, dict[int, Band]] = {}
    for itype, s in picked.items():
        c = _type_counts(s, calibration)
        if c.volume or c.decided or c.qa_rated or c.qa_human_rated:
            by_type[itype] = canonical(c, severe)
            if calibration:
                bands[itype] = {i: b for i, b in sorted(s.bands.items()) if b.human or b.auto_send}
    return by_type, bands


def stats_of(
    session: Session,
    w: Window,
    *,
    interaction_type: str | None,
    oversight: Oversight,
    now: datetime,
    calibration: bool,
) -> Stats:
    """The `Stats` compute_stats would return for the window, from its sums (plus the live queue and the
    percentile reads)."""
    severe = set(oversight.severe_defects)
    picked = w.picked(interaction_type)
    by_type, bands = _types_of(picked, calibration, severe)
    volume: Counter[tuple[str, str]] = Counter()
    hist: Counter[int] = Counter()
    for s in picked.values():
        volume.update(s.volume)
        hist.update(s.seconds)
    use_custom_plans(session)
    walk = SecondsWalk.of(session, w.since, w.until, interaction_type)
    median, p90 = histogram_percentiles(walk, hist, (0.5, 0.9))
    queue = pending_by_type(session, now, interaction_type)
    total = Counts()
    for c in by_type.values():
        total.add(c)
    return Stats(
        since=w.since,
        until=w.until,
        interaction_type=interaction_type,
        total=canonical(total, severe),
        by_type=order_types(by_type),
        volume={k: n for k, n in volume.items() if n},
        median_seconds=median,
        p90_seconds=p90,
        pending=sum(n for n, _ in queue.values()),
        pending_overdue=sum(od for _, od in queue.values()),
        pending_by_type=queue,
        calibration=bands,
    )


def cached_stats(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    interaction_type: str | None = None,
    oversight: Oversight | None = None,
    now: datetime | None = None,
    calibration: bool = False,
) -> Stats:
    """`compute_stats`, answered from the rollup: the same `Stats`, number for number."""
    o = oversight or Oversight()
    at = now or until
    use_custom_plans(session)
    w = window(session, since=since, until=until, now=at, oversight=o)
    return stats_of(
        session, w, interaction_type=interaction_type, oversight=o, now=at, calibration=calibration
    )
