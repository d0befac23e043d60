"""SLA timers: a warning before the breach, breach pings up an escalation chain, a timeout action.

The plan of a review's steps is a pure function of the review and the policy (`ping_plan`), and
which of them to act on now is another (`steps_due`). The database is the truth: a step happens
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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from bot.common.durations import format_duration
from bot.outbox.kinds import (
    MovedFrom,
    RefreshCard,
    ReviewCard,
    SlackDm,
    SlackPost,
    enqueue_refresh_card,
    enqueue_review_card,
    enqueue_slack_dm,
    enqueue_slack_post,
    review_order,
)
from bot.review.policy import EscalationLevel, People, Tier
from bot.sla.clock import sla_times
from bot.sla.plan import (
    Step,
    escalation_levels,
    next_step_at,
    ping_plan,
    sla_round,
    sla_watchers,
    steps_due,
)
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


@dataclass(frozen=True)
class _Subject:
    """The columns of a review the plan reads (loading whole rows is slower at start-up)."""

    tier: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    extra: dict[str, Any]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(at: datetime) -> str:
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _who(target: str) -> str:
    if target.startswith(("S", "s")) and not target.startswith("<"):
        return f"<!subteam^{target}>"
    return target if target.startswith("<") else f"<@{target}>"


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
        """Next step time of pending reviews (all, or `ids`). Reviews without pings take a fast path."""
        out: dict[str, datetime] = {}
        used_up: set[str] = set()
        chunks: Iterable[list[str] | None] = (
            [None] if ids is None else (ids[i : i + 2000] for i in range(0, len(ids), 2000))
        )
        for chunk in chunks:
            pending = (col(Review.status) == ReviewStatus.PENDING) & col(Review.sla_due_at).is_not(None)
            q = select(Review.id, Review.sla_warn_at, Review.sla_due_at).where(pending)
            pq = (
                select(SlaPing.review_id, SlaPing.kind)
                .join(Review, col(Review.id) == col(SlaPing.review_id))
                .where(pending)
            )
            if chunk is not None:
                q = q.where(col(Review.id).in_(chunk))
                pq = pq.where(col(Review.id).in_(chunk))
            claimed: dict[str, set[str]] = defaultdict(set)
            for rid, kind in session.execute(pq):
                claimed[rid].add(kind)
            for rid, warn, due in session.execute(q):
                if rid not in claimed:
                    out[rid] = min(warn, due) if warn is not None else due
            slow = list(claimed)
            for i in range(0, len(slow), 2000):
                rows = session.execute(
                    sa_select(
                        col(Review.id),
                        col(Review.tier),
                        col(Review.created_at),
                        col(Review.sla_warn_at),
                        col(Review.sla_due_at),
                        col(Review.extra),
                    ).where(col(Review.id).in_(slow[i : i + 2000]))
                )
                for rid, *fields in rows:
                    at = next_step_at(_Subject(*fields), self.runtime.policy, claimed[rid])
                    if at is None:
                        used_up.add(rid)
                    else:
                        out[rid] = at
        return out, used_up

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
                    if rid not in self._scheduled and rid not in self._inflight and rid not in self._done:
                        self._push(rid, min(warn, due) if warn is not None else due)
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
            with self._lock:
                missing = [
                    rid
                    for rid in pending
                    if rid not in self._scheduled and rid not in self._inflight and rid not in self._done
                ]
                for rid in [r for r in self._scheduled if r not in pending]:
                    del self._scheduled[rid]  # its heap entry is now stale and skipped
                self._done &= pending
                self._watermark = now
            hints, used_up = self._hints(session, missing) if missing else ({}, set())
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
            batch: list[str] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now and len(batch) < BATCH:
                    at, rid = heapq.heappop(self._heap)
                    if self._scheduled.get(rid) != at:
                        continue  # stale entry
                    del self._scheduled[rid]
                    self._inflight.add(rid)
                    batch.append(rid)
            if not batch:
                break
            nexts = self._settle_or_retry(batch)
            with self._lock:
                for rid in batch:
                    self._inflight.discard(rid)
                    next_at = nexts.get(rid)
                    if next_at is None:
                        self._done.add(rid)
                    elif rid not in self._scheduled:
                        self._push(rid, next_at)
        return self.fired - fired_before

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
            if self._act(session, review, step, now):
                # Moved to another tier: a new round starts there, from now.
                return next_step_at(review, policy, ()), fired
        return due.next_at, fired

    # -- effects (all queued in the claiming transaction)
    def _act(self, session: Session, review: Review, step: Step, now: datetime) -> bool:
        """Queue a step's Slack messages and audit row; True when the review moved to another tier."""
        policy = self.runtime.policy
        tier = policy.tiers.get(review.tier)
        ticket = f"ticket #{_esc(review.ticket_id)}"
        due = review.sla_due_at
        assert due is not None
        common = {
            "kind": step.kind,
            "due_at": step.due_at.isoformat(),
            "late_ms": int((now - step.due_at).total_seconds() * 1000),
            "instance": self.runtime.instance_id,
        }
        if step.action == "warn":
            mention = sla_watchers(tier).mention()
            text = (
                f":hourglass_flowing_sand: *SLA warning*: {format_duration(due - now)} left to decide on {ticket} "
                f"(due {_when(due)}). {mention}"
            ).strip()
            self._thread(session, review, step, text, now)
            self._refresh(session, review, step, now)
            repo.audit(
                session=session, at=now, actor="hitl", action="sla_warning", review_id=review.id, **common
            )
            return False
        if step.action == "breach":
            level = next(
                (lv for lv in escalation_levels(tier) if lv.level == step.level),
                EscalationLevel(level=step.level),
            )
            people = (
                level.notify
                if not level.notify.anyone
                else (sla_watchers(tier) if step.level == 1 else People())
            )
            mention = people.mention()
            over = format_duration(max(now - due, timedelta(0)))
            where = f" in {_esc(review.slack_channel or (tier.channel if tier else '?'))}"
            if step.level == 1 and step.repeat == 0:
                head = f":rotating_light: *SLA breached*: {ticket} was due {_when(due)} and is still waiting"
            elif step.repeat == 0:
                head = f":sos: *SLA escalation, level {step.level}*: {ticket} breached its SLA {over} ago and is still waiting"
            else:
                head = (
                    f":rotating_light: *SLA breached {over} ago* (level {step.level}, reminder {step.repeat}): "
                    f"{ticket} is still waiting"
                )
            ask = "please approve, edit, take over or reject it."
            self._thread(session, review, step, f"{head}. {mention} {ask}".replace("  ", " "), now)
            link = f" <{review.ticket_url}|open ticket>" if review.ticket_url else ""
            outside = f"{head}{where}.{link} {mention}".strip()
            if level.channel:
                post = SlackPost(channel=level.channel, text=outside, review_id=review.id)
                enqueue_slack_post(
                    session,
                    now=now,
                    post=post,
                    order_key=review_order(review.id),
                    dedupe_key=f"sla:{review.id}:{step.kind}:channel",
                )
            if level.dm:
                for user in people.users:
                    enqueue_slack_dm(
                        session,
                        now=now,
                        dm=SlackDm(user=user, text=outside, review_id=review.id),
                        order_key=review_order(review.id),
                        dedupe_key=f"sla:{review.id}:{step.kind}:dm:{user}"[:200],
                    )
            if step.repeat == 0:
                self._refresh(session, review, step, now)
            action = "sla_breach_ping" if step.level == 1 else "sla_escalation"
            repo.audit(
                session=session,
                at=now,
                actor="hitl",
                action=action,
                review_id=review.id,
                level=step.level,
                repeat=step.repeat,
                channel=level.channel,
                dm=level.dm,
                mention=mention,
                **common,
            )
            return False
        return self._timeout(session, review, tier, step, now, common)

    def _timeout(
        self,
        session: Session,
        review: Review,
        tier: Tier | None,
        step: Step,
        now: datetime,
        common: dict[str, Any],
    ) -> bool:
        timeout = tier.escalation.on_timeout if tier else None
        if timeout is None:
            return False
        policy = self.runtime.policy
        waited = format_duration(timeout.after)
        if timeout.action == "reassign":
            review.assignee = timeout.to
            session.add(review)
            self._thread(
                session,
                review,
                step,
                f":bust_in_silhouette: *No decision {waited} after the SLA breach*: "
                f"ticket #{_esc(review.ticket_id)} is reassigned to {_who(timeout.to)}.",
                now,
            )
            if not timeout.to.startswith(("S", "<")):
                text = (
                    f":bust_in_silhouette: Ticket #{_esc(review.ticket_id)} is now yours: nobody "
                    f"decided on its AI draft within its SLA. It is waiting in "
                    f"{_esc(review.slack_channel or (tier.channel if tier else ''))}."
                )
                enqueue_slack_dm(
                    session,
                    now=now,
                    dm=SlackDm(user=timeout.to, review_id=review.id, text=text),
                    order_key=review_order(review.id),
                    dedupe_key=f"sla:{review.id}:{step.kind}:dm",
                )
            self._refresh(session, review, step, now)
            repo.audit(
                session=session,
                at=now,
                actor="hitl",
                action="sla_timeout_action",
                review_id=review.id,
                action_taken="reassign",
                to=timeout.to,
                **common,
            )
            return False
        target = policy.tiers[timeout.to]
        old_tier, moved_from = review.tier, None
        if review.slack_channel and review.slack_ts:
            moved_from = {"channel": review.slack_channel, "ts": review.slack_ts}
        if moved_from:  # a note under the old card, delivered before the card moves (same order key)
            self._thread(
                session,
                review,
                step,
                f":arrow_right: *No decision {waited} after the SLA breach*: moved to "
                f"{_esc(target.channel)} ({_esc(timeout.to)}, SLA {format_duration(target.sla)}).",
                now,
            )
        round_ = sla_round(review) + 1
        moves = list((review.extra or {}).get("sla_moves", []))
        moves.append({"from": old_tier, "to": timeout.to, "at": now.isoformat()})
        review.extra = {**(review.extra or {}), "sla_round": round_, "sla_moves": moves}
        review.tier = timeout.to
        review.sla_warn_at, review.sla_due_at = sla_times(policy, timeout.to, now)
        # slack_channel/slack_ts keep naming the old card until the repost replaces them: if the repost
        # never succeeds, the old card (still with its buttons) is where humans can act.
        session.add(review)
        card = ReviewCard(review_id=review.id, moved_from=MovedFrom(**moved_from) if moved_from else None)
        enqueue_review_card(session, now=now, card=card, dedupe_key=f"post:{review.id}:r{round_}")
        repo.audit(
            session=session,
            at=now,
            actor="hitl",
            action="sla_timeout_action",
            review_id=review.id,
            action_taken="move_tier",
            from_tier=old_tier,
            to=timeout.to,
            moved_from=moved_from,
            new_due_at=review.sla_due_at.isoformat(),
            **common,
        )
        return True

    def _thread(self, session: Session, review: Review, step: Step, text: str, now: datetime) -> None:
        """A reply in the card's thread, bound to the card at delivery (`in_review_thread`): the card's post
        is queued earlier under the same order key, so it is out by then even if it was not at claim time."""
        tier = self.runtime.policy.tiers.get(review.tier)
        post = SlackPost(
            channel=review.slack_channel or (tier.channel if tier else ""),
            text=text,
            review_id=review.id,
            in_review_thread=True,
            thread_ts=review.slack_ts,
        )
        enqueue_slack_post(
            session,
            now=now,
            post=post,
            order_key=review_order(review.id),
            dedupe_key=f"sla:{review.id}:{step.kind}:thread",
        )

    def _refresh(self, session: Session, review: Review, step: Step, now: datetime) -> None:
        enqueue_refresh_card(
            session,
            now=now,
            refresh=RefreshCard(review_id=review.id),
            dedupe_key=f"sla:{review.id}:{step.kind}:refresh",
        )


def install(runtime: Runtime) -> None:
    """Add the SLA engine as `runtime.services.sla`; its jobs run on the shared scheduler."""
    if runtime.services.sla is not None:
        return
    engine = SlaEngine(runtime)
    runtime.services.sla = engine
    if runtime.services.scheduler is not None:  # HITL_SCHEDULER=false: another replica keeps the time
        runtime.add_worker("sla", engine.start, engine.stop)
