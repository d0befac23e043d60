"""What a running service holds: settings, database, policy, clock, and its background workers."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from bot.app.settings import Settings
from bot.common.clock import Clock, SystemClock
from bot.review.policy import Policy, load_policy
from storage.db import check_schema, make_engine

log = logging.getLogger("hitl")


@dataclass
class Runtime:
    """One service instance. Background workers register a start/stop pair in `workers`."""

    settings: Settings
    engine: Engine
    policy: Policy
    clock: Clock = field(default_factory=SystemClock)
    instance_id: str = ""
    workers: list[tuple[str, Callable[[], None], Callable[[], None]]] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.instance_id:
            self.instance_id = (
                self.settings.instance_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
            )

    def add_worker(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        """Register a background worker, started with the service and stopped with it."""
        self.workers.append((name, start, stop))

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for name, start, _ in self.workers:
            log.info("starting %s", name)
            start()

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        for name, _, stop in reversed(self.workers):
            log.info("stopping %s", name)
            stop()


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    policy: Policy | None = None,
    check: bool = True,
) -> Runtime:
    """Open the database (refusing an unknown schema) and load the policy."""
    engine = engine or make_engine(settings.database_url)
    if check:
        check_schema(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        policy=policy or load_policy(settings.policy_file),
        clock=clock or SystemClock(),
    )
