"""Prometheus metrics of one service instance: `GET /metrics`, from one CollectorRegistry per runtime.

Counters count what this replica did, and only what was committed: drafts, decisions and their time
to decision, SLA warnings and breaches, outbox deliveries and dead letters are read off the rows a
session flushed (Review, Decision, AuditEvent) and counted when its transaction commits, so every
code path (API, Slack, scheduler, CLI) is counted once, and a rolled-back transaction not at all.
Outside calls are counted where they are made: Slack (both WebClients), the helpdesk (an httpx
response hook) and decision callbacks. Queue gauges (outbox depth and oldest age per kind, dead
letters, pending reviews) are read from the database at scrape time, so every replica reports the
same numbers. prometheus-client's metrics are thread-safe: worker threads may count at once.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app.runtime import Runtime
from bot.outbox.kinds import OutboxKind
from storage.db import session_scope
from storage.models import AuditEvent, Decision, DecisionKind, OutboxItem, OutboxStatus, Review, ReviewStatus

log = logging.getLogger("hitl.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DECISION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
OTHER = "other"  # the label of an interaction type the policy does not name (keeps label sets small)
_FACTS = "hitl_metrics_facts"


class HitlMetrics:
    """The counters and histograms of one runtime, and the registry `/metrics` renders."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry()
        r = self.registry
        self.drafts = Counter(
            "hitl_drafts",
            "Drafts taken in, by route and interaction type",
            ["route", "interaction_type"],
            registry=r,
        )
        self.decisions = Counter("hitl_decisions", "Decisions recorded, by kind", ["decision"], registry=r)
        self.time_to_decision = Histogram(
            "hitl_time_to_decision_seconds",
            "Seconds from a draft's arrival to its human decision",
            ["decision"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.sla_warnings = Counter("hitl_sla_warnings", "SLA warnings posted", registry=r)
        self.sla_breaches = Counter("hitl_sla_breaches", "SLA breaches (first breach ping)", registry=r)
        self.sla_escalations = Counter("hitl_sla_escalations", "Escalations past level 1", registry=r)
        self.delivered = Counter("hitl_outbox_delivered", "Outbox rows delivered", ["kind"], registry=r)
        self.dead_letters = Counter(
            "hitl_outbox_dead_letters", "Outbox rows dead-lettered", ["kind"], registry=r
        )
        self.slack_calls = Counter(
            "hitl_slack_calls",
            "Slack Web API calls, by method and HTTP status",
            ["method", "status"],
            registry=r,
        )
        self.helpdesk_calls = Counter(
            "hitl_helpdesk_calls", "Helpdesk HTTP calls, by HTTP status", ["helpdesk", "status"], registry=r
        )
        self.callback_calls = Counter(
            "hitl_callback_calls", "Decision callback POSTs, by HTTP status", ["status"], registry=r
        )
        self.ack_seconds = Histogram(
            "hitl_slack_ack_seconds",
            "Seconds from a Slack interactive request arriving to its HTTP answer (the ack)",
            ["type"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        r.register(QueueCollector(runtime))
        self._types = frozenset(runtime.policy.interaction_types) | {"unclassified"}

    def render(self) -> bytes:
        """The Prometheus text exposition of everything above (reads the queue gauges from the database)."""
        return generate_latest(self.registry)

    def interaction_label(self, interaction_type: str) -> str:
        return interaction_type if interaction_type in self._types else OTHER

    def count(self, facts: Iterable[Fact]) -> None:
        """Apply the facts of one committed transaction."""
        for fact in facts:
            fact.apply(self)


# ---------------------------------------------------------------- committed rows -> counters


@dataclass(frozen=True)
class Fact:
    """Something a committed row says happened: `what` names the counter, the rest are its labels."""

    what: str
    label: str = ""
    seconds: float | None = None

    def apply(self, m: HitlMetrics) -> None:
        simple = {"warning": m.sla_warnings, "breach": m.sla_breaches, "escalation": m.sla_escalations}
        if self.what in simple:
            simple[self.what].inc()
        elif self.what == "draft":
            route, interaction_type = self.label.split("\0", 1)
            m.drafts.labels(route, interaction_type).inc()
        elif self.what == "delivered":
            m.delivered.labels(self.label).inc()
        elif self.what == "dead":
            m.dead_letters.labels(self.label).inc()
        elif self.what == "decision":
            m.decisions.labels(self.label).inc()
            if self.seconds is not None:
                m.time_to_decision.labels(self.label).observe(self.seconds)


def _draft_fact(m: HitlMetrics, review: Review) -> Iterator[Fact]:
    yield Fact("draft", f"{review.route}\0{m.interaction_label(review.interaction_type)}")


def _decision_fact(row: Decision) -> Iterator[Fact]:
    human = row.stage == "review" and row.decision != DecisionKind.AUTO_SEND
    yield Fact("decision", str(row.decision), row.seconds_to_decision if human else None)


AUDIT_FACTS: dict[str, Callable[[dict[str, Any]], Fact | None]] = {
    "sla_warning": lambda d: Fact("warning"),
    "sla_breach_ping": lambda d: Fact("breach") if not d.get("repeat") else None,
    "sla_escalation": lambda d: Fact("escalation") if not d.get("repeat") else None,
    "delivered": lambda d: Fact("delivered", str(d.get("kind"))),
    "outbox_dead": lambda d: Fact("dead", str(d.get("kind"))),
}


def facts_of(m: HitlMetrics, objects: Iterable[object]) -> list[Fact]:
    """What the rows being inserted say happened."""
    out: list[Fact] = []
    for obj in objects:
        if isinstance(obj, Review):
            out.extend(_draft_fact(m, obj))
        elif isinstance(obj, Decision):
            out.extend(_decision_fact(obj))
        elif isinstance(obj, AuditEvent) and obj.action in AUDIT_FACTS:
            fact = AUDIT_FACTS[obj.action](obj.detail or {})
            if fact is not None:
                out.append(fact)
    return out


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, HitlMetrics] = weakref.WeakKeyDictionary()


def _metrics_of_session(session: Session) -> HitlMetrics | None:
    bind = session.bind
    return _BY_ENGINE.get(bind) if isinstance(bind, Engine) else None


@event.listens_for(Session, "after_flush")
def _collect_flushed(session: Session, _context: Any) -> None:
    m = _metrics_of_session(session)
    if m is not None:
        session.info.setdefault(_FACTS, []).extend(facts_of(m, session.new))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    facts: list[Fact] = session.info.pop(_FACTS, [])
    m = _metrics_of_session(session) if facts else None
    if m is not None:
        m.count(facts)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_FACTS, None)


# ---------------------------------------------------------------- queue gauges, from the database


class QueueCollector(Collector):
    """Outbox depth, oldest age and dead letters per kind, and pending reviews per tier, read at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("hitl_outbox_depth", "Outbox rows waiting to be delivered", labels=["kind"]),
            GaugeMetricFamily(
                "hitl_outbox_oldest_age_seconds", "Age of the oldest waiting outbox row", labels=["kind"]
            ),
            GaugeMetricFamily(
                "hitl_outbox_dead", "Outbox rows dead-lettered and not retried", labels=["kind"]
            ),
            GaugeMetricFamily(
                "hitl_reviews_pending", "Reviews waiting for a human decision", labels=["tier"]
            ),
            GaugeMetricFamily("hitl_database_up", "1 when the queue gauges could be read from the database"),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, oldest, dead, pending, up = self._families()
        try:
            rows = self._read()
        except SQLAlchemyError:
            log.warning("metrics: the database could not be read for the queue gauges", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        now = self.runtime.clock.now()
        waiting, dead_rows, reviews = rows
        for kind in sorted({k.value for k in OutboxKind} | set(waiting) | set(dead_rows)):
            count, first = waiting.get(kind, (0, None))
            depth.add_metric([kind], count)
            oldest.add_metric([kind], _age(now, first))
            dead.add_metric([kind], dead_rows.get(kind, 0))
        for tier in sorted(set(self.runtime.policy.tiers) | set(reviews)):
            pending.add_metric([tier], reviews.get(tier, 0))
        up.add_metric([], 1)
        yield from (depth, oldest, dead, pending, up)

    def _read(
        self,
    ) -> tuple[dict[str, tuple[int, datetime | None]], dict[str, int], dict[str, int]]:
        kind, status = col(OutboxItem.kind), col(OutboxItem.status)
        with session_scope(self.runtime.engine, readonly=True) as session:
            waiting = session.execute(
                select(kind, func.count(), func.min(col(OutboxItem.created_at)))
                .where(status == OutboxStatus.PENDING)
                .group_by(kind)
            )
            pending_rows = {k: (int(n), first) for k, n, first in waiting}
            dead = session.execute(
                select(kind, func.count()).where(status == OutboxStatus.DEAD).group_by(kind)
            )
            dead_rows = {k: int(n) for k, n in dead}
            tier = col(Review.tier)
            reviews = session.execute(
                select(tier, func.count()).where(col(Review.status) == ReviewStatus.PENDING).group_by(tier)
            )
            return pending_rows, dead_rows, {t: int(n) for t, n in reviews}


def _age(now: datetime, first: datetime | None) -> float:
    if first is None:
        return 0.0
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    return max(0.0, (now - first).total_seconds())


# ---------------------------------------------------------------- outside calls


def of(runtime: Runtime) -> HitlMetrics | None:
    """The metrics of this runtime (None before `install`)."""
    return _BY_ENGINE.get(runtime.engine)


def callback_call(runtime: Runtime, status: str) -> None:
    """Count one decision callback POST (an HTTP status, `timeout` or `error`)."""
    m = of(runtime)
    if m is not None:
        m.callback_calls.labels(status).inc()


def count_slack_calls(client: WebClient, m: HitlMetrics) -> None:
    """Count every Web API call this client makes, by method and HTTP status (429s included)."""
    api_call = client.api_call

    def counted(api_method: str, **kwargs: Any) -> Any:
        try:
            response = api_call(api_method, **kwargs)
        except SlackApiError as exc:
            m.slack_calls.labels(api_method, str(exc.response.status_code)).inc()
            raise
        except OSError:
            m.slack_calls.labels(api_method, "error").inc()
            raise
        m.slack_calls.labels(api_method, str(response.status_code)).inc()
        return response

    setattr(client, "api_call", counted)  # noqa: B010 - an instance attribute shadows the bound method


def count_helpdesk_calls(http: httpx.Client, helpdesk: str, m: HitlMetrics) -> None:
    """Count every response the helpdesk client gets, by status."""

    def hook(response: httpx.Response) -> None:
        m.helpdesk_calls.labels(helpdesk, str(response.status_code)).inc()

    http.event_hooks["response"].append(hook)


def _instrument_helpdesk(runtime: Runtime, m: HitlMetrics) -> None:
    from bot.helpdesk.delivery import helpdesk_of

    try:
        helpdesk = helpdesk_of(runtime)
    except Exception:  # a missing helpdesk setting: the write-back itself reports it when it runs
        log.debug("metrics: no helpdesk client to count calls of", exc_info=True)
        return
    http = getattr(helpdesk, "http", None)
    if isinstance(http, httpx.Client):
        count_helpdesk_calls(http, runtime.settings.helpdesk.value, m)


def install(runtime: Runtime) -> None:
    """Create this runtime's metrics and count the calls of its Slack and helpdesk clients."""
    if of(runtime) is not None:
        return
    m = HitlMetrics(runtime)
    _BY_ENGINE[runtime.engine] = m
    for client in {id(c): c for c in (runtime.services.slack, runtime.services.slack_outbox) if c}.values():
        count_slack_calls(client, m)
    _instrument_helpdesk(runtime, m)


# ---------------------------------------------------------------- click ack latency


def _payload_type(body: bytes) -> str | None:
    """The `type` of a Slack interactive payload (block_actions, view_submission, ...); None otherwise."""
    if not body.startswith(b"payload="):
        return None
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (ValueError, KeyError, UnicodeDecodeError):
        return "invalid"
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) and kind in SLACK_PAYLOAD_TYPES else OTHER


SLACK_PAYLOAD_TYPES = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"}
)


class AckTimer:
    """ASGI middleware: time each interactive request to `path`, from arrival to the start of its answer."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime, path: str = "/slack/events") -> None:
        self.app, self.runtime, self.path = app, runtime, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        m = of(self.runtime)
        if m is None or scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        started, body = time.perf_counter(), bytearray()

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < 64 * 1024:
                body.extend(message.get("body", b""))
            return message

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                kind = _payload_type(bytes(body))
                if kind is not None:
                    m.ack_seconds.labels(kind).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, reading, answering)


# ---------------------------------------------------------------- the endpoint


def mount(app: FastAPI, runtime: Runtime) -> None:
    """`GET /metrics` (Prometheus text format) and the ack timer on /slack/events."""

    async def scrape() -> Response:
        m = of(runtime)
        if m is None:
            return Response("metrics are not installed\n", status_code=503, media_type="text/plain")
        return Response(await run_in_threadpool(m.render), media_type=CONTENT_TYPE)

    app.add_api_route(
        "/metrics",
        scrape,
        methods=["GET"],
        tags=["ops"],
        summary="Prometheus metrics of this replica (queue gauges from the database)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition"}},
    )
    app.add_middleware(AckTimer, runtime=runtime)
