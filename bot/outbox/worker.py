"""The durable outbox: every outside write is a row, delivered here with backoff, in order per key.

Rows are added by the `enqueue_<kind>()` functions of `bot.outbox.kinds` in the same transaction as the change that causes them.
A worker claims due rows with a lease (so a crashed worker's rows are taken again after the lease),
calls the handler registered for the row's kind, and records the outcome. Handlers must be
idempotent: after a crash a row can be delivered again (the helpdesk side keeps a ledger).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased
from tenacity import RetryCallState, wait_exponential_jitter

from bot.outbox.kinds import OutboxKind, SlackPost, enqueue_slack_post
from bot.outbox.registry import KindPolicy, Permanent, Retry
from storage import repo
from storage.db import session_scope
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
        batch: int = 50,
        lease: timedelta = timedelta(seconds=120),
        threads: int = 4,
    ) -> None:
        self.runtime = runtime
        self.poll_interval = (
            poll_interval if poll_interval is not None else runtime.settings.outbox_poll_seconds
        )
        self.batch = batch
        self.lease = lease
        self.threads = threads
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
    def claim(self, now: datetime) -> list[OutboxItem]:
        """Lease the due rows that are first in line for their order key."""
        me = self.runtime.instance_id
        earlier = aliased(OutboxItem)
        blocked = exists().where(
            and_(
                earlier.order_key == OutboxItem.order_key,
                earlier.id < OutboxItem.id,
                earlier.status == OutboxStatus.PENDING,
            )
        )
        with session_scope(self.runtime.engine) as session:
            q = (
                select(OutboxItem.id)
                .where(
                    OutboxItem.status == OutboxStatus.PENDING,
                    OutboxItem.next_attempt_at <= now,
                    (OutboxItem.locked_until.is_(None)) | (OutboxItem.locked_until < now),
                    ~blocked,
                )
                .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
                .limit(self.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True, of=OutboxItem)
            ids = list(session.execute(q).scalars())
            if not ids:
                return []
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(ids))
                .values(locked_by=me, locked_until=now + self.lease)
            )
            rows = list(
                session.execute(
                    select(OutboxItem).where(OutboxItem.id.in_(ids)).order_by(OutboxItem.id)
                ).scalars()
            )
            for row in rows:
                session.expunge(row)
            return rows

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and deliver one batch; returns how many rows were settled (done, retried or dead)."""
        now = now or self.runtime.clock.now()
        rows = self.claim(now)
        for row in rows:
            self.deliver(row)
        return len(rows)

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
            q = select(OutboxItem.id).where(
                OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= now
            )
            if kinds:
                q = q.where(OutboxItem.kind.in_(kinds))
            return session.execute(q.limit(1)).first() is not None

    def deliver(self, row: OutboxItem) -> None:
        """Call the handler and settle the row: done, retry later, or dead-letter."""
        registration = self.runtime.services.kinds.get(row.kind)
        policy = registration.policy if registration else KindPolicy()
        now = self.runtime.clock.now()
        try:
            if registration is None:
                raise Permanent(f"no handler registered for outbox kind {row.kind!r}")
            result = registration.deliver(self.runtime, row) or {}
        except Retry as exc:
            self._settle_failure(row, str(exc), policy, exc.retry_after, permanent=False)
        except Permanent as exc:
            self._settle_failure(row, str(exc), policy, None, permanent=True)
        except Exception as exc:  # an unexpected error is treated as transient: never lose the row
            log.exception("outbox %s #%s failed", row.kind, row.id)
            self._settle_failure(row, f"{type(exc).__name__}: {exc}", policy, None, permanent=False)
        else:
            with session_scope(self.runtime.engine) as session:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == row.id, OutboxItem.status == OutboxStatus.PENDING)
                    .values(
                        status=OutboxStatus.DONE,
                        delivered_at=now,
                        attempts=row.attempts + 1,
                        locked_by=None,
                        locked_until=None,
                        last_error=None,
                        result=result,
                    )
                )
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
                    **{k: v for k, v in result.items() if k in ("channel", "ts", "outcome", "comment_id")},
                )

    def _settle_failure(
        self, row: OutboxItem, error: str, policy: KindPolicy, retry_after: float | None, *, permanent: bool
    ) -> None:
        now = self.runtime.clock.now()
        attempts = row.attempts + 1
        too_old = now - row.created_at > policy.max_age
        dead = permanent or attempts >= policy.max_attempts or too_old
        with session_scope(self.runtime.engine) as session:
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_error": error[:4000],
                "locked_by": None,
                "locked_until": None,
            }
            if dead:
                values["status"] = OutboxStatus.DEAD
            else:
                values["next_attempt_at"] = now + timedelta(
                    seconds=backoff_delay(attempts, policy, retry_after)
                )
            changed = session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row.id, OutboxItem.status == OutboxStatus.PENDING)
                .values(**values)
            ).rowcount
            if dead and changed:
                why = "gave up: " + (
                    "permanent error" if permanent else "too old" if too_old else f"{attempts} attempts"
                )
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
                if (
                    policy.announce_dead
                    and self.runtime.settings.ops_channel
                    and row.kind != OutboxKind.SLACK_POST
                ):
                    text = (
                        f":rotating_light: Outbox #{row.id} ({row.kind}) dead-lettered — {why}: "
                        f"{error[:300]}. Inspect with `hitl outbox list --dead`, "
                        f"retry with `hitl outbox retry {row.id}`."
                    )
                    post = SlackPost(channel=self.runtime.settings.ops_channel, text=text)
                    enqueue_slack_post(session, now=now, post=post, order_key="ops")


def requeue(*, runtime: Runtime, ids: list[int] | None = None, all_dead: bool = False) -> int:
    """Put dead rows back in line (attempts reset); returns how many."""
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        q = update(OutboxItem).where(OutboxItem.status == OutboxStatus.DEAD)
        if ids:
            q = q.where(OutboxItem.id.in_(ids))
        elif not all_dead:
            return 0
        count = session.execute(
            q.values(
                status=OutboxStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                locked_by=None,
                locked_until=None,
            )
        ).rowcount
        repo.audit(session=session, at=now, actor="cli", action="outbox_retry", ids=ids or "all", count=count)
        return int(count)
