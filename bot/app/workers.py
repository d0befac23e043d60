"""Wires the background work of a service: the outbox worker and every part that adds to it.

Each part has `install(runtime)`, which registers its outbox kinds (`runtime.services.kinds.register`)
and/or adds workers (`runtime.add_worker`). Order matters only for start-up: the scheduler first (the
parts add jobs to it), the outbox worker starts first and stops last.
"""

from __future__ import annotations

from bot.ai import assist
from bot.app import metrics, scheduling
from bot.app.runtime import Runtime
from bot.callbacks import delivery as callback_delivery
from bot.helpdesk import delivery as helpdesk_delivery
from bot.outbox import alerts as outbox_alerts
from bot.outbox.worker import OutboxWorker
from bot.qa import calibration_service, rating
from bot.reporting import digest, policy_audit
from bot.reporting.stats import prefill
from bot.sla import engine as sla_engine
from bot.slack import delivery as slack_delivery

PARTS = (
    scheduling.install,
    digest.install,
    prefill.install,  # the stats rollup's closed days, hourly
    policy_audit.install,
    slack_delivery.install,
    outbox_alerts.install,  # the ops channel's dead-letter alert (issue 13)
    sla_engine.install,
    helpdesk_delivery.install,
    rating.install,
    calibration_service.install,
    assist.install,
    callback_delivery.install,
    metrics.install,  # last: counts the calls of the Slack and helpdesk clients the parts above made
)


def install_workers(runtime: Runtime) -> None:
    """Create the outbox worker and let every part register its share (once per runtime)."""
    if runtime.services.outbox is not None:
        return
    worker = OutboxWorker(runtime)
    runtime.services.outbox = worker
    if runtime.settings.outbox_enabled:
        runtime.add_worker("outbox", worker.start, worker.stop)
    for install in PARTS:
        install(runtime)
