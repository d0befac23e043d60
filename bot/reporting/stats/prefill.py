"""Pre-fills the stats rollup from the shared scheduler, so a manager's `/hitl stats` or `/hitl review` never
pays for computing closed days (bot.reporting.stats.rollup).

Every hour at minute 20 (after the rollup's 15-minute grace), each replica computes the closed days and
hours of the default reports' periods not cached yet (the last hour's and the hours where each period
starts, once the service runs; after a policy change or an upgrade, all of them) and stores them with
INSERT ... ON CONFLICT: two replicas doing it at once store each unit once, and the second mostly
finds them cached. Came-back units (bot.reporting.stats.came_back) of the reviews' periods too. Also
once at start-up, on its own thread.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.app.runtime import Runtime
from bot.reporting.stats import came_back
from bot.reporting.stats.rollup import fill, floor_hour
from storage.db import session_scope

log = logging.getLogger("hitl.stats.prefill")

JOB_ID = "stats_rollup_prefill"
REVIEW_PERIOD = timedelta(days=30)  # the default `/hitl review` period (bot.reporting.manager)
STATS_PERIOD = timedelta(days=7)  # the default `/hitl stats` period


def starts(runtime: Runtime) -> list[timedelta]:
    """How far back the default reports start: `/hitl stats` 7d, and `/hitl review` 30d and the digest
    with the periods before them that they compare with. A period starting inside a day reads that
    day's later hours, so each is filled from its start's hour."""
    o = runtime.policy.oversight
    periods = range(1, max(2, o.sustained_periods) + 1)
    reviews = [p * k for p in (REVIEW_PERIOD, o.digest_period) for k in periods]
    return sorted({STATS_PERIOD, *reviews}, reverse=True)


def prefill(runtime: Runtime) -> int:
    """Store the closed units of the default reports not cached yet; how many were computed (0 on failure)."""
    now = runtime.clock.now()
    o = runtime.policy.oversight
    try:
        with session_scope(runtime.engine, readonly=True) as session:  # the rows go on their own connection
            computed = sum(
                fill(session, since=floor_hour(now - back), now=now, oversight=o) for back in starts(runtime)
            )
            computed += sum(  # came-back, which the reviews read for their own period
                came_back.fill(session, since=floor_hour(now - back), now=now, window=o.came_back_window)
                for back in {REVIEW_PERIOD, o.digest_period}
            )
    except Exception:  # a report computes what is missing itself; the next hour tries again
        log.exception("stats rollup pre-fill failed")
        return 0
    if computed:
        log.info("stats rollup: %d closed days and hours computed", computed)
    return computed


def install(runtime: Runtime) -> None:
    """Schedule the hourly pre-fill on the shared scheduler (after `bot.app.scheduling`)."""
    scheduler = runtime.services.scheduler
    if scheduler is None:
        return
    scheduler.add_job(
        prefill,
        CronTrigger(minute=20, timezone="UTC"),
        args=[runtime],
        id=JOB_ID,
        name="stats rollup pre-fill",
        replace_existing=True,
    )
    runtime.add_worker(
        "stats-prefill-start",
        lambda: threading.Thread(
            target=prefill, args=(runtime,), name="hitl-stats-prefill", daemon=True
        ).start(),
        lambda: None,
    )
