"""Benchmark: how long `/hitl stats 30d` and `/hitl review 30d` take over 1,000,000 stored decisions and
200,000 outcomes, on SQLite and PostgreSQL.

    .venv/bin/python bench/stats.py                       # 1,000,000 decisions; PG from HITL_TEST_POSTGRES_URL
    .venv/bin/python bench/stats.py --rows 200000 --pg-url postgresql://postgres@127.0.0.1:5432/test

Loads synthetic reviews (customers drawn from a pool, so some come back), their decisions (about 3% of
them QA ratings of auto-sent replies) and outcomes (one for a fifth of the decided reviews)
spread over `--days` (default 30, so a 30-day window covers every row: the worst case), with
SQLAlchemy core executemany in large batches on SQLite and COPY on PostgreSQL, then times
`/hitl stats 30d` and `/hitl review 30d` exactly as the slash command computes them (the stats rollup,
bot.reporting.stats.rollup): the first call of each (cold: it computes and stores the closed days and
hours), then warm calls interleaved (median and max), and the exact queries over the whole period once
each for comparison, checking that both give the same numbers. The load average is printed beside
the figures (the machine may be shared). The PostgreSQL database is created for the run and dropped
afterwards; the SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, insert, text

from bot.app.settings import BUNDLED_POLICY
from bot.reporting.oversight.review import build_review
from bot.reporting.oversight.text import render_review_text
from bot.reporting.stats.query import compute_stats
from bot.reporting.stats.rollup import cached_stats
from bot.review.policy import load_policy
from sandbox.pg import scratch_database
from storage.db import make_engine, session_scope, upgrade
from storage.models import Decision, Outcome, Review

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TYPES = [
    ("order_status", 30, "standard"),
    ("password_reset", 15, "standard"),
    ("shipping", 12, "standard"),
    ("product_question", 12, "standard"),
    ("refund", 10, "billing"),
    ("billing", 8, "billing"),
    ("cancellation", 6, "billing"),
    ("warranty_claim", 3, "standard"),
    ("privacy", 3, "priority"),
    ("safety", 1, "priority"),
]
DEFECTS = ["hallucination", "tone_mismatch", "policy_misapplication", "incomplete_resolution", "other"]
QA_SHARE = 0.03
OUTCOME_SHARE = 0.2  # outcomes per decision: 200,000 for 1,000,000 decisions
CUSTOMERS_PER_REVIEW = 0.35  # a pool of customers, so some come back within the window
BATCH = 20_000
POLICY = load_policy(BUNDLED_POLICY)


Generated = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]


def _outcome(rnd: random.Random, review: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """A CSAT (70%), reopen or resolve of the ticket, a few hours after the decision (before NOW)."""
    kind = rnd.choices(["csat", "reopened", "resolved"], [70, 15, 15])[0]
    score = rnd.choices([1, 2, 3, 4, 5], [8, 5, 10, 30, 47])[0] if kind == "csat" else None
    at = min(decision["decided_at"] + timedelta(hours=rnd.uniform(1, 48)), NOW - timedelta(minutes=1))
    return {
        "ticket_id": review["ticket_id"],
        "kind": kind,
        "value": str(score) if score else "true",
        "score": score,
        "satisfied": score >= 4 if score else True,
        "at": at,
        "received_at": at,
        "review_id": review["id"],
        "interaction_type": review["interaction_type"],
        "decision": decision["decision"],
    }


def _route(itype: str, conf: float, trigger: bool) -> str:
    th = POLICY.thresholds(itype)
    if itype in POLICY.human_only or conf < th.review_at:
        return "take_over"
    return "review" if trigger or conf < th.auto_send_at else "auto_send"


def _decision(rnd: random.Random, route: str) -> tuple[str, float, float, bool | None, str | None]:
    """(kind, seconds, edit distance, SLA breached, defect) of a decided draft."""
    if route == "auto_send":
        return "auto_send", 0.0, 0.0, None, None
    if route == "take_over":
        kind = rnd.choices(["take_over", "edit"], [80, 20])[0]
    else:
        kind = rnd.choices(["approve", "edit", "take_over", "reject"], [72, 18, 5, 5])[0]
    seconds = round(rnd.lognormvariate(5.5, 0.9), 1)
    dist = round(rnd.uniform(0.02, 0.6), 3) if kind == "edit" else 0.0
    defect = rnd.choice(DEFECTS) if kind == "reject" or (kind == "edit" and dist > 0.3) else None
    return kind, seconds, dist, seconds > 1800, defect


STATUS = {
    "approve": "approved",
    "edit": "edited",
    "take_over": "taken_over",
    "reject": "rejected",
    "auto_send": "auto_sent",
}


def _review(rnd: random.Random, i: int, created: datetime, itype: str, customers: int) -> dict[str, Any]:
    """A synthetic draft of type `itype`, routed by the bundled policy (still pending)."""
    conf = round(min(1.0, max(0.0, rnd.betavariate(6, 2))), 3)
    trigger = rnd.random() < 0.15
    reasons = [{"code": "confidence_medium", "message": "m"}]
    if trigger:
        reasons.append({"code": rnd.choice(["repeat_contact", "risky_keyword", "vip"]), "message": "t"})
    tiers = {t: tier for t, _, tier in TYPES}
    return {
        "id": uuid.UUID(int=rnd.getrandbits(128)).hex,
        "idempotency_key": f"bench-{i}",
        "ticket_id": str(100000 + i),
        "interaction_type": itype,
        "confidence": conf,
        "customer_message": "Where is my order? It was due Monday.",
        "draft": "Hi! Your order shipped yesterday and should arrive Thursday.",
        "customer": {},
        "policy_exception": False,
        "kb_sources": [],
        "extra": {},
        "route": _route(itype, conf, trigger),
        "tier": "priority" if itype in POLICY.human_only else tiers[itype],
        "reasons": reasons,
        "supervisor_decisions": [],
        "status": "pending",
        "created_at": created,
        "sla_due_at": created + timedelta(minutes=30),
        "customer_key": f"id:cus_{rnd.randrange(customers)}",
    }


def _decisions(rnd: random.Random, review: dict[str, Any], room: int) -> list[dict[str, Any]]:
    """The review-stage decision (and, for some auto-sent replies, a QA rating); sets the review's status."""
    route = review["route"]
    base = {
        "review_id": review["id"],
        **{k: review[k] for k in ("ticket_id", "interaction_type", "confidence", "route", "tier", "reasons")},
        "customer_message": review["customer_message"],
        "ai_draft": review["draft"],
    }
    kind, seconds, dist, breached, defect = _decision(rnd, route)
    review["status"] = STATUS[kind]
    decided = review["created_at"] + timedelta(seconds=seconds)
    out = [
        {
            **base,
            "stage": "review",
            "decision": kind,
            "decided_at": decided,
            "seconds_to_decision": seconds,
            "edit_distance": dist,
            "sla_breached": breached,
            "defect_category": defect,
            "actor_id": "U0BENCH",
            "final_text": review["draft"],
        }
    ]
    if route == "auto_send" and rnd.random() < QA_SHARE * 4 and room >= 2:
        good = rnd.random() < 0.93
        out.append(
            {
                **base,
                "stage": "qa",
                "decision": "qa_good" if good else "qa_defect",
                "decided_at": decided + timedelta(hours=2),
                "seconds_to_decision": None,
                "edit_distance": None,
                "sla_breached": None,
                "defect_category": None if good else rnd.choice(DEFECTS),
                "actor_id": "U0QA",
                "final_text": None,
            }
        )
    return out


