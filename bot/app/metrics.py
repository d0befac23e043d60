"""Prometheus metrics of one service instance: `GET /metrics`, from one CollectorRegistry per runtime.

Counters count what this replica did, and only what was committed: drafts, decisions and their time
to decision, SLA warnings and breaches, outbox deliveries and dead letters are read off the rows
this runtime's engine INSERTs into reviews, decisions and audit_events (ORM flush, core INSERT or
executemany alike) and counted when that transaction commits, so every code path (API, Slack,
scheduler, CLI) is counted once, and a rolled-back transaction not at all. Outside calls are counted
where they are made: Slack (both WebClients' final answers), the helpdesk (an httpx response hook)
and decision callbacks. Click ack latency is timed by an ASGI middleware on /slack/events (HTTP
mode; Socket Mode acks are not HTTP answers and are not timed). Queue gauges (outbox depth and oldest age per kind, dead
letters, pending reviews) are read from the database at scrape time, so every replica reports the
same numbers. prometheus-client's metrics are thread-safe: worker threads may count at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
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
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app.runtime import Runtime
from bot.app.settings import MissingSetting
from bot.outbox.kinds import OutboxKind
from storage.db import session_scope
from storage.fastpath import INSERTED_ROWS
from storage.models import AuditEvent, Decision, DecisionKind, OutboxItem, OutboxStatus, Review, ReviewStatus

log = logging.getLogger("hitl.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DECISION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
MAX_TIMED_BODY = 1024 * 1024  # bytes of a Slack request kept to read its payload type
OTHER = "other"  # the label of an interaction type the policy does not name (keeps label sets small)
_COUNTS = "hitl_metrics_counts"  # session.info key: counts waiting for the commit


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

    def count(self, counts: Iterable[Count]) -> None:
        """Apply the counts of one committed transaction."""
        for count in counts:
            count(self)


# ---------------------------------------------------------------- committed rows -> counters

Count = Callable[[HitlMetrics], None]  # one committed row's effect on the metrics
Row = dict[str, Any]


def _draft_count(m: HitlMetrics, row: Row) -> Count | None:
    labels = (str(row.get("route")), m.interaction_label(str(row.get("interaction_type"))))
    return lambda metrics: metrics.drafts.labels(*labels).inc()


def _decision_count(_m: HitlMetrics, row: Row) -> Count | None:
    kind = str(row.get("decision"))
    human = row.get("stage") == "review" and kind != DecisionKind.AUTO_SEND
    waited = row.get("seconds_to_decision") if human else None

    def count(m: HitlMetrics) -> None:
        m.decisions.labels(kind).inc()
        if waited is not None:
            m.time_to_decision.labels(kind).observe(float(waited))

    return count


def _audit_count(_m: HitlMetrics, row: Row) -> Count | None:
    """SLA steps and outbox outcomes, from the audit rows that record them."""
    detail = row.get("detail") or {}
    kind, first = str(detail.get("kind")), not detail.get("repeat")
    counts: dict[str, Count | None] = {
        "sla_warning": lambda m: m.sla_warnings.inc(),
        "sla_breach_ping": (lambda m: m.sla_breaches.inc()) if first else None,
        "sla_escalation": (lambda m: m.sla_escalations.inc()) if first else None,
        "delivered": lambda m: m.delivered.labels(kind).inc(),
        "outbox_dead": lambda m: m.dead_letters.labels(kind).inc(),
    }
    return counts.get(str(row.get("action")))


# Which inserted rows count, by table: whether the ORM, a core INSERT or an executemany wrote them.
ROW_COUNTS: dict[str, Callable[[HitlMetrics, Row], Count | None]] = {
    Review.__tablename__: _draft_count,
    Decision.__tablename__: _decision_count,
    AuditEvent.__tablename__: _audit_count,
}


def counts_of(m: HitlMetrics, statement: object, rows: Iterable[Row]) -> list[Count]:
    """What an executed INSERT will count once its transaction commits."""
    table = getattr(statement, "table", None) if getattr(statement, "is_insert", False) else None
    return counts_of_table(m, getattr(table, "name", ""), rows)


def counts_of_table(m: HitlMetrics, table: str, rows: Iterable[Row]) -> list[Count]:
    """What rows inserted into `table` will count once their transaction commits."""
    to_count = ROW_COUNTS.get(table)
    if to_count is None:
        return []
    return [c for c in (to_count(m, row) for row in rows) if c is not None]


def watch(engine: Engine, m: HitlMetrics) -> None:
    """Count the rows inserted through `engine` when, and only when, their transaction commits."""

    @event.listens_for(engine, "after_execute")
    def _inserted(
        conn: Connection, statement: object, _multi: Any, _params: Any, opts: Any, result: Any
    ) -> None:
        several = (opts or {}).get(INSERTED_ROWS)  # one statement for rows of several tables
        if several is not None:
            counts = [c for table, row in several for c in counts_of_table(m, table.name, [row])]
        else:
            context = getattr(result, "context", None)
            counts = counts_of(m, statement, getattr(context, "compiled_parameters", None) or [])
        if counts:
            conn.info.setdefault(_COUNTS, []).extend(counts)

    @event.listens_for(engine, "commit")
    def _committed(conn: Connection) -> None:
        m.count(conn.info.pop(_COUNTS, []))

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn: Connection) -> None:
        if conn.invalidated:
            return  # a dropped connection: its info goes with it (and reading it here would raise)
        conn.info.pop(_COUNTS, None)


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
    return runtime.services.metrics


def callback_call(runtime: Runtime, status: str) -> None:
    """Count one decision callback POST (an HTTP status, `timeout` or `error`)."""
    m = of(runtime)
    if m is not None:
        m.callback_calls.labels(status).inc()


class SlackCallCounter(RetryHandler):
    """Counts every HTTP attempt a WebClient makes, by method and status (429s a client waits out too).

    slack_sdk shows each answer to its retry handlers in turn; this one is first and never retries, so
    the client's own handlers still decide."""

    def __init__(self, m: HitlMetrics) -> None:
        super().__init__(max_retry_count=0)
        self.m = m

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.split("?", 1)[0].rsplit("/", 1)[-1]
        self.m.slack_calls.labels(method, str(response.status_code) if response else "error").inc()
        return False


def count_slack_calls(client: WebClient, m: HitlMetrics) -> None:
    """Count every Web API call this client makes, by method and HTTP status (429s included)."""
    client.retry_handlers.insert(0, SlackCallCounter(m))


def count_helpdesk_calls(http: httpx.Client, helpdesk: str, m: HitlMetrics) -> None:
    """Count every response the helpdesk client gets, by status."""

    def hook(response: httpx.Response) -> None:
        m.helpdesk_calls.labels(helpdesk, str(response.status_code)).inc()

    http.event_hooks["response"].append(hook)


def _instrument_helpdesk(runtime: Runtime, m: HitlMetrics) -> None:
    from bot.helpdesk.delivery import helpdesk_of

    try:
        helpdesk = helpdesk_of(runtime)
    except MissingSetting:  # the write-back reports it when it runs; nothing to count until then
        return
    http = getattr(helpdesk, "http", None)
    if isinstance(http, httpx.Client):
        count_helpdesk_calls(http, runtime.settings.helpdesk.value, m)


def install(runtime: Runtime) -> None:
    """Create this runtime's metrics and count the calls of its Slack and helpdesk clients."""
    if of(runtime) is not None:
        return
    m = HitlMetrics(runtime)
    runtime.services.metrics = m
    watch(runtime.engine, m)
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
            if message["type"] == "http.request" and len(body) < MAX_TIMED_BODY:
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
