"""Wires the background work of a service: the outbox worker and every module that adds to it.

Each module in WORKER_MODULES has `install(runtime)`, which registers its outbox kinds
(`bot.outbox.worker.register_kind`) and/or adds workers (`runtime.add_worker`). Order matters only for
start-up: the outbox worker starts first and stops last.
"""

from __future__ import annotations

import importlib

from bot.app.runtime import Runtime
from bot.outbox.worker import OutboxWorker

WORKER_MODULES: list[str] = [
    "bot.app.scheduling",
    "bot.reporting.digest",
    "bot.reporting.policy_audit",
    "bot.slack.delivery",
    "bot.sla.engine",
    "bot.helpdesk.delivery",
    "bot.ai.assist",
]


def install_workers(runtime: Runtime) -> None:
    """Create the outbox worker and let every module register its part."""
    if "outbox" in runtime.services:
        return
    worker = OutboxWorker(runtime)
    runtime.services["outbox"] = worker
    if runtime.settings.outbox_enabled:
        runtime.add_worker("outbox", worker.start, worker.stop)
    for name in WORKER_MODULES:
        importlib.import_module(name).install(runtime)