def generate(rows: int, days: float, seed: int = 7) -> Iterator[Generated]:
    """(review, [decisions], [outcomes]) in time order until `rows` decisions; ~2% of reviews stay pending."""
    rnd = random.Random(seed)
    customers = max(1, int(rows * CUSTOMERS_PER_REVIEW))
    names = [t for t, _, _ in TYPES]
    weights = [w for _, w, _ in TYPES]
    start = NOW - timedelta(days=days)
    span = days * 86400 - 3 * 3600  # so that decisions (and QA ratings hours later) land before NOW
    made, i = 0, 0
    while made < rows:
        i += 1
        created = start + timedelta(seconds=span * made / rows)
        review = _review(rnd, i, created, rnd.choices(names, weights)[0], customers)
        pending = rnd.random() < 0.02 and review["route"] != "auto_send"
        decisions = [] if pending else _decisions(rnd, review, rows - made)
        made += len(decisions)
        outcomes = [_outcome(rnd, review, decisions[0])] if decisions and rnd.random() < OUTCOME_SHARE else []
        yield review, decisions, outcomes


def load(engine: Engine, rows: int, days: float) -> tuple[int, int, int]:
    """Bulk-load; returns (reviews, decisions, outcomes)."""
    n_reviews = n_decisions = n_outcomes = 0
    reviews: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    pg = engine.dialect.name == "postgresql"
    raw = engine.raw_connection() if pg else None

    def push() -> None:
        if raw is not None:
            _copy_pg(raw, reviews, decisions, outcomes)
        else:
            _insert_core(engine, reviews, decisions, outcomes)
        reviews.clear()
        decisions.clear()
        outcomes.clear()

    for review, decs, outs in generate(rows, days):
        reviews.append(review)
        decisions.extend(decs)
        outcomes.extend(outs)
        n_reviews += 1
        n_decisions += len(decs)
        n_outcomes += len(outs)
        if len(reviews) >= BATCH:
            push()
    push()
    if raw is not None:
        raw.close()
    return n_reviews, n_decisions, n_outcomes


