"""The durable outbox: every outside write is a row, delivered here with backoff, in order per key.

Rows are added by the `enqueue_<kind>()` functions of `bot.outbox.kinds`, in the same transaction as
the change that causes them. A worker claims a batch of due rows under a fresh lease token (fencing):
it renews the lease while it works through the batch, re-checks the token before starting each row,
and every state change it makes (done, retry, dead) is conditional on still holding that token. A
worker whose lease was taken (it stalled past the lease) therefore stops without writing, and rows of
a replica that died are free again one short lease later (seconds, not minutes). Handlers stay
idempotent all the same: the helpdesk side keeps a ledger whose start is a compare-and-set.

Waiting is not failing: a handler that raises `Defer` (Slack's pacing, a 429's Retry-After) moves the
row's `next_attempt_at` only. Attempts count real failures, and a run of them ends in a dead letter
when the kind's budget says so (`give_up_after` from the first failure, permanent errors at once),
never because the queue in front of a row was long.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col
from tenacity import RetryCallState, wait_exponential_jitter

from bot.app.logging import log_context
from bot.outbox.kinds import DeadLetterAlert, OutboxKind, enqueue_dead_letter_alert
from bot.outbox.registry import Defer, KindPolicy, Permanent, Retry
from storage import repo
from storage.db import changed, session_scope
from storage.models import OutboxItem, OutboxStatus

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.outbox")


def backoff_delay(attempt: int, policy: KindPolicy, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (tenacity's), never sooner than the service's Retry-After."""
    wait = wait_exponential_jitter(
        initial=policy.initial_delay, max=policy.max_delay, jitter=policy.initial_delay
    )
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    delay = float(wait(state))
    if retry_after is not None:
        # Honour Retry-After exactly, plus a little jitter so a herd of rows does not return at once.
        delay = max(retry_after + random.uniform(0, 0.25 * max(retry_after, 1.0)), 0.0)
    return delay


