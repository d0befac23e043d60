"""Slack delivery: the outbox kinds that post, update and re-render review cards, and the shared WebClient.

`install(runtime)` puts the WebClient at `runtime.services.slack` (it waits out short 429s) and the
user-group directory at `runtime.services.people`. Outbox deliveries use a second client that does not
sleep on 429: the row is retried after Retry-After instead, and a per-channel gate keeps the other rows
for a rate-limited channel from calling Slack until then, so one busy channel never holds up the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import or_, update
from sqlmodel import col

from bot.app.runtime import Runtime
from bot.outbox.kinds import (
    OutboxKind,
    RefreshCard,
    ReviewCard,
    SlackDm,
    SlackEphemeral,
    SlackPost,
    SlackUpdate,
)
from bot.outbox.registry import KindPolicy, Permanent, Retry
from bot.review.people import PeopleDirectory
from bot.slack.blocks.card import moved_message, review_message
from bot.slack.client import make_web_client
from bot.slack.dedupe import first_delivery, prune
from storage import repo
from storage.db import session_scope
from storage.models import OutboxItem, Review, SchedulerState

log = logging.getLogger("hitl.slack")

# Errors retrying cannot fix: dead-letter the row (and announce it in the ops channel).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_not_in_channel",
        "users_list_not_supplied",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "restricted_action",
        "team_access_not_granted",
    }
)
SLACK_KIND = KindPolicy(max_attempts=200, max_age=timedelta(hours=24), initial_delay=1.0, max_delay=120.0)
EPHEMERAL_KIND = KindPolicy(
    max_attempts=20, max_age=timedelta(minutes=10), initial_delay=0.5, max_delay=30.0, announce_dead=False
)


class ChannelGate:
    """Remembers, per channel, until when Slack asked us to wait (shared by this process's deliveries)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_left(self, channel: str) -> float:
        with self._lock:
            return max(0.0, self._until.get(channel, 0.0) - time.monotonic())

    def block(self, channel: str, seconds: float) -> None:
        with self._lock:
            self._until[channel] = max(self._until.get(channel, 0.0), time.monotonic() + seconds)


def install(runtime: Runtime) -> None:
    """Create the Slack clients and directory, and register the Slack outbox kinds."""
    services = runtime.services
    if services.slack is None:
        services.slack = make_web_client(runtime.settings)
        services.slack_outbox = make_web_client(runtime.settings, rate_limit_retries=0)
        services.slack_gate = ChannelGate()
        services.people = PeopleDirectory(services.slack)
    kinds = services.kinds
    kinds.register(OutboxKind.SLACK_POST, deliver_post, SLACK_KIND)
    kinds.register(OutboxKind.SLACK_UPDATE, deliver_update, SLACK_KIND)
    kinds.register(OutboxKind.SLACK_EPHEMERAL, deliver_ephemeral, EPHEMERAL_KIND)
    kinds.register(OutboxKind.SLACK_DM, deliver_dm, SLACK_KIND)
    kinds.register(OutboxKind.SLACK_POST_REVIEW, deliver_review, SLACK_KIND)
    kinds.register(OutboxKind.SLACK_REFRESH_REVIEW, deliver_refresh, SLACK_KIND)
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


# ---------------------------------------------------------------- calling Slack


def _header(response: SlackResponse, name: str) -> str | None:
    for key, value in (response.headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def call(runtime: Runtime, method: str, *, gate_channel: str | None = None, **kwargs: Any) -> SlackResponse:
    """One Web API call for the outbox, with Slack's answers mapped to Retry / Permanent."""
    gate, client = runtime.services.slack_gate, runtime.services.slack_outbox
    if gate is None or client is None:
        raise Retry(f"{method}: the Slack client is not installed in this process")
    if gate_channel:
        left = gate.wait_left(gate_channel)
        if left > 0:
            raise Retry(f"{method}: {gate_channel} is rate limited for {left:.1f}s more", retry_after=left)
    try:
        return getattr(client, method)(**kwargs)  # type: ignore[no-any-return]
    except SlackApiError as exc:
        status, error = exc.response.status_code, str(exc.response.get("error") or "")
        if status == 429 or error == "ratelimited":
            wait = float(_header(exc.response, "retry-after") or 1)
            if gate_channel:
                gate.block(gate_channel, wait)
            raise Retry(f"{method}: rate limited (Retry-After {wait:g}s)", retry_after=wait) from exc
        if status < 500 and error in PERMANENT_ERRORS:
            raise Permanent(f"{method}: {error}") from exc
        raise Retry(f"{method}: HTTP {status} {error}") from exc
    except OSError as exc:  # connection refused, reset, timeout
        raise Retry(f"{method}: {type(exc).__name__}: {exc}") from exc


def _review(runtime: Runtime, review_id: str) -> Review:
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
    if review is None:
        raise Permanent(f"review {review_id} is not in the store")
    return review


# ---------------------------------------------------------------- outbox kinds


def deliver_post(runtime: Runtime, item: OutboxItem, p: SlackPost) -> dict[str, Any]:
    """`slack_post`: a message or thread reply (`in_review_thread` replies under the review's card)."""
    channel, thread_ts = p.channel, p.thread_ts
    if p.in_review_thread:
        review = _review(runtime, p.review_id or "")
        if not review.slack_ts:
            raise Permanent(f"review {review.id} has no Slack card to reply under")
        channel, thread_ts = review.slack_channel, review.slack_ts
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
    return {"channel": resp["channel"], "ts": resp["ts"]}


def deliver_update(runtime: Runtime, item: OutboxItem, p: SlackUpdate) -> dict[str, Any]:
    """`slack_update`: replace a message's text and blocks."""
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
        text, blocks = review_message(review, runtime.policy, runtime.clock.now(), settings=runtime.settings)
        resp = call(
            runtime,
            "chat_postMessage",
            gate_channel=tier.channel,
            channel=tier.channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        channel, ts = resp["channel"], resp["ts"]
        _store_card(runtime, review, channel=channel, ts=ts, previous_ts=review.slack_ts)
    if moved:
        text, blocks = moved_message(review, channel)
        call(runtime, "chat_update", channel=moved.channel, ts=moved.ts, text=text, blocks=blocks)
    return {"channel": channel, "ts": ts}


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
    review = _review(runtime, p.review_id)
    if not review.slack_ts or not review.slack_channel:
        return {"skipped": "not posted yet; the post renders the current state"}
    text, blocks = review_message(review, runtime.policy, runtime.clock.now(), settings=runtime.settings)
    call(runtime, "chat_update", channel=review.slack_channel, ts=review.slack_ts, text=text, blocks=blocks)
    return {"channel": review.slack_channel, "ts": review.slack_ts}