REVIEW_COLS = [
    "id",
    "idempotency_key",
    "ticket_id",
    "interaction_type",
    "confidence",
    "customer_message",
    "draft",
    "customer",
    "policy_exception",
    "kb_sources",
    "extra",
    "route",
    "tier",
    "reasons",
    "supervisor_decisions",
    "status",
    "created_at",
    "sla_due_at",
    "customer_key",
]
OUTCOME_COLS = [
    "ticket_id",
    "kind",
    "value",
    "score",
    "satisfied",
    "at",
    "received_at",
    "review_id",
    "interaction_type",
    "decision",
]
DECISION_COLS = [
    "review_id",
    "stage",
    "ticket_id",
    "interaction_type",
    "confidence",
    "route",
    "tier",
    "reasons",
    "customer_message",
    "ai_draft",
    "final_text",
    "decision",
    "actor_id",
    "decided_at",
    "seconds_to_decision",
    "edit_distance",
    "defect_category",
    "sla_breached",
]


Rows = list[dict[str, Any]]


def _insert_core(engine: Engine, reviews: Rows, decisions: Rows, outcomes: Rows) -> None:
    with engine.begin() as conn:
        if reviews:
            conn.execute(insert(Review.__table__), reviews)  # type: ignore[attr-defined]
        if decisions:
            conn.execute(insert(Decision.__table__), decisions)  # type: ignore[attr-defined]
        if outcomes:
            conn.execute(insert(Outcome.__table__), outcomes)  # type: ignore[attr-defined]


def _copy_pg(raw: Any, reviews: Rows, decisions: Rows, outcomes: Rows) -> None:
    json_cols = {"customer", "kb_sources", "extra", "reasons", "supervisor_decisions"}

    def cell(col: str, value: Any) -> Any:
        return json.dumps(value) if col in json_cols else value

    cur = raw.cursor()
    with cur.copy(f"COPY reviews ({', '.join(REVIEW_COLS)}) FROM STDIN") as copy:
        for r in reviews:
            copy.write_row([cell(c, r.get(c)) for c in REVIEW_COLS])
    with cur.copy(f"COPY decisions ({', '.join(DECISION_COLS)}) FROM STDIN") as copy:
        for d in decisions:
            copy.write_row([cell(c, d.get(c)) for c in DECISION_COLS])
    with cur.copy(f"COPY outcomes ({', '.join(OUTCOME_COLS)}) FROM STDIN") as copy:
        for o in outcomes:
            copy.write_row([o.get(c) for c in OUTCOME_COLS])
    raw.commit()


def slash_stats(engine: Engine, period: timedelta, itype: str | None, cached: bool = True) -> Any:
    """`/hitl stats <period> [type]` as bot.reporting.manager.stats_reply computes it (a fresh session)."""
    with session_scope(engine, readonly=True) as session:
        compute = cached_stats if cached else compute_stats
        return compute(
            session=session,
            since=NOW - period,
            until=NOW,
            interaction_type=itype,
            oversight=POLICY.oversight,
            now=NOW,
        )


def slash_review(engine: Engine, period: timedelta, cached: bool = True) -> Any:
    """`/hitl review <period>` as bot.reporting.manager.review_reply computes it."""
    with session_scope(engine, readonly=True) as session:
        return build_review(session=session, policy=POLICY, now=NOW, period=period, cached=cached)


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def warm(times: list[float]) -> str:
    return f"median {ms(statistics.median(times))}   max {ms(max(times))}"


