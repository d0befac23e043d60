"""Slack delivery: the outbox kinds that post, update and re-render review cards, and the shared WebClient.

`install(runtime)` puts the WebClient at `runtime.services.slack` (it waits out short 429s), the
user-group directory at `runtime.services.people`, and Slack's shared budget at
`runtime.services.slack_gate`. Outbox deliveries use a second client that neither sleeps on 429 nor
repeats a request on its own: `bot.slack.webapi.call` paces each call to Slack's limits and maps the
answers, so a row held back by pacing or Retry-After waits (no attempt counted) while the others go on.

Exactly one card per review: a card carries message metadata (`hitl_review`, review id), and a post
whose answer was lost is looked for in the channel's history before it is posted again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.web import SlackResponse
from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from bot.app.runtime import Runtime
from bot.outbox.kinds import (
    OutboxKind,
    RefreshCard,
    ReviewCard,
    SlackDm,
    SlackEphemeral,
    SlackPost,
    SlackUpdate,
    enqueue_refresh_card,
)
from bot.outbox.registry import KindPolicy, Permanent
from bot.outbox.worker import set_in_doubt
from bot.review.people import PeopleDirectory
from bot.sla import messages as sla_messages
from bot.slack.blocks.card import moved_message, review_message
from bot.slack.client import make_web_client
from bot.slack.dedupe import first_delivery, prune
from bot.slack.pacing import SlackPacer
from bot.slack.webapi import (
    PERMANENT_ERRORS as PERMANENT_ERRORS,
)
from bot.slack.webapi import (
    NoAnswer,
    call,
    channel_id,
    find_card,
    learn_channel,
    review_metadata,
)
from storage import repo
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus, Review, ReviewStatus, SchedulerState

__all__ = ["PERMANENT_ERRORS", "call", "install", "installation_changed"]

log = logging.getLogger("hitl.slack")

# A card in doubt is looked for in messages from a little before the unanswered try (clock skew).
DOUBT_MARGIN = 120.0


def slack_kind(runtime: Runtime, *, max_delay: float = 120.0) -> KindPolicy:
    """Slack writes: attempts count real failures only; give up after HITL_SLACK_GIVE_UP_HOURS of them."""
    return KindPolicy(
        max_attempts=1_000_000,
        max_age=None,
        give_up_after=timedelta(hours=runtime.settings.slack_give_up_hours),
        initial_delay=1.0,
        max_delay=max_delay,
    )


EPHEMERAL_KIND = KindPolicy(
    max_attempts=20, max_age=timedelta(minutes=10), initial_delay=0.5, max_delay=30.0, announce_dead=False
)


def install(runtime: Runtime) -> None:
    """Create the Slack clients and directory, and register the Slack outbox kinds."""
    services = runtime.services
    if services.slack is None:
        services.slack = make_web_client(runtime.settings)
        services.slack_outbox = make_web_client(runtime.settings, rate_limit_retries=0, connection_retries=0)
        services.slack_gate = SlackPacer(runtime.engine)
        services.people = PeopleDirectory(services.slack)
    kinds, policy = services.kinds, slack_kind(runtime)
    kinds.register(OutboxKind.SLACK_POST, deliver_post, policy)
    kinds.register(OutboxKind.SLACK_UPDATE, deliver_update, policy)
    kinds.register(OutboxKind.SLACK_EPHEMERAL, deliver_ephemeral, EPHEMERAL_KIND)
    kinds.register(OutboxKind.SLACK_DM, deliver_dm, policy)
    kinds.register(OutboxKind.SLACK_POST_REVIEW, deliver_review, policy)
    kinds.register(OutboxKind.SLACK_REFRESH_REVIEW, deliver_refresh, policy)
    scheduler = runtime.services.scheduler
    if scheduler is not None:
        scheduler.add_job(
            prune_processed_events,
            "interval",
            hours=1,
            args=[runtime],
            id="slack_prune_processed_events",
            replace_existing=True,
        )


def installation_changed(runtime: Runtime, body: dict[str, Any]) -> None:
    """Record an app_uninstalled / tokens_revoked event once (by event_id), loudly."""
    event = body.get("event") or {}
    now = runtime.clock.now()
    if not first_delivery(engine=runtime.engine, key=f"event:{body.get('event_id')}", now=now):
        return
    log.error(
        "Slack says %s for team %s: Slack deliveries will fail until the app is reinstalled",
        event.get("type"),
        body.get("team_id"),
    )
    with session_scope(runtime.engine) as session:
        session.merge(
            SchedulerState(
                key="slack_installation",
                updated_at=now,
                value={
                    "state": event.get("type"),
                    "team_id": body.get("team_id"),
                    "event_id": body.get("event_id"),
                    "tokens": event.get("tokens"),
                },
            )
        )
        repo.audit(
            session=session,
            at=now,
            actor="slack",
            action=str(event.get("type")),
            team_id=body.get("team_id"),
            event_id=body.get("event_id"),
        )


def prune_processed_events(runtime: Runtime) -> None:
    """Forget Slack delivery keys older than a day (Slack retries for minutes only)."""
    prune(engine=runtime.engine, before=runtime.clock.now() - timedelta(days=1))


# ---------------------------------------------------------------- helpers


def _review(runtime: Runtime, review_id: str) -> Review:
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
    if review is None:
        raise Permanent(f"review {review_id} is not in the store")
    return review


def _superseded(runtime: Runtime, item: OutboxItem, same: Callable[[dict[str, Any]], bool]) -> int | None:
    """The id of a newer row of the same kind and order key still waiting that makes `item` moot."""
    with session_scope(runtime.engine, readonly=True) as session:
        newer = session.execute(
            select(col(OutboxItem.id), col(OutboxItem.payload))
            .where(
                col(OutboxItem.order_key) == item.order_key,
                col(OutboxItem.kind) == item.kind,
                col(OutboxItem.status) == OutboxStatus.PENDING,
                col(OutboxItem.id) > (item.id or 0),
            )
            .order_by(col(OutboxItem.id).desc())
        ).all()
    return next((int(row_id) for row_id, payload in newer if same(payload)), None)


def _post_answered(runtime: Runtime, channel: str, resp: SlackResponse) -> tuple[str, str]:
    """(channel id, ts) of a post, learning the id of a channel posted to by name."""
    learn_channel(runtime, channel, str(resp["channel"]))
    return str(resp["channel"]), str(resp["ts"])


# ---------------------------------------------------------------- outbox kinds


def deliver_post(runtime: Runtime, item: OutboxItem, p: SlackPost) -> dict[str, Any]:
    """`slack_post`: a message or thread reply (`in_review_thread` replies under the review's card)."""
    channel, thread_ts = p.channel, p.thread_ts
    if p.in_review_thread:
        review = _review(runtime, p.review_id or "")
        if not review.slack_ts:
            raise Permanent(f"review {review.id} has no Slack card to reply under")
        channel, thread_ts = review.slack_channel, review.slack_ts
    if not channel:
        raise Permanent("slack_post names no channel")
    resp = call(
        runtime,
        "chat_postMessage",
        gate_channel=channel,
        channel=channel,
        text=p.text,
        blocks=p.blocks,
        thread_ts=thread_ts,
        unfurl_links=False,
        unfurl_media=False,
    )
    posted, ts = _post_answered(runtime, channel, resp)
    return {"channel": posted, "ts": ts}


def deliver_update(runtime: Runtime, item: OutboxItem, p: SlackUpdate) -> dict[str, Any]:
    """`slack_update`: replace a message's text and blocks (unless a newer update of it is waiting)."""
    newer = _superseded(runtime, item, lambda q: (q.get("channel"), q.get("ts")) == (p.channel, p.ts))
    if newer is not None:
        return {"skipped": f"superseded by outbox #{newer}", "channel": p.channel, "ts": p.ts}
    call(runtime, "chat_update", channel=p.channel, ts=p.ts, text=p.text, blocks=p.blocks)
    return {"channel": p.channel, "ts": p.ts}


def deliver_ephemeral(runtime: Runtime, item: OutboxItem, p: SlackEphemeral) -> dict[str, Any]:
    """`slack_ephemeral`: a message only `user` sees."""
    resp = call(runtime, "chat_postEphemeral", channel=p.channel, user=p.user, text=p.text, blocks=p.blocks)
    return {"message_ts": resp.get("message_ts")}


def deliver_dm(runtime: Runtime, item: OutboxItem, p: SlackDm) -> dict[str, Any]:
    """`slack_dm`: open (or reuse) the DM with `user` and post in it."""
    channel = call(runtime, "conversations_open", users=p.user)["channel"]["id"]
    resp = call(
        runtime,
        "chat_postMessage",
        gate_channel=channel,
        channel=channel,
        text=p.text,
        blocks=p.blocks,
        unfurl_links=False,
    )
    return {"channel": resp["channel"], "ts": resp["ts"]}


def deliver_review(runtime: Runtime, item: OutboxItem, p: ReviewCard) -> dict[str, Any]:
    """`slack_post_review`: post the card to its tier's channel once, and mark a moved card's old message."""
    review = _review(runtime, p.review_id)
    moved = p.moved_from
    tier = runtime.policy.tiers.get(review.tier)
    if tier is None:
        raise Permanent(f"review {review.id} names tier {review.tier!r}, which the policy does not have")
    still_old = moved is not None and review.slack_ts == moved.ts
    if review.slack_ts and review.slack_channel and not still_old:
        channel, ts = review.slack_channel, review.slack_ts
    else:
        channel, ts = _post_card_once(
            runtime, item, review, tier.channel, skip_ts=moved.ts if moved else None
        )
        _store_card(runtime, review, channel=channel, ts=ts, previous_ts=review.slack_ts)
    if moved:
        text, blocks = moved_message(review, channel)
        call(runtime, "chat_update", channel=moved.channel, ts=moved.ts, text=text, blocks=blocks)
    return {"channel": channel, "ts": ts}


def _post_card_once(
    runtime: Runtime, item: OutboxItem, review: Review, channel: str, *, skip_ts: str | None
) -> tuple[str, str]:
    """Post the card with its metadata; if an earlier try went unanswered, adopt the card it left instead."""
    target = channel_id(runtime, channel)
    pacer = runtime.services.slack_gate
    wall = pacer.wall if pacer is not None else time.time
    if item.in_doubt_at is not None:
        oldest = item.in_doubt_at.timestamp() - DOUBT_MARGIN
        found = find_card(runtime, target, review.id, oldest=oldest)
        if found is not None and found != skip_ts:
            log.info("review %s: adopting card %s left by an unanswered post", review.id, found)
            return target, found
    # Slack's time, not the business clock: the history lookup above compares it with message ts.
    set_in_doubt(runtime=runtime, row=item, at=datetime.fromtimestamp(wall(), UTC))
    text, blocks = review_message(review, runtime.policy, runtime.clock.now(), settings=runtime.settings)
    try:
        resp = call(
            runtime,
            "chat_postMessage",
            gate_channel=target,
            channel=target,
            text=text,
            blocks=blocks,
            metadata=review_metadata(review.id),
            unfurl_links=False,
            unfurl_media=False,
        )
    except NoAnswer:
        raise  # stays in doubt: the next try looks in the channel first
    except Exception:
        set_in_doubt(runtime=runtime, row=item, at=None)  # Slack answered (or was never called): not posted
        raise
    return _post_answered(runtime, channel, resp)


def _store_card(runtime: Runtime, review: Review, *, channel: str, ts: str, previous_ts: str | None) -> None:
    now = runtime.clock.now()
    with session_scope(runtime.engine) as session:
        session.execute(
            update(Review)
            .where(
                col(Review.id) == review.id,
                or_(col(Review.slack_ts).is_(None), col(Review.slack_ts) == previous_ts),
            )
            .values(slack_channel=channel, slack_ts=ts)
            .execution_options(synchronize_session=False)
        )
        repo.audit(
            session=session,
            at=now,
            actor="hitl",
            action="slack_posted",
            review_id=review.id,
            channel=channel,
            ts=ts,
            tier=review.tier,
            moved_from_ts=previous_ts,
        )


def deliver_refresh(runtime: Runtime, item: OutboxItem, p: RefreshCard) -> dict[str, Any]:
    """`slack_refresh_review`: re-render the card from the store (state, SLA countdown, decision)."""
    newer = _superseded(runtime, item, lambda q: q.get("review_id") == p.review_id)
    if newer is not None:
        return {"skipped": f"superseded by outbox #{newer}"}
    review = _review(runtime, p.review_id)
    sla_messages.update_review_messages(runtime, review)  # decided: its SLA pings and DMs say who handled it
    if not review.slack_ts or not review.slack_channel:
        return {"skipped": "not posted yet; the post renders the current state"}
    text, blocks = review_message(review, runtime.policy, runtime.clock.now(), settings=runtime.settings)
    try:
        call(
            runtime, "chat_update", channel=review.slack_channel, ts=review.slack_ts, text=text, blocks=blocks
        )
    except Permanent as exc:
        if review.status == ReviewStatus.PENDING or not str(exc).endswith("message_not_found"):
            raise  # a pending review whose card is gone cannot be decided in Slack: dead-letter it loudly
        log.warning("review %s: its decided card is no longer in Slack; nothing to refresh", review.id)
        return {"skipped": "the decided card is no longer in Slack (message_not_found)"}
    return {"channel": review.slack_channel, "ts": review.slack_ts}


def refresh_card(session: Session, *, review: Review, now: datetime) -> None:
    """Queue a re-render of the review's card in the caller's transaction (e.g. its delivery state changed).

    A review without a card (auto-sent) has nothing to refresh. Refreshes of one card are superseded by the
    newest waiting one (`deliver_refresh`), so several state changes in a row cost one `chat.update`."""
    if review.slack_ts:
        enqueue_refresh_card(session, now=now, refresh=RefreshCard(review_id=review.id))
