"""SLA timers: a warning before the breach, breach pings up an escalation chain, a timeout action.

The plan of a review's steps is a pure function of the review and the policy (`ping_plan` in plan.py),
and which of them to act on now is another (`steps_due`); the texts are built in
bot/slack/blocks/sla.py. This module claims and acts. The database is the truth: a step happens
when an `SlaPing(review_id, kind)` row is inserted, in the same transaction that re-reads the
review (locked) as still pending and queues the step's Slack messages in the outbox. The unique
(review_id, kind) constraint makes each step happen once across restarts and replicas.

Timing: every pending review has one entry in an in-memory heap at the time of its next step. One
APScheduler interval job (`sla:tick`, every 0.2 s) fires what is due; a second (`sla:sweep`, every
second) adds reviews created since the last sweep (by this or any replica) and, every 30 sweeps,
any pending review the heap lacks. The heap is rebuilt from the database at start-up. A heap beats
one APScheduler `date` job per review: rebuilding 100,000 timers takes about a second, where adding
100,000 jobs to APScheduler's memory store alone takes 17-30 s (bench/sla.py).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from bot.callbacks.queue import queue_timed_out
from bot.outbox.kinds import (
    MovedFrom,
    PingPlace,
    RefreshCard,
    ReviewCard,
    SlackDm,
    SlackPost,
    SlaPingMessage,
    enqueue_refresh_card,
    enqueue_review_card,
    enqueue_sla_ping,
    enqueue_slack_dm,
    enqueue_slack_post,
    review_order,
)
from bot.reporting.stats.rollup import invalidate
from bot.review.policy import Tier, TimeoutAction
from bot.sla import messages as sla_messages
from bot.sla.clock import sla_times
from bot.sla.plan import (
    Step,
    breach_audience,
    breach_level,
    next_step_at,
    ping_plan,
    sla_round,
    steps_due,
)
from bot.slack.blocks.sla import moved_thread_text, reassigned_dm_text, reassigned_thread_text
from storage import repo
from storage.db import is_sqlite, session_scope
from storage.models import Review, ReviewStatus, SlaPing

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.sla")

TICK_SECONDS = 0.2
SWEEP_SECONDS = 1.0
RECONCILE_EVERY = 30  # sweeps between full passes over all pending reviews
LOOKBACK = timedelta(seconds=10)  # a review may commit a little after its created_at
BATCH = 100  # reviews settled per transaction
TICK_BUDGET = 1.0  # seconds of work per tick before it yields to the next one
RETRY_DELAY = timedelta(seconds=1)
CHUNK = 2000  # ids per IN (...) list


@dataclass(frozen=True)
class _Subject:
    """The columns of a review the plan reads (loading whole rows is slower at start-up)."""

    tier: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Firing:
    """A step being fired, in the transaction that claimed it."""

    session: Session
    review: Review
    tier: Tier | None
    step: Step
    now: datetime

    @property
    def due(self) -> datetime:
        assert self.review.sla_due_at is not None  # only pending reviews with an SLA get here
        return self.review.sla_due_at

    def card_channel(self, fallback: str) -> str:
        """The channel of the review's card, else its tier's, else `fallback`."""
        return self.review.slack_channel or (self.tier.channel if self.tier else fallback)


def _chunked(ids: list[str]) -> Iterator[list[str]]:
    return (ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK))


def _pending(chunk: list[str] | None) -> ColumnElement[bool]:
    """Pending reviews with an SLA (among `chunk` when given)."""
    pending = (col(Review.status) == ReviewStatus.PENDING) & col(Review.sla_due_at).is_not(None)
    return pending if chunk is None else pending & col(Review.id).in_(chunk)


def _first_at(warn: datetime | None, due: datetime) -> datetime:
    """A review's first step: its warning, or its breach when it has none."""
    return min(warn, due) if warn is not None else due


