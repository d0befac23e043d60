"""SLA pings people act from: delivered from the store, recorded, snoozed in place, edited once handled.

The engine queues one `slack_sla_ping` row per ping (the card's thread, an escalation channel, a DM);
`deliver_ping` renders it at delivery (bot.slack.blocks.sla: state, customer, buttons, the card's
permalink), posts it through the paced Web API call, and records the message in `review_messages`, so
its buttons act on the review (`check_click` accepts a click from any recorded message). Once the
review is decided, the card refresh calls `update_review_messages`, which queues one in-place edit per
recorded ping: who handled it and how, buttons gone. Snooze (`snooze_level`) postpones the next step
of one escalation level once, audited, and says so in the message it was pressed in.

The card's permalink is built from the workspace URL (bot.slack.permalinks: auth.test's `url`, stored
once) when the card's channel is an id; for a channel known only by name chat.getPermalink is asked
(Tier 4, paced).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.outbox.kinds import OutboxKind, SlaPingMessage, enqueue_sla_ping
from bot.outbox.registry import KindPolicy, Permanent, Retry
from bot.review.decisions import (
    AlreadyDecided,
    Click,
    NotAllowed,
    checked_review,
    people,
)
from bot.review.people import MembershipUnknown
from bot.sla.plan import Snooze, later_in_level, next_in_level, sla_round, snooze_key, snoozes
from bot.slack.blocks.sla import PingView, sla_ping_message
from bot.slack.blocks.text import slack_date
from bot.slack.dedupe import first_delivery
from bot.slack.permalinks import message_permalink, workspace_url
from bot.slack.webapi import CHANNEL_ID, call
from storage import repo
from storage.db import session_scope
from storage.models import (
    OutboxItem,
    OutboxStatus,
    Review,
    ReviewMessage,
    ReviewStatus,
    SlaPing,
)

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.sla")

PING_KINDS = ("sla_warning", "sla_breach", "sla_dm")


def install(runtime: Runtime) -> None:
    """Register the `slack_sla_ping` kind (Slack's budget: attempts count real failures only)."""
    policy = KindPolicy(
        max_attempts=1_000_000,
        max_age=None,
        give_up_after=timedelta(hours=runtime.settings.slack_give_up_hours),
        initial_delay=1.0,
        max_delay=120.0,
    )
    runtime.services.kinds.register(OutboxKind.SLACK_SLA_PING, deliver_ping, policy)


# ---------------------------------------------------------------- permalinks


def permalink(runtime: Runtime, channel: str | None, ts: str | None) -> str | None:
    """A link to a message, built without a call when its channel is an id; None when Slack will not say."""
    if not channel or not ts:
        return None
    # A channel id and the stored workspace URL make the link without a call (bot.slack.permalinks).
    built = message_permalink(workspace_url(runtime), channel, ts) if CHANNEL_ID.fullmatch(channel) else None
    if built:
        return built
    try:
        link = call(runtime, "chat_getPermalink", channel=channel, message_ts=ts).get("permalink")
    except (Retry, Permanent) as exc:
        log.info("no permalink for %s/%s (%s)", channel, ts, exc)
        return None
    return str(link) if link else None


def card_permalink(runtime: Runtime, review: Review) -> str | None:
    """The link to the review's card, once it is posted."""
    return permalink(runtime, review.slack_channel, review.slack_ts)


# ---------------------------------------------------------------- delivery


def _review(runtime: Runtime, review_id: str) -> Review:
    with session_scope(runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
    if review is None:
        raise Permanent(f"review {review_id} is not in the store")
    return review


def record_kind(p: SlaPingMessage) -> str:
    """The review_messages kind of a ping."""
    if p.place == "dm":
        return "sla_dm"
    return "sla_warning" if p.level == 0 else "sla_breach"


def ping_view(runtime: Runtime, review: Review, p: SlaPingMessage, link: str | None) -> PingView:
    """What the builder needs besides the review: the step, where, the permalink, the snooze."""
    round_ = sla_round(review)
    snooze = snoozes(review).get(snooze_key(round_, p.level)) if p.level else None
    later = later_in_level(review, runtime.policy, p.level, p.repeat) if p.level else None
    tier = runtime.policy.tiers.get(review.tier)
    card = review.slack_channel or (tier.channel if tier else "")
    return PingView(
        place=p.place,
        level=p.level,
        repeat=p.repeat,
        round=round_,
        mention=p.mention,
        permalink=link,
        currency=runtime.policy.pings.currency,
        card_channel=card,
        can_snooze=later is not None,
        snoozed_by=snooze.user if snooze else None,
        snoozed_at=snooze.at if snooze else None,
        next_at=later.due_at if later and snooze else None,
        snooze_for=runtime.policy.pings.snooze,
    )


def _target(runtime: Runtime, review: Review, p: SlaPingMessage) -> tuple[str, str | None]:
    """(channel, thread_ts) a new ping goes to; a DM is opened (or reused) here."""
    if p.place == "thread":
        if not review.slack_channel or not review.slack_ts:
            raise Permanent(f"review {review.id} has no Slack card to reply under")
        return review.slack_channel, review.slack_ts
    if p.place == "dm":
        if not p.user:
            raise Permanent("an SLA DM names no user")
        return str(call(runtime, "conversations_open", users=p.user)["channel"]["id"]), None
    if not p.channel:
        raise Permanent("an SLA channel ping names no channel")
    return p.channel, None


def deliver_ping(runtime: Runtime, item: OutboxItem, p: SlaPingMessage) -> dict[str, Any]:
    """`slack_sla_ping`: post a ping (or re-render a posted one in place) and record it for its buttons."""
    review = _review(runtime, p.review_id)
    if p.ts:
        return _rerender(runtime, review, p)
    if review.status != ReviewStatus.PENDING:
        return {"skipped": "decided before the ping went out"}
    channel, thread_ts = _target(runtime, review, p)
    view = ping_view(runtime, review, p, card_permalink(runtime, review))
    text, blocks = sla_ping_message(review, view, runtime.clock.now(), settings=runtime.settings)
    resp = call(
        runtime,
        "chat_postMessage",
        gate_channel=channel,
        channel=channel,
        text=text,
        blocks=[b.to_dict() for b in blocks],
        thread_ts=thread_ts,
        unfurl_links=False,
        unfurl_media=False,
    )
    posted, ts = str(resp["channel"]), str(resp["ts"])
    record_message(runtime, review_id=review.id, kind=record_kind(p), channel=posted, ts=ts)
    return {"channel": posted, "ts": ts, "holder": review.claimed_by or ""}


def _rerender(runtime: Runtime, review: Review, p: SlaPingMessage) -> dict[str, Any]:
    assert p.ts is not None and p.channel is not None
    view = ping_view(runtime, review, p, card_permalink(runtime, review))
    text, blocks = sla_ping_message(review, view, runtime.clock.now(), settings=runtime.settings)
    call(runtime, "chat_update", channel=p.channel, ts=p.ts, text=text, blocks=[b.to_dict() for b in blocks])
    return {"channel": p.channel, "ts": p.ts, "edited": True, "holder": review.claimed_by or ""}


def record_message(runtime: Runtime, *, review_id: str, kind: str, channel: str, ts: str) -> None:
    """Remember a message posted about a review (its buttons then act on it); a second record is a no-op."""
    try:
        with session_scope(runtime.engine) as session:
            session.add(
                ReviewMessage(
                    review_id=review_id, kind=kind, channel=channel, ts=ts, created_at=runtime.clock.now()
                )
            )
    except IntegrityError:
        log.info("review %s: message %s/%s was already recorded", review_id, channel, ts)


# ---------------------------------------------------------------- after a decision


def _place_of(message: ReviewMessage, review: Review) -> str:
    if message.kind == "sla_dm":
        return "dm"
    return "thread" if message.channel == review.slack_channel else "channel"


def update_review_messages(runtime: Runtime, review: Review) -> int:
    """Bring the pings posted about a review in line with it: handled once decided, its holder while pending.

    Called by the card refresh (bot.slack.delivery.deliver_refresh). Once decided, each ping is edited once
    to say who handled it (no buttons); while pending, a ping whose shown holder (Claim / "Claimed by")
    is no longer the review's is re-rendered. Edits are outbox rows, paced like every Slack call; the
    store is only written when there is an edit to queue. Returns how many edits were queued now.
    """
    with session_scope(runtime.engine, readonly=True) as session:
        pending = review.status == ReviewStatus.PENDING
        edits = _holder_edits(session, review) if pending else _handled_edits(session, review)
    if not edits:
        return 0
    now = runtime.clock.now()
    try:
        with session_scope(runtime.engine) as session:
            for key, edit in edits:
                enqueue_sla_ping(session, now=now, ping=edit, dedupe_key=key)
    except IntegrityError:  # another replica's refresh queued them at the same moment
        return 0
    return len(edits)


def _ping_messages(session: Session, review_id: str) -> list[ReviewMessage]:
    q = select(ReviewMessage).where(
        ReviewMessage.review_id == review_id, col(ReviewMessage.kind).in_(PING_KINDS)
    )
    return list(session.exec(q.order_by(col(ReviewMessage.id))))


def _renders(session: Session, review_id: str, channel: str, ts: str) -> list[OutboxItem]:
    """The ping rows that posted or edited `channel`/`ts`, oldest first (a post's result names where it went)."""
    rows = session.exec(
        select(OutboxItem)
        .where(
            OutboxItem.kind == OutboxKind.SLACK_SLA_PING,
            col(OutboxItem.dedupe_key).startswith(f"sla:{review_id}:"),
        )
        .order_by(col(OutboxItem.id))
    )
    return [
        r
        for r in rows
        if ((r.result or {}).get("channel"), (r.result or {}).get("ts")) == (channel, ts)
        or (r.payload.get("channel"), r.payload.get("ts")) == (channel, ts)
    ]


def _holder_edits(session: Session, review: Review) -> list[tuple[str, SlaPingMessage]]:
    """Pending pings that show another holder than the review has now (claimed, unclaimed, reassigned)."""
    edits: list[tuple[str, SlaPingMessage]] = []
    for message in _ping_messages(session, review.id):
        renders = _renders(session, review.id, message.channel, message.ts)
        done = [r for r in renders if r.status == OutboxStatus.DONE]
        if not done or any(r.status == OutboxStatus.PENDING for r in renders):
            continue  # not posted yet, or an edit is on its way (it renders the current state)
        if (done[-1].result or {}).get("holder", "") == (review.claimed_by or ""):
            continue
        spec = SlaPingMessage.model_validate(done[-1].payload)
        edit = spec.model_copy(update={"channel": message.channel, "ts": message.ts})
        edits.append((f"sla:{review.id}:holder:{message.id}:{len(renders)}"[:200], edit))
    return edits


def _handled_edits(session: Session, review: Review) -> list[tuple[str, SlaPingMessage]]:
    """One edit per ping of a decided review, unless it was queued before."""
    messages = _ping_messages(session, review.id)
    keys = {m.id: f"sla:{review.id}:handled:{m.id}"[:200] for m in messages}
    queued = set(
        session.exec(select(OutboxItem.dedupe_key).where(col(OutboxItem.dedupe_key).in_(list(keys.values()))))
    )
    return [
        (
            keys[m.id],
            SlaPingMessage(
                review_id=review.id,
                place=_place_of(m, review),  # type: ignore[arg-type]
                level=0 if m.kind == "sla_warning" else 1,
                channel=m.channel,
                ts=m.ts,
            ),
        )
        for m in messages
        if keys[m.id] not in queued
    ]


# ---------------------------------------------------------------- snooze


class AlreadySnoozed(NotAllowed):
    """A level of this review was snoozed before: once per level."""


@dataclass(frozen=True)
class Snoozed:
    """A snooze that took: the level, until when its next step waits (None: no more pings of it)."""

    review_id: str
    level: int
    next_at: datetime | None


def _may_snooze(runtime: Runtime, review: Review, user_id: str) -> None:
    """Approvers and supervisors of the review's tier may snooze its pings (anyone when it names nobody)."""
    tier = runtime.policy.tiers.get(review.tier)
    if tier is None:
        raise NotAllowed(review.id, f"The policy no longer has tier “{review.tier}”.")
    directory = people(runtime)
    try:
        allowed = directory.includes(tier.approvers, user_id) or (
            not tier.supervisors.anyone and directory.includes(tier.supervisors, user_id)
        )
    except MembershipUnknown as exc:
        raise NotAllowed(
            review.id, f"Your permission could not be checked ({exc}); try again in a minute."
        ) from exc
    if not allowed:
        raise NotAllowed(
            review.id, f"Only approvers or supervisors of tier {review.tier} may snooze its pings."
        )


def _snoozable(runtime: Runtime, review: Review, level: int, round_: int) -> None:
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    if round_ != sla_round(review):
        raise NotAllowed(
            review.id, "This ping is from before the review moved tier: nothing of it is left to snooze."
        )
    if next_in_level(review, runtime.policy, level, claimed_steps(runtime, review.id)) is None:
        raise NotAllowed(
            review.id, f"Level {level} of this review sends no further ping: there is nothing to snooze."
        )


def _refuse_second(review: Review, key: str, level: int) -> None:
    earlier = snoozes(review).get(key)
    if earlier is not None:
        raise AlreadySnoozed(
            review.id,
            f"Level {level} of this review was already snoozed by <@{earlier.user}> {slack_date(earlier.at)}; "
            "each level can be snoozed once.",
        )


def snooze_level(runtime: Runtime, click: Click, *, level: int, round_: int) -> Snoozed | None:
    """Postpone the review's next step of escalation `level` by the policy's snooze, once; None on a redelivery."""
    review = checked_review(runtime, click)
    _may_snooze(runtime, review, click.user_id)
    _snoozable(runtime, review, level, round_)
    now = runtime.clock.now()
    if click.delivery_key and not first_delivery(engine=runtime.engine, key=click.delivery_key, now=now):
        return None
    key = snooze_key(round_, level)
    try:
        with session_scope(runtime.engine) as session:
            snoozed = _snooze_in(session, runtime, click, key=key, level=level, now=now)
    except IntegrityError:  # another replica took this level's snooze between our read and our insert
        _refuse_second(_review(runtime, review.id), key, level)
        raise
    runtime.services.wake_outbox()
    return snoozed


def _claimed_in(session: Session, review_id: str) -> set[str]:
    return set(session.exec(select(SlaPing.kind).where(SlaPing.review_id == review_id)))


def claimed_steps(runtime: Runtime, review_id: str) -> set[str]:
    """The SLA steps of a review already claimed (fired, skipped or snoozed)."""
    with session_scope(runtime.engine, readonly=True) as session:
        return _claimed_in(session, review_id)


def _locked_review(session: Session, review_id: str) -> Review:
    q = select(Review).where(Review.id == review_id)
    if session.get_bind().dialect.name != "sqlite":
        q = q.with_for_update()  # a decision or the engine's claim waits for us, or we see theirs
    review = session.exec(q).first()
    if review is None:
        raise NotAllowed(review_id, "This review is no longer in the store.")
    return review


def _snooze_in(
    session: Session, runtime: Runtime, click: Click, *, key: str, level: int, now: datetime
) -> Snoozed:
    """In one transaction: re-check the review, claim the level's snooze, postpone, audit, edit the ping."""
    review = _locked_review(session, click.review_id)
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    _refuse_second(review, key, level)
    length = runtime.policy.pings.snooze
    prefix = key.split(":")[0]
    session.add(
        SlaPing(
            review_id=review.id,
            kind=f"{prefix}:snooze:L{level}",
            due_at=now + length,
            status="snoozed",
            claimed_by=click.user_id,
            fired_at=now,
        )
    )
    record = {"at": now.isoformat(), "seconds": length.total_seconds(), "user": click.user_id}
    review.extra = {**(review.extra or {}), "sla_snoozes": {**snoozes_raw(review), key: record}}
    session.add(review)
    session.flush()
    later = next_in_level(review, runtime.policy, level, _claimed_in(session, review.id))
    next_at = later.due_at if later is not None else None
    repo.audit(
        session=session,
        at=now,
        actor=click.user_id,
        action="sla_snoozed",
        review_id=review.id,
        level=level,
        sla_round=sla_round(review),
        seconds=length.total_seconds(),
        next_at=next_at.isoformat() if next_at else None,
        channel=click.channel,
        ts=click.message_ts,
    )
    _queue_in_place(session, review, click, now, level)
    return Snoozed(review.id, level, next_at)


def snoozes_raw(review: Review) -> dict[str, Any]:
    """The stored snoozes of a review as they are kept in `extra`."""
    raw = (review.extra or {}).get("sla_snoozes")
    return dict(raw) if isinstance(raw, dict) else {}


def _queue_in_place(session: Session, review: Review, click: Click, now: datetime, level: int) -> None:
    """Re-render the ping the Snooze was pressed in (its step as first posted: headline, mention)."""
    done = [
        r
        for r in _renders(session, review.id, click.channel, click.message_ts)
        if r.status == OutboxStatus.DONE
    ]
    base = (
        SlaPingMessage.model_validate(done[-1].payload)
        if done
        else SlaPingMessage(review_id=review.id, place="channel", level=level)
    )
    edit = base.model_copy(update={"channel": click.channel, "ts": click.message_ts})
    key = f"sla:{review.id}:snoozed:{click.channel}:{click.message_ts}"[:200]
    enqueue_sla_ping(session, now=now, ping=edit, dedupe_key=key)


__all__ = [
    "PING_KINDS",
    "AlreadySnoozed",
    "Snooze",
    "Snoozed",
    "card_permalink",
    "deliver_ping",
    "install",
    "permalink",
    "record_message",
    "snooze_level",
    "update_review_messages",
]