COMMANDS = (
    ("/hitl stats 30d", lambda e, c: slash_stats(e, timedelta(days=30), None, c)),
    ("/hitl stats 7d", lambda e, c: slash_stats(e, timedelta(days=7), None, c)),
    ("/hitl stats 30d refund", lambda e, c: slash_stats(e, timedelta(days=30), "refund", c)),
    ("/hitl review 30d", lambda e, c: slash_review(e, timedelta(days=30), c)),
)


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "as_dict"):
        return json.dumps(a.as_dict(), sort_keys=True, default=str) == json.dumps(
            b.as_dict(), sort_keys=True, default=str
        )
    return bool(render_review_text(a) == render_review_text(b))


def time_commands(engine: Engine, repeat: int) -> dict[str, Any]:
    """Cold calls in order, then `repeat` warm rounds interleaved, then the exact queries once each."""
    cold: dict[str, tuple[float, Any]] = {}
    for label, run in COMMANDS:
        cold[label] = timed(run, engine, True)
        print(f"{label:<24} cold  {ms(cold[label][0])}   ({load_average()})", flush=True)
    warm_times: dict[str, list[float]] = {label: [] for label, _ in COMMANDS}
    for _ in range(repeat):
        for label, run in COMMANDS:
            warm_times[label].append(timed(run, engine, True)[0])
    out: dict[str, Any] = {}
    for label, run in COMMANDS:
        exact_s, exact = timed(run, engine, False)
        same = _same(cold[label][1], exact)
        print(
            f"{label:<24} warm  {warm(warm_times[label])}   exact queries {ms(exact_s)}   "
            f"same numbers: {'yes' if same else 'NO'}   ({load_average()})",
            flush=True,
        )
        out[label] = cold[label][1]
    stats = out["/hitl stats 30d"]
    print(
        f"({stats.total.decided:,} decisions, {stats.total.volume:,} drafts in the 30d window; "
        f"median {stats.median_seconds:.0f}s, p90 {stats.p90_seconds:.0f}s)",
        flush=True,
    )
    return out


def run_backend(name: str, url: str, rows: int, days: float, repeat: int) -> dict[str, Any]:
    print(f"\n== {name} ==", flush=True)
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    n_reviews, n_decisions, n_outcomes = load(engine, rows, days)
    load_s = time.perf_counter() - t0
    print(
        f"loaded {n_decisions:,} decisions and {n_outcomes:,} outcomes for {n_reviews:,} reviews in {load_s:.1f} s "
        f"({n_decisions / load_s:,.0f} decisions/s)",
        flush=True,
    )
    t0 = time.perf_counter()
    if name == "PostgreSQL":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE reviews"))
            conn.execute(text("VACUUM ANALYZE decisions"))
            conn.execute(text("VACUUM ANALYZE outcomes"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    print(f"ANALYZE in {time.perf_counter() - t0:.1f} s", flush=True)
    out = time_commands(engine, repeat)
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="decisions to store (default 1,000,000)")
    parser.add_argument(
        "--days",
        type=float,
        default=30.0,
        help="spread the rows over this many days before 'now' (default 30: all in the window)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query (default 5)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("HITL_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default HITL_TEST_POSTGRES_URL); a scratch database is created",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"hitl stats benchmark: {args.rows:,} decisions over {args.days:g} days; 'now' = {NOW:%Y-%m-%d %H:%M} UTC"
    )
    results: dict[str, dict[str, Any]] = {}
    if not args.skip_sqlite:
        workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
        try:
            results["SQLite"] = run_backend(
                "SQLite", f"sqlite:///{workdir / 'bench.db'}", args.rows, args.days, args.repeat
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.pg_url:
        print(
            "\n== PostgreSQL ==\nskipped: set HITL_TEST_POSTGRES_URL or pass --pg-url "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    else:
        with scratch_database(args.pg_url, "hitl_bench") as url:
            results["PostgreSQL"] = run_backend("PostgreSQL", url, args.rows, args.days, args.repeat)
    if len(results) == 2:
        a, b = results["SQLite"]["/hitl stats 30d"], results["PostgreSQL"]["/hitl stats 30d"]
        same = json.dumps(a.as_dict(), sort_keys=True, default=str) == json.dumps(
            b.as_dict(), sort_keys=True, default=str
        )
        print(f"\nSQLite and PostgreSQL agree on every number of /hitl stats 30d: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
