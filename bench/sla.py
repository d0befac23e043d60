"""SLA timers: how late do 10,000 timers due within one minute fire, and how long does rebuilding
100,000 pending timers at start-up take?

    python bench/sla.py [--timers 10000] [--window 60] [--pending 100000] [--pg-url URL] [--no-compare]

Lateness is claim time minus due time: when the SlaPing row is committed with its outbox rows (Slack
delivery after that is paced by Slack's own per-channel limit). It runs the real engine on the real
shared APScheduler with the wall clock; no outbox worker, so only the timers are measured.
Rebuild is `SlaEngine.rebuild()` over the pending reviews (a tenth of them with a step already
claimed, which takes the slow path); for comparison, the time to add one APScheduler `date` job
per review to a paused scheduler, the other design considered. PostgreSQL runs too when --pg-url or
HITL_TEST_POSTGRES_URL is given.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select

from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import Settings
from sandbox.pg import scratch_database
from storage.db import session_scope, upgrade
from storage.models import Review, SlaPing


def runtime_for(url: str) -> Runtime:
    settings = Settings(_env_file=None, HITL_DATABASE_URL=url, HITL_INSTANCE_ID="bench")  # type: ignore[call-arg]
    return build_runtime(settings)


def review_rows(n: int, now: datetime, warn_at: Any, run: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        warn = warn_at(i)
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "idempotency_key": f"{run}-{i}",
                "ticket_id": f"{run}-{i}",
                "interaction_type": "order_status",
                "confidence": 0.8,
                "customer_message": "Where is my order?",
                "draft": "It shipped yesterday.",
                "customer": {},
                "kb_sources": [],
                "extra": {},
                "reasons": [],
                "supervisor_decisions": [],
                "route": "review",
                "tier": "standard",
                "status": "pending",
                "created_at": now,
                "sla_warn_at": warn,
                "sla_due_at": warn + timedelta(hours=1),
                "policy_exception": False,
            }
        )
    return rows


def insert_reviews(runtime: Runtime, rows: list[dict[str, Any]]) -> None:
    with session_scope(runtime.engine) as s:
        for i in range(0, len(rows), 5000):
            s.execute(insert(Review.__table__), rows[i : i + 5000])  # type: ignore[arg-type]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_lateness(url: str, timers: int, window: float) -> None:
    from bot.app import scheduling
    from bot.sla import engine as sla_engine

    runtime = runtime_for(url)
    lead = 5.0  # seconds between start-up and the first due timer
    now = datetime.now(UTC)
    start = now + timedelta(seconds=lead)
    insert_reviews(
        runtime,
        review_rows(
            timers, now, lambda _i: start + timedelta(seconds=random.uniform(0, window)), uuid.uuid4().hex[:8]
        ),
    )
    scheduling.install(runtime)
    sla_engine.install(runtime)
    t0 = time.perf_counter()
    runtime.start()
    print(f"  start-up with {timers} pending timers: {time.perf_counter() - t0:.2f}s")
    deadline = time.monotonic() + lead + window + 60
    fired = 0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        with session_scope(runtime.engine, readonly=True) as s:
            fired = int(s.execute(select(func.count()).select_from(SlaPing)).scalar_one())
        if fired >= timers:
            break
    runtime.stop()
    with session_scope(runtime.engine, readonly=True) as s:
        late = [(f - d).total_seconds() for f, d in s.execute(select(SlaPing.fired_at, SlaPing.due_at))]
    runtime.engine.dispose()
    late_ms = [x * 1000 for x in late]
    print(
        f"  {len(late)} of {timers} timers fired over {window:g}s "
        f"({timers / window:.0f}/s); lateness (claimed − due):"
    )
    if late_ms:
        print(
            f"    p50 {pct(late_ms, 0.50):7.0f} ms   p99 {pct(late_ms, 0.99):7.0f} ms   "
            f"max {max(late_ms):7.0f} ms   mean {statistics.fmean(late_ms):7.0f} ms   "
            f"over 2 s: {sum(1 for x in late if x > 2.0)}"
        )


def bench_rebuild(url: str, pending: int, compare: bool) -> None:
    from bot.sla.engine import SlaEngine

    runtime = runtime_for(url)
    now = datetime.now(UTC)
    rows = review_rows(
        pending, now, lambda _i: now + timedelta(seconds=random.uniform(60, 7200)), uuid.uuid4().hex[:8]
    )
    t0 = time.perf_counter()
    insert_reviews(runtime, rows)
    claimed = rows[: pending // 10]
    with session_scope(runtime.engine) as s:
        pings = [
            {
                "review_id": r["id"],
                "kind": "warn",
                "due_at": r["sla_warn_at"],
                "status": "fired",
                "claimed_by": "bench",
                "fired_at": r["sla_warn_at"],
            }
            for r in claimed
        ]
        for i in range(0, len(pings), 5000):
            s.execute(insert(SlaPing.__table__), pings[i : i + 5000])  # type: ignore[arg-type]
    print(
        f"  stored {pending} pending reviews ({len(claimed)} with a claimed warning) in {time.perf_counter() - t0:.1f}s"
    )
    engine = SlaEngine(runtime)
    t0 = time.perf_counter()
    count = engine.rebuild()
    took = time.perf_counter() - t0
    print(f"  rebuild: {count} timers in {took:.2f}s ({count / took:,.0f} timers/s)")
    if compare:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.start(paused=True)
        with engine._lock:
            due = list(engine._scheduled.items())
        t0 = time.perf_counter()
        for rid, at in due:
            scheduler.add_job(print, "date", run_date=at, args=[rid], id=f"sla:{rid}", replace_existing=True)
        took_aps = time.perf_counter() - t0
        scheduler.shutdown(wait=False)
        print(
            f"  for comparison, one APScheduler date job per review (paused scheduler): +{took_aps:.2f}s "
            f"on top of the same query"
        )
    runtime.engine.dispose()


def run_backend(label: str, url: str, args: argparse.Namespace) -> None:
    print(f"\n{label}")
    upgrade(url)
    bench_lateness(url, args.timers, args.window)
    with session_scope(runtime_for(url).engine) as s:  # a clean table for the rebuild
        s.execute(SlaPing.__table__.delete())  # type: ignore[attr-defined]
        s.execute(Review.__table__.delete())  # type: ignore[attr-defined]
    bench_rebuild(url, args.pending, not args.no_compare)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--timers", type=int, default=10_000, help="timers due within the window (default 10000)"
    )
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds over which they fall due (default 60)"
    )
    parser.add_argument(
        "--pending", type=int, default=100_000, help="pending timers to rebuild (default 100000)"
    )
    parser.add_argument("--pg-url", default=os.environ.get("HITL_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the one-APScheduler-job-per-review comparison"
    )
    args = parser.parse_args()
    print(
        f"bench/sla.py: {args.timers} timers over {args.window:g}s; rebuild of {args.pending} pending timers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_backend("SQLite (WAL)", f"sqlite:///{tmp}/bench.db", args)
    if not args.pg_url:
        print("\nPostgreSQL: skipped (give --pg-url or set HITL_TEST_POSTGRES_URL)")
        return
    with scratch_database(args.pg_url, "hitl_bench") as url:
        run_backend("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