def _claimed_steps(session: Session, chunk: list[str] | None) -> dict[str, set[str]]:
    """The claimed step kinds of pending reviews that have any."""
    claimed: dict[str, set[str]] = defaultdict(set)
    q = (
        select(SlaPing.review_id, SlaPing.kind)
        .join(Review, col(Review.id) == col(SlaPing.review_id))
        .where(_pending(chunk))
    )
    for rid, kind in session.execute(q):
        claimed[rid].add(kind)
    return claimed


def _first_steps(
    session: Session, chunk: list[str] | None, *, without: Collection[str]
) -> dict[str, datetime]:
    """The first step time of pending reviews, except those `without` (they have claimed steps)."""
    q = select(Review.id, Review.sla_warn_at, Review.sla_due_at).where(_pending(chunk))
    return {rid: _first_at(warn, due) for rid, warn, due in session.execute(q) if rid not in without}


# ---------------------------------------------------------------- the engine


class SlaEngine:
    """Fires each pending review's SLA steps on time, once, from an in-memory heap rebuilt from the DB."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._ticking = threading.Lock()
        self._heap: list[tuple[datetime, str]] = []
        self._scheduled: dict[str, datetime] = {}  # review id -> time of its valid heap entry
        self._inflight: set[str] = set()
        self._done: set[str] = set()  # pending reviews whose plan is used up: nothing left to schedule
        self._watermark: datetime | None = None
        self._sweeps = 0
        self.fired = 0

    # -- lifecycle
    def start(self) -> None:
        """Rebuild the timers from the database and start the tick and sweep jobs."""
        started = time.perf_counter()
        count = self.rebuild()
        log.info("sla: %d pending timers rebuilt in %.2fs", count, time.perf_counter() - started)
        scheduler = self.runtime.services.scheduler
        if scheduler is None:  # HITL_SCHEDULER=false: install() does not add the worker
            return
        now = datetime.now(UTC)
        # Two instances allowed, so APScheduler never skips (and logs) a tick while a slow one runs; the
        # second returns at once (`_ticking`), and the first carries on with what is due.
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=TICK_SECONDS,
            id="sla:tick",
            name="sla:tick",
            replace_existing=True,
            next_run_time=now,
            misfire_grace_time=None,
            max_instances=2,
        )
        scheduler.add_job(
            self.sweep,
            "interval",
            seconds=SWEEP_SECONDS,
            id="sla:sweep",
            name="sla:sweep",
            replace_existing=True,
            next_run_time=now + timedelta(seconds=SWEEP_SECONDS),
            misfire_grace_time=None,
        )

    def stop(self) -> None:
        scheduler = self.runtime.services.scheduler
        if scheduler is None:
            return
        for job_id in ("sla:tick", "sla:sweep"):
            if scheduler.get_job(job_id) is not None:
                scheduler.remove_job(job_id)

    # -- the heap
    def _push(self, review_id: str, at: datetime) -> None:
        self._scheduled[review_id] = at
        heapq.heappush(self._heap, (at, review_id))

    def pending_timers(self) -> int:
        with self._lock:
            return len(self._scheduled)

    def next_due(self, review_id: str) -> datetime | None:
        with self._lock:
            return self._scheduled.get(review_id)

    def rebuild(self) -> int:
        """Replace the heap with one entry per pending review, at its next unclaimed step."""
        now = self.runtime.clock.now()
        with session_scope(self.runtime.engine, readonly=True) as session:
            hints, used_up = self._hints(session, None)
        with self._lock:
            self._done = used_up
            self._scheduled = dict(hints)
            self._heap = [(at, rid) for rid, at in hints.items()]
            heapq.heapify(self._heap)
            self._watermark = now
            return len(self._scheduled)

    def _hints(self, session: Session, ids: list[str] | None) -> tuple[dict[str, datetime], set[str]]:
        """Next step time of pending reviews (all, or `ids`), and those whose plan is used up.

        Reviews without pings take a fast path: their next step is their first, read from two columns.
        """
        out: dict[str, datetime] = {}
        used_up: set[str] = set()
        chunks: Iterable[list[str] | None] = [None] if ids is None else _chunked(ids)
        for chunk in chunks:
            claimed = _claimed_steps(session, chunk)
            out.update(_first_steps(session, chunk, without=claimed))
            for rid, at in self._next_steps(session, claimed).items():
                if at is None:
                    used_up.add(rid)
                else:
                    out[rid] = at
        return out, used_up

    def _next_steps(self, session: Session, claimed: dict[str, set[str]]) -> dict[str, datetime | None]:
        """The next unclaimed step of reviews with claimed steps (None when their plan is used up)."""
        out: dict[str, datetime | None] = {}
        for part in _chunked(list(claimed)):
            rows = session.execute(
                sa_select(
                    col(Review.id),
                    col(Review.tier),
                    col(Review.created_at),
                    col(Review.sla_warn_at),
                    col(Review.sla_due_at),
                    col(Review.extra),
                ).where(col(Review.id).in_(part))
            )
            for rid, *fields in rows:
                out[rid] = next_step_at(_Subject(*fields), self.runtime.policy, claimed[rid])
        return out

    # -- jobs
    def sweep(self) -> int:
        """Schedule reviews created since the last sweep; every RECONCILE_EVERY sweeps, all missing ones."""
        try:
            self._sweeps += 1
            if self._sweeps % RECONCILE_EVERY == 0 or self._watermark is None:
                return self.reconcile()
            now = self.runtime.clock.now()
            since = self._watermark - LOOKBACK
            with session_scope(self.runtime.engine, readonly=True) as session:
                rows = session.execute(
                    select(Review.id, Review.sla_warn_at, Review.sla_due_at).where(
                        Review.status == ReviewStatus.PENDING,
                        col(Review.sla_due_at).is_not(None),
                        col(Review.created_at) >= since,
                    )
                ).all()
            added = 0
            with self._lock:
                self._watermark = now
                for rid, warn, due in rows:
                    if self._untracked(rid):
                        self._push(rid, _first_at(warn, due))
                        added += 1
            return added
        except OperationalError:
            log.warning("sla sweep: database unavailable, will try again", exc_info=True)
            return 0

    def reconcile(self) -> int:
        """Schedule every pending review the heap lacks; forget those no longer pending."""
        now = self.runtime.clock.now()
        with session_scope(self.runtime.engine, readonly=True) as session:
            pending = set(
                session.execute(
                    select(Review.id).where(
                        Review.status == ReviewStatus.PENDING, col(Review.sla_due_at).is_not(None)
                    )
                ).scalars()
            )
            missing = self._keep_only(pending, now)
            hints, used_up = self._hints(session, missing) if missing else ({}, set())
        return self._add(hints, used_up)

    def _untracked(self, rid: str) -> bool:
        """Neither scheduled, nor being settled, nor used up (the caller holds the lock)."""
        return rid not in self._scheduled and rid not in self._inflight and rid not in self._done

    def _keep_only(self, pending: set[str], now: datetime) -> list[str]:
        """Forget the timers of reviews no longer pending; returns the pending ones the heap lacks."""
        with self._lock:
            missing = [rid for rid in pending if self._untracked(rid)]
            for rid in [r for r in self._scheduled if r not in pending]:
                del self._scheduled[rid]  # its heap entry is now stale and skipped
            self._done &= pending
            self._watermark = now
        return missing

    def _add(self, hints: dict[str, datetime], used_up: set[str]) -> int:
        """Schedule these reviews (unless one is already scheduled or in flight); returns how many."""
        with self._lock:
            added = 0
            self._done |= used_up
            for rid, at in hints.items():
                if rid not in self._scheduled and rid not in self._inflight:
                    self._push(rid, at)
                    added += 1
            if len(self._heap) > 2 * len(self._scheduled) + 1000:  # drop stale entries now and then
                self._heap = [(at, rid) for rid, at in self._scheduled.items()]
                heapq.heapify(self._heap)
        return added

    def tick(self) -> int:
        """The `sla:tick` job: fire what is due (for a while at most, so others get the database too)."""
        if not self._ticking.acquire(blocking=False):
            return 0
        try:
            return self.run_due(budget=TICK_BUDGET)
        finally:
            self._ticking.release()

    def run_due(self, now: datetime | None = None, *, budget: float | None = None) -> int:
        """Fire every step due at `now` (default: the clock's now); returns how many fired."""
        now = now or self.runtime.clock.now()
        deadline = time.monotonic() + budget if budget is not None else None
        fired_before = self.fired
        while deadline is None or time.monotonic() < deadline:
            batch = self._pop_due(now)
            if not batch:
                break
            self._reschedule(batch, self._settle_or_retry(batch))
        return self.fired - fired_before

    def _pop_due(self, now: datetime) -> list[str]:
        """Take up to BATCH reviews due at `now` off the heap, in flight until rescheduled."""
        batch: list[str] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now and len(batch) < BATCH:
                at, rid = heapq.heappop(self._heap)
                if self._scheduled.get(rid) != at:
                    continue  # stale entry
                del self._scheduled[rid]
                self._inflight.add(rid)
                batch.append(rid)
        return batch

    def _reschedule(self, batch: list[str], nexts: dict[str, datetime | None]) -> None:
        """Put settled reviews back at their next step; those with none left are done."""
        with self._lock:
            for rid in batch:
                self._inflight.discard(rid)
                next_at = nexts.get(rid)
                if next_at is None:
                    self._done.add(rid)
                elif rid not in self._scheduled:
                    self._push(rid, next_at)

    def _settle_or_retry(self, batch: list[str]) -> dict[str, datetime | None]:
        # The timers must outlive a database hiccup or one odd review: retry alone, a little later.
        try:
            return self.settle(batch)
        except OperationalError:  # the database is unreachable or busy: the whole batch waits
            log.warning(
                "sla: database unavailable; %d review(s) retried in %s",
                len(batch),
                RETRY_DELAY,
                exc_info=True,
            )
            return dict.fromkeys(batch, self.runtime.clock.now() + RETRY_DELAY)
        except Exception:
            if len(batch) == 1:
                log.exception("sla: settling review %s failed; retrying in %s", batch[0], RETRY_DELAY)
                return {batch[0]: self.runtime.clock.now() + RETRY_DELAY}
        nexts: dict[str, datetime | None] = {}
        for rid in batch:
            nexts.update(self._settle_or_retry([rid]))
        return nexts

    # -- claiming
    def settle(self, review_ids: list[str]) -> dict[str, datetime | None]:
        """Claim and act on the due steps of these reviews; returns each one's next step time."""
        try:
            nexts, fired = self._settle_batch(review_ids)
        except IntegrityError:
            # Another instance claimed a step between our read and our insert: settle one by one.
            nexts, fired = {}, 0
            for rid in review_ids:
                try:
                    one, n = self._settle_batch([rid])
                    nexts.update(one)
                    fired += n
                except IntegrityError:
                    nexts[rid] = self.runtime.clock.now() + timedelta(milliseconds=200)
        if fired:
            self.fired += fired
            outbox = self.runtime.services.outbox
            if outbox is not None:
                outbox.wake()
        return nexts

    def _settle_batch(self, review_ids: list[str]) -> tuple[dict[str, datetime | None], int]:
        engine = self.runtime.engine
        nexts: dict[str, datetime | None] = {rid: None for rid in review_ids}
        fired = 0
        with session_scope(engine) as session:
            q = select(Review).where(col(Review.id).in_(review_ids)).order_by(col(Review.id))
            if not is_sqlite(engine):
                # Lock the rows: a decision (a conditional UPDATE) waits for us or we see it; a second
                # replica claiming the same review waits and then sees our SlaPing rows.
                q = q.with_for_update()
            reviews = list(session.execute(q).scalars())
            now = self.runtime.clock.now()  # read after the lock, so a step never predates its claim
            claimed: dict[str, set[str]] = defaultdict(set)
            for rid, kind in session.execute(
                select(SlaPing.review_id, SlaPing.kind).where(col(SlaPing.review_id).in_(review_ids))
            ):
                claimed[rid].add(kind)
            for review in reviews:
                nexts[review.id], n = self._settle_review(session, review, claimed[review.id], now)
                fired += n
            session.flush()
        return nexts, fired

    def _settle_review(
        self, session: Session, review: Review, claimed: set[str], now: datetime
    ) -> tuple[datetime | None, int]:
        if review.status != ReviewStatus.PENDING or review.sla_due_at is None:
            return None, 0  # decided: every remaining step is moot
        policy = self.runtime.policy
        due = steps_due(ping_plan(review, policy), claimed, now)
        me = self.runtime.instance_id
        for step in due.skip:
            session.add(
                SlaPing(
                    review_id=review.id, kind=step.kind, due_at=step.due_at, status="cancelled", claimed_by=me
                )
            )
            log.info("sla: review %s %s skipped (a later step is already due)", review.id, step.kind)
        fired = 0
        for step in due.fire:
            session.add(
                SlaPing(
                    review_id=review.id,
                    kind=step.kind,
                    due_at=step.due_at,
                    status="fired",
                    claimed_by=me,
                    fired_at=now,
                )
            )
            fired += 1
            if self._act(_Firing(session, review, policy.tiers.get(review.tier), step, now)):
                # Moved to another tier: a new round starts there, from now.
                return next_step_at(review, policy, ()), fired
        return due.next_at, fired

    # -- effects (all queued in the claiming transaction)
    def _act(self, f: _Firing) -> bool:
        """Queue a step's Slack messages and audit row; True when the review moved to another tier."""
        if f.step.action == "warn":
            self._warn(f)
            return False
        if f.step.action == "breach":
            self._breach(f)
            return False
        return self._timeout(f)

    def _audit(self, f: _Firing, action: str, **detail: Any) -> None:
        repo.audit(
            session=f.session,
            at=f.now,
            actor="hitl",
            action=action,
            review_id=f.review.id,
            **detail,
            kind=f.step.kind,
            due_at=f.step.due_at.isoformat(),
            late_ms=int((f.now - f.step.due_at).total_seconds() * 1000),
            instance=self.runtime.instance_id,
        )

    def _warn(self, f: _Firing) -> None:
        # No group mention on a warning (issue 13): the ping names whoever claimed the review, if anyone.
        self._ping(f, "thread")
        self._refresh(f)
        self._audit(f, "sla_warning")

    def _breach(self, f: _Firing) -> None:
        step = f.step
        level = breach_level(f.tier, step.level)
        mention = breach_audience(f.tier, level).mention()
        self._ping(f, "thread", mention=mention)
        if level.channel:
            self._ping(f, "channel", mention=mention, channel=level.channel)
        for user in breach_audience(f.tier, level).users if level.dm else []:
            self._ping(f, "dm", mention=mention, user=user)
        if step.repeat == 0:
            self._refresh(f)
        self._audit(
            f,
            "sla_breach_ping" if step.level == 1 else "sla_escalation",
            level=step.level,
            repeat=step.repeat,
            channel=level.channel,
            dm=level.dm,
            mention=mention,
        )

    def _ping(
        self,
        f: _Firing,
        place: PingPlace,
        *,
        mention: str = "",
        channel: str | None = None,
        user: str | None = None,
    ) -> None:
        """Queue one ping, rendered at delivery from the store (bot.sla.messages): state, customer, buttons."""
        ping = SlaPingMessage(
            review_id=f.review.id,
            place=place,
            step=f.step.kind,
            level=f.step.level if f.step.action == "breach" else 0,
            repeat=f.step.repeat,
            fired_at=f.now,
            channel=channel,
            user=user,
            mention=mention,
        )
        where = {"thread": "thread", "channel": "channel", "dm": f"dm:{user}"}[place]
        enqueue_sla_ping(
            f.session, now=f.now, ping=ping, dedupe_key=f"sla:{f.review.id}:{f.step.kind}:{where}"[:200]
        )

    def _timeout(self, f: _Firing) -> bool:
        timeout = f.tier.escalation.on_timeout if f.tier else None
        if timeout is None:
            return False
        queue_timed_out(f.session, review=f.review, now=f.now, action=timeout.action)
        if timeout.action == "reassign":
            self._reassign(f, timeout)
            return False
        self._move_tier(f, timeout)
        return True

    def _reassign(self, f: _Firing, timeout: TimeoutAction) -> None:
        review = f.review
        review.assignee = timeout.to
        f.session.add(review)
        self._thread(
            f, reassigned_thread_text(ticket_id=review.ticket_id, waited=timeout.after, to=timeout.to)
        )
        if not timeout.to.startswith(("S", "<")):  # a person, not a user group: tell them
            text = reassigned_dm_text(ticket_id=review.ticket_id, channel=f.card_channel(""))
            enqueue_slack_dm(
                f.session,
                now=f.now,
                dm=SlackDm(user=timeout.to, review_id=review.id, text=text),
                order_key=review_order(review.id),
                dedupe_key=f"sla:{review.id}:{f.step.kind}:dm",
            )
        self._refresh(f)
        self._audit(f, "sla_timeout_action", action_taken="reassign", to=timeout.to)

    def _move_tier(self, f: _Firing, timeout: TimeoutAction) -> None:
        review, policy = f.review, self.runtime.policy
        target = policy.tiers[timeout.to]
        old_tier = review.tier
        moved_from = (
            MovedFrom(channel=review.slack_channel, ts=review.slack_ts)
            if review.slack_channel and review.slack_ts
            else None
        )
        if moved_from:  # a note under the old card, delivered before the card moves (same order key)
            self._thread(
                f,
                moved_thread_text(
                    waited=timeout.after, channel=target.channel, tier=timeout.to, sla=target.sla
                ),
            )
        round_ = sla_round(review) + 1
        moves = list((review.extra or {}).get("sla_moves", []))
        moves.append({"from": old_tier, "to": timeout.to, "at": f.now.isoformat()})
        review.extra = {**(review.extra or {}), "sla_round": round_, "sla_moves": moves}
        review.tier = timeout.to
        invalidate(f.session, review.created_at, now=f.now)  # its day's cached drafts-per-tier count
        review.sla_warn_at, review.sla_due_at = sla_times(policy, timeout.to, f.now)
        # slack_channel/slack_ts keep naming the old card until the repost replaces them: if the repost
        # never succeeds, the old card (still with its buttons) is where humans can act.
        f.session.add(review)
        card = ReviewCard(review_id=review.id, moved_from=moved_from)
        enqueue_review_card(f.session, now=f.now, card=card, dedupe_key=f"post:{review.id}:r{round_}")
        self._audit(
            f,
            "sla_timeout_action",
            action_taken="move_tier",
            from_tier=old_tier,
            to=timeout.to,
            moved_from=moved_from.model_dump() if moved_from else None,
            new_due_at=review.sla_due_at.isoformat(),
        )

    def _thread(self, f: _Firing, text: str) -> None:
        """A reply in the card's thread, bound to the card at delivery (`in_review_thread`): the card's post
        is queued earlier under the same order key, so it is out by then even if it was not at claim time."""
        post = SlackPost(
            channel=f.card_channel(""),
            text=text,
            review_id=f.review.id,
            in_review_thread=True,
            thread_ts=f.review.slack_ts,
        )
        enqueue_slack_post(
            f.session,
            now=f.now,
            post=post,
            order_key=review_order(f.review.id),
            dedupe_key=f"sla:{f.review.id}:{f.step.kind}:thread",
        )

    def _refresh(self, f: _Firing) -> None:
        enqueue_refresh_card(
            f.session,
            now=f.now,
            refresh=RefreshCard(review_id=f.review.id),
            dedupe_key=f"sla:{f.review.id}:{f.step.kind}:refresh",
        )


def install(runtime: Runtime) -> None:
    """Add the SLA engine as `runtime.services.sla` (its jobs run on the shared scheduler), and its ping kind."""
    if runtime.services.sla is not None:
        return
    sla_messages.install(runtime)
    engine = SlaEngine(runtime)
    runtime.services.sla = engine
    if runtime.services.scheduler is not None:  # HITL_SCHEDULER=false: another replica keeps the time
        runtime.add_worker("sla", engine.start, engine.stop)
