"""The APScheduler 3.x scheduler every timed job shares (SLA timers, digests).

The database is the truth: jobs are projections rebuilt from it at start-up, and every job
claims its work in the database before acting, so restarts and replicas never double it.
"""

from __future__ import annotations

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.app.runtime import Runtime


def install(runtime: Runtime) -> None:
    """Create the shared scheduler as `runtime.services.scheduler`, started with the service."""
    if not runtime.settings.scheduler_enabled or runtime.services.scheduler is not None:
        return
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(max_workers=8)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    runtime.services.scheduler = scheduler
    runtime.add_worker("scheduler", scheduler.start, lambda: scheduler.shutdown(wait=False))
