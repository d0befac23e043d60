"""What a running service holds: settings, database, policy, clock, and its background workers."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.app.settings import Settings
from bot.common.clock import Clock, SystemClock
from bot.outbox.registry import KindRegistry
from bot.review.policy import Policy, load_policy
from storage.db import check_schema, make_engine

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.ai.kb import KbCache
    from bot.ai.llm import LLM
    from bot.app.metrics import HitlMetrics
    from bot.helpdesk.base import Helpdesk
    from bot.helpdesk.webhook import WebhookSender
    from bot.outbox.worker import OutboxWorker
    from bot.review.people import PeopleDirectory
    from bot.sla.engine import SlaEngine
    from bot.slack.pacing import SlackPacer

log = logging.getLogger("hitl")


@dataclass
class Services:
    """What the installed parts of a running service share; each is set by the part that owns it."""

    kinds: KindRegistry = field(default_factory=KindRegistry)
    outbox: OutboxWorker | None = None
    scheduler: BackgroundScheduler | None = None
    sla: SlaEngine | None = None
    slack: WebClient | None = None  # waits out short 429s: for listeners and lookups
    slack_outbox: WebClient | None = None  # never sleeps on 429: the outbox row is retried instead
    slack_gate: SlackPacer | None = None  # Slack's rate limits, shared by replicas
    people: PeopleDirectory | None = None
    helpdesk: Helpdesk | WebhookSender | None = None
    helpdesk_ready: bool = False  # `helpdesk` was built from the settings (None then means "no helpdesk")
    slack_emails: dict[str, str | None] = field(default_factory=dict)
    llm: LLM | None = None
    kb: KbCache | None = None
    bolt: App | None = None
    metrics: HitlMetrics | None = None  # bot.app.metrics.install: the registry GET /metrics renders
    # Records clicks after their ack (handlers.slack.errors.record_after_ack).
    decisions: Executor | None = None
    socket_mode: bool = False

    def wake_outbox(self) -> None:
        """Deliver what was just committed now rather than at the next poll (no-op without a worker)."""
        if self.outbox is not None:
            self.outbox.wake()


@dataclass
class Runtime:
    """One service instance. Background workers register a start/stop pair in `workers`."""

    settings: Settings
    engine: Engine
    policy: Policy
    clock: Clock = field(default_factory=SystemClock)
    instance_id: str = ""
    workers: list[tuple[str, Callable[[], None], Callable[[], None]]] = field(default_factory=list)
    services: Services = field(default_factory=Services)
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