class OutboxWorker:
    """Delivers due outbox rows on a background thread; safe to run in several replicas at once."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float | None = None,
        batch: int | None = None,
        lease: timedelta | None = None,
        renew_every: float | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.poll_interval = poll_interval if poll_interval is not None else settings.outbox_poll_seconds
        self.batch = batch or settings.outbox_batch
        self.lease = lease or timedelta(seconds=settings.outbox_lease_seconds)
        # Renew well inside the lease, so a slow write (or a slow database) never lets it lapse.
        self.renew_every = renew_every or min(settings.outbox_renew_seconds, self.lease.total_seconds() / 3)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="hitl-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        """Deliver now instead of at the next poll (called after a commit that queued work)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.run_once()
            except Exception:  # the worker must outlive a database hiccup; the row stays queued
                log.exception("outbox pass failed")
                delivered = 0
            if delivered == 0:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    # -- one pass
    def new_token(self) -> str:
        """A lease token: this instance's name (for `hitl outbox list`) plus a fresh nonce (for fencing)."""
        return f"{self.runtime.instance_id}#{uuid.uuid4().hex[:12]}"

    def claim(self, now: datetime, token: str) -> list[OutboxItem]:
        """Lease, under `token`, the due rows that are first in line for their order key."""
        with session_scope(self.runtime.engine) as session:
            q = _due_rows(now, self.runtime.services.kinds.names()).limit(self.batch)
            if session.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True, of=OutboxItem)
            ids = list(session.execute(q).scalars())
            if not ids:
                return []
            changed(
                session,
                update(OutboxItem)
                .where(col(OutboxItem.id).in_(ids))
                .values(locked_by=token, locked_until=now + self.lease),
            )
            rows = list(
                session.execute(
                    select(OutboxItem).where(col(OutboxItem.id).in_(ids)).order_by(col(OutboxItem.id))
                ).scalars()
            )
            for row in rows:
                session.expunge(row)
            return rows

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and deliver one batch; returns how many rows were settled (done, retried or dead)."""
        now = now or self.runtime.clock.now()
        token = self.new_token()
        rows = self.claim(now, token)
        if not rows:
            return 0
        settled = 0
        with self._renewing(token):
            for row in rows:
                if self._stop.is_set() and self._thread is not None:
                    break  # stopping: the rest go back to the queue when the lease ends
                if not self._start(row, token):
                    log.warning(
                        "outbox #%s: lease %s was taken over; leaving the row to its holder", row.id, token
                    )
                    continue
                self.deliver(row, token)
                settled += 1
        self._release(token)
        return settled

    @contextmanager
    def _renewing(self, token: str) -> Iterator[None]:
        """Extend the batch's lease every `renew_every` seconds while the batch is being delivered."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.renew_every):
                try:
                    self._extend(token)
                except Exception:  # a database hiccup: try again at the next beat, the lease still runs
                    log.warning("outbox lease %s: renewal failed", token, exc_info=True)

        beat = threading.Thread(target=renew, name="hitl-outbox-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join(timeout=5)

    def _extend(self, token: str) -> None:
        until = self.runtime.clock.now() + self.lease
        with session_scope(self.runtime.engine) as session:
            changed(
                session,
                update(OutboxItem)
                .where(col(OutboxItem.locked_by) == token, col(OutboxItem.locked_until) < until)
                .values(locked_until=until),
            )

    def _start(self, row: OutboxItem, token: str) -> bool:
        """Fence check right before the outside call: do we still hold this row? (extends its lease too)"""
        until = max(self.runtime.clock.now(), row.locked_until or self.runtime.clock.now()) + self.lease
        with session_scope(self.runtime.engine) as session:
            held = changed(
                session,
                update(OutboxItem)
                .where(*_held(row, token))
                .values(locked_until=until)
                .execution_options(synchronize_session=False),
            )
        return bool(held)

    def _release(self, token: str) -> None:
        """Give back rows of the batch not delivered (stopping, or lease lost): due again at once."""
        with session_scope(self.runtime.engine) as session:
            changed(
                session,
                update(OutboxItem)
                .where(col(OutboxItem.locked_by) == token, col(OutboxItem.status) == OutboxStatus.PENDING)
                .values(locked_by=None, locked_until=None),
            )

    def drain(self, timeout: float = 30.0, *, kinds: set[str] | None = None) -> bool:
        """Deliver until nothing due is left (or `timeout`); for the demo, tests and CLI."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run_once() == 0 and not self._due_left(kinds):
                return True
            time.sleep(0.02)
        return False

    def _due_left(self, kinds: set[str] | None) -> bool:
        now = self.runtime.clock.now()
        with session_scope(self.runtime.engine, readonly=True) as session:
            q = select(col(OutboxItem.id)).where(
                col(OutboxItem.status) == OutboxStatus.PENDING, col(OutboxItem.next_attempt_at) <= now
            )
            if kinds:
                q = q.where(col(OutboxItem.kind).in_(kinds))
            return session.execute(q.limit(1)).first() is not None

    def deliver(self, row: OutboxItem, token: str | None = None) -> None:
        """Call the handler and settle the row (done, retry later, dead), if `token` still holds it."""
        payload = row.payload if isinstance(row.payload, dict) else {}
        # Every log line of this delivery names the review and ticket it is for (bot/app/logging.py).
        with log_context(review_id=payload.get("review_id"), ticket_id=payload.get("ticket_id")):
            self._deliver(row, token)

    def _deliver(self, row: OutboxItem, token: str | None) -> None:
        token = token or row.locked_by or ""
        registration = self.runtime.services.kinds.get(row.kind)
        policy = registration.policy if registration else KindPolicy()
        try:
            if registration is None:
                raise Permanent(f"no handler registered for outbox kind {row.kind!r}")
            result = registration.deliver(self.runtime, row) or {}
        except Exception as exc:
            self._settle_error(row, token, exc, policy)
        else:
            self._settle_done(row, token, result)

    def _settle_error(self, row: OutboxItem, token: str, exc: Exception, policy: KindPolicy) -> None:
        """Defer: wait, no attempt counted; Retry or unexpected: a real failure; Permanent: dead now."""
        if isinstance(exc, Defer):
            self._settle_defer(row, token, str(exc), exc.retry_after)
        elif isinstance(exc, Retry):
            self._settle_failure(row, token, str(exc), policy, exc.retry_after, permanent=False)
        elif isinstance(exc, Permanent):
            self._settle_failure(row, token, str(exc), policy, None, permanent=True)
        else:  # an unexpected error is treated as transient: never lose the row
            log.error("outbox %s #%s failed", row.kind, row.id, exc_info=exc)
            self._settle_failure(row, token, f"{type(exc).__name__}: {exc}", policy, None, permanent=False)

    def _settle_done(self, row: OutboxItem, token: str, result: dict[str, Any]) -> None:
        now = self.runtime.clock.now()
        with session_scope(self.runtime.engine) as session:
            won = changed(
                session,
                update(OutboxItem)
                .where(*_held(row, token))
                .values(
                    status=OutboxStatus.DONE,
                    delivered_at=now,
                    attempts=row.attempts + 1,
                    locked_by=None,
                    locked_until=None,
                    last_error=None,
                    result=result,
                    failing_since=None,
                    in_doubt_at=None,
                )
                .execution_options(synchronize_session=False),
            )
            if not won:
                log.warning(
                    "outbox %s #%s: delivered, but the lease was lost; the holder settles it",
                    row.kind,
                    row.id,
                )
                return
            # Every outside write that went out (Slack post, update, DM, helpdesk write) is in the audit log.
            repo.audit(
                session=session,
                at=now,
                actor="hitl",
                action="delivered",
                review_id=row.payload.get("review_id"),
                kind=row.kind,
                outbox_id=row.id,
                attempts=row.attempts + 1,
                instance=self.runtime.instance_id,
                **{k: v for k, v in result.items() if k in ("channel", "ts", "outcome", "comment_id")},
            )

    def _settle_defer(self, row: OutboxItem, token: str, why: str, wait: float) -> None:
        """Waiting is not failing: the row comes due again after `wait` s, no attempt counted."""
        now = self.runtime.clock.now()
        with session_scope(self.runtime.engine) as session:
            changed(
                session,
                update(OutboxItem)
                .where(*_held(row, token))
                .values(
                    next_attempt_at=now + timedelta(seconds=wait),
                    last_error=f"waiting: {why}"[:4000],
                    locked_by=None,
                    locked_until=None,
                )
                .execution_options(synchronize_session=False),
            )

    def _settle_failure(
        self,
        row: OutboxItem,
        token: str,
        error: str,
        policy: KindPolicy,
        retry_after: float | None,
        *,
        permanent: bool,
    ) -> None:
        now = self.runtime.clock.now()
        attempts = row.attempts + 1
        failing_since = row.failing_since or now
        why = _gives_up(row, policy, now, attempts=attempts, failing_since=failing_since, permanent=permanent)
        values: dict[str, Any] = {
            "attempts": attempts,
            "failing_since": failing_since,
            "last_error": error[:4000],
            "locked_by": None,
            "locked_until": None,
        }
        if why:
            values["status"] = OutboxStatus.DEAD
        else:
            values["next_attempt_at"] = now + timedelta(seconds=backoff_delay(attempts, policy, retry_after))
        with session_scope(self.runtime.engine) as session:
            won = changed(
                session,
                update(OutboxItem)
                .where(*_held(row, token))
                .values(**values)
                .execution_options(synchronize_session=False),
            )
            if why and won:
                self._dead_lettered(session, row, f"gave up: {why}", error, policy, now)

    def _dead_lettered(
        self, session: Session, row: OutboxItem, why: str, error: str, policy: KindPolicy, now: datetime
    ) -> None:
        """Audit a dead letter, tell the people concerned, and announce it once in the ops channel."""
        log.error("outbox %s #%s dead-lettered (%s): %s", row.kind, row.id, why, error)
        repo.audit(
            session=session,
            at=now,
            actor="hitl",
            action="outbox_dead",
            review_id=row.payload.get("review_id"),
            outbox_id=row.id,
            kind=row.kind,
            error=error[:500],
            why=why,
        )
        if policy.on_dead is not None:
            policy.on_dead(session, row, f"{why}: {error[:500]}", now)
        ops = self.runtime.settings.ops_channel
        if policy.announce_dead and ops and row.kind != OutboxKind.SLACK_POST:
            # Rendered at delivery (bot.outbox.alerts): the review, the customer impact, Retry and Open card.
            alert = DeadLetterAlert(outbox_id=row.id or 0, channel=ops)
            key = f"dead:{row.id}:{int(now.timestamp() * 1000)}"  # a row dead again later gets a new alert
            enqueue_dead_letter_alert(session, now=now, alert=alert, dedupe_key=key)


def _gives_up(
    row: OutboxItem,
    policy: KindPolicy,
    now: datetime,
    *,
    attempts: int,
    failing_since: datetime,
    permanent: bool,
) -> str | None:
    """Why this failure ends the row (None: try again). Time spent waiting in line never counts."""
    if permanent:
        return "permanent error"
    if attempts >= policy.max_attempts:
        return f"{attempts} attempts"
    if policy.max_age is not None and now - row.created_at > policy.max_age:
        return "too old"
    if policy.give_up_after is not None and now - failing_since > policy.give_up_after:
        hours = policy.give_up_after.total_seconds() / 3600
        return f"failing for more than {hours:g} h"
    return None


def set_in_doubt(*, runtime: Runtime, row: OutboxItem, at: datetime | None) -> None:
    """Mark (or clear) that this row's write went out without an answer; fenced on the row's lease."""
    with session_scope(runtime.engine) as session:
        changed(
            session,
            update(OutboxItem)
            .where(*_held(row, row.locked_by or ""))
            .values(in_doubt_at=at)
            .execution_options(synchronize_session=False),
        )


UNKNOWN_KIND_GRACE = timedelta(minutes=10)  # a kind no replica has registered for this long is dead-lettered


def _due_rows(now: datetime, kinds: tuple[str, ...]) -> Select[Any]:
    """Ids of pending rows that are due, not leased, and first in line for their order key; of `kinds`,
    or of any kind once they have waited UNKNOWN_KIND_GRACE (so a replica older than the row's writer
    leaves it to the newer ones during a rolling deploy, and an orphan kind is still dead-lettered)."""
    earlier = aliased(OutboxItem)
    blocked = exists().where(
        and_(
            col(earlier.order_key) == col(OutboxItem.order_key),
            col(earlier.id) < col(OutboxItem.id),
            col(earlier.status) == OutboxStatus.PENDING,
        )
    )
    return (
        select(col(OutboxItem.id))
        .where(
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) <= now,
            or_(col(OutboxItem.locked_until).is_(None), col(OutboxItem.locked_until) < now),
            or_(col(OutboxItem.kind).in_(kinds), col(OutboxItem.created_at) < now - UNKNOWN_KIND_GRACE),
            ~blocked,
        )
        .order_by(col(OutboxItem.next_attempt_at), col(OutboxItem.id))
    )


def _held(row: OutboxItem, token: str) -> tuple[ColumnElement[bool], ...]:
    """The fence: this row, still pending, still leased under this token."""
    return (
        col(OutboxItem.id) == row.id,
        col(OutboxItem.status) == OutboxStatus.PENDING,
        col(OutboxItem.locked_by) == token,
    )


def requeue(
    *,
    runtime: Runtime,
    ids: list[int] | None = None,
    all_dead: bool = False,
    actor: str = "cli",
    via: str = "cli",
) -> int:
    """Put dead rows back in line (attempts reset), audited as `actor`; returns how many.

    `hitl outbox retry` and the Retry button of a dead-letter alert (bot.outbox.alerts) both come here.
    """
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        q = update(OutboxItem).where(col(OutboxItem.status) == OutboxStatus.DEAD)
        if ids:
            q = q.where(col(OutboxItem.id).in_(ids))
        elif not all_dead:
            return 0
        count = changed(
            session,
            q.values(
                status=OutboxStatus.PENDING,
                attempts=0,
                failing_since=None,
                next_attempt_at=now,
                created_at=now,
                locked_by=None,
                locked_until=None,
            ),
        )
        repo.audit(
            session=session,
            at=now,
            actor=actor,
            action="outbox_retry",
            ids=ids or "all",
            count=count,
            via=via,
        )
        return int(count)
