"""The weekly oversight digest: the oversight review posted to the managers' channel.

A cron job on the shared scheduler (policy `oversight.digest_cron`, UTC). Each replica's job fires,
but only the one that inserts `SchedulerState("digest:<ISO week>")` queues the post, in the same
transaction as the outbox row: once per week however many replicas run. A service started after
this week's time (within a day) catches up the digest it missed while down.

The post is the oversight review as `/hitl review` shows it (`render_review_blocks`): the verdict counts
first, the types to act on with their Accept buttons, the kept types folded into one line.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import IntegrityError

from bot.app.runtime import Runtime
from bot.outbox.kinds import SlackPost, enqueue_slack_post
from bot.reporting.oversight.review import build_review
from bot.slack.blocks.reports import render_review_blocks
from storage import repo
from storage.db import session_scope
from storage.models import SchedulerState

log = logging.getLogger("hitl.digest")

JOB_ID = "oversight_digest"
CATCH_UP = timedelta(days=1)
TITLE = "Weekly oversight digest"


def install(runtime: Runtime) -> None:
    """Schedule the weekly digest on the shared scheduler (after `bot.app.scheduling`)."""
    scheduler = runtime.services.scheduler
    if scheduler is None:
        return
    trigger = CronTrigger.from_crontab(runtime.policy.oversight.digest_cron, timezone="UTC")
    scheduler.add_job(
        run_weekly_digest,
        trigger,
        args=[runtime],
        id=JOB_ID,
        name="weekly oversight digest",
        replace_existing=True,
    )
    # On its own thread: building the review must not hold up the service's start.
    runtime.add_worker(
        "digest-catch-up",
        lambda: threading.Thread(
            target=catch_up, args=(runtime,), name="hitl-digest-catch-up", daemon=True
        ).start(),
        lambda: None,
    )


def week_key(when: datetime) -> str:
    """`digest:2026-W47`: the claim of one ISO week's digest."""
    year, week, _ = when.isocalendar()
    return f"digest:{year}-W{week:02d}"


def scheduled_this_week(now: datetime, cron: str) -> datetime | None:
    """When the digest was due in `now`'s ISO week, if that time has passed."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    due = CronTrigger.from_crontab(cron, timezone="UTC").get_next_fire_time(None, monday)
    return due if due is not None and due <= now else None


def catch_up(runtime: Runtime) -> None:
    """At start-up: post this week's digest if its time passed less than a day ago and nobody sent it."""
    now = runtime.clock.now()
    due = scheduled_this_week(now, runtime.policy.oversight.digest_cron)
    if due is None or now - due > CATCH_UP or not runtime.settings.managers_channel:
        return
    try:
        post_digest(runtime, now=now, claim=week_key(now))
    except Exception:  # start-up must not fail on a digest; the next week's job tries again
        log.exception("digest catch-up failed")


def run_weekly_digest(runtime: Runtime) -> None:
    """The cron job: claim this week, then queue the digest."""
    now = runtime.clock.now()
    if not runtime.settings.managers_channel:
        log.warning("weekly digest skipped: HITL_MANAGERS_CHANNEL is not set")
        return
    post_digest(runtime, now=now, claim=week_key(now))


def already_claimed(runtime: Runtime, key: str) -> bool:
    with session_scope(runtime.engine, readonly=True) as session:
        return session.get(SchedulerState, key) is not None


def post_digest(
    runtime: Runtime,
    *,
    now: datetime,
    claim: str | None = None,
    channel: str | None = None,
    actor: str = "hitl",
) -> bool:
    """Queue the oversight review as a `slack_post` to the managers' channel; False when `claim` was taken."""
    channel = channel or runtime.settings.managers_channel
    if not channel:
        raise ValueError("no managers' channel: set HITL_MANAGERS_CHANNEL")
    if claim and already_claimed(runtime, claim):
        return False
    period = runtime.policy.oversight.digest_period
    # Build outside the write transaction: SQLite takes its write lock at BEGIN.
    with session_scope(runtime.engine, readonly=True) as session:
        review = build_review(session=session, policy=runtime.policy, now=now, period=period, cached=True)
    text, blocks = render_review_blocks(review, title=TITLE)
    try:
        with session_scope(runtime.engine) as session:
            if claim:
                session.add(
                    SchedulerState(
                        key=claim, value={"by": runtime.instance_id, "channel": channel}, updated_at=now
                    )
                )
                session.flush()  # the unique key: a second replica fails here and posts nothing
            post = SlackPost(channel=channel, text=text, blocks=[b.to_dict() for b in blocks])
            enqueue_slack_post(session, now=now, post=post, order_key="ops", dedupe_key=claim)
            repo.audit(
                session=session,
                at=now,
                actor=actor,
                action="digest_queued",
                channel=channel,
                claim=claim,
                since=review.since.isoformat(),
                until=review.until.isoformat(),
                recommendations={r.interaction_type: r.verdict for r in review.recommendations},
                warnings=len(review.warnings),
            )
    except IntegrityError:
        log.info("digest %s already claimed by another replica", claim)
        return False
    outbox = runtime.services.outbox
    if outbox is not None:
        outbox.wake()
    return True
