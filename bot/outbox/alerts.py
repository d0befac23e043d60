"""The dead-letter alert in the ops channel: which review, what the customer misses, Retry and Open card.

`OutboxWorker._dead_lettered` queues one `slack_dead_letter_alert` row per dead letter (same
transaction); `deliver_alert` renders it at delivery from the dead row and its review
(bot.slack.blocks.sla.dead_letter_message), posts it, and records it in `review_messages` (kind
`dead_letter`) when it names a review. Retry (`retry_from_alert`) puts the row back in line exactly as
`hitl outbox retry ID` does (`bot.outbox.worker.requeue`), for the people the policy's
`ops.dead_letter_retry` names (default: every tier's supervisors); it is audited and the alert is
re-rendered to say who retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from bot.outbox.kinds import DeadLetterAlert, OutboxKind, enqueue_dead_letter_alert
from bot.outbox.registry import KindPolicy, Permanent
from bot.outbox.worker import requeue
from bot.review.decisions import ClickRefused, NotAllowed, people
from bot.review.people import MembershipUnknown
from bot.review.policy import People, Policy
from bot.sla.messages import permalink, record_message
from bot.slack.blocks.sla import DeadLetterView, dead_letter_message
from bot.slack.clicks import workspace_team
from bot.slack.webapi import call
from storage import repo
from storage.db import session_scope
from storage.models import DecisionKind, OutboxItem, Review

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.outbox")

ALERT_KIND = "dead_letter"  # review_messages.kind


def install(runtime: Runtime) -> None:
    """Register the alert's kind; a dead alert is logged, never announced again (no loop)."""
    policy = KindPolicy(
        max_attempts=1_000_000,
        max_age=None,
        give_up_after=timedelta(hours=runtime.settings.slack_give_up_hours),
        initial_delay=1.0,
        max_delay=120.0,
        announce_dead=False,
    )
    runtime.services.kinds.register(OutboxKind.SLACK_DEAD_LETTER_ALERT, deliver_alert, policy)


# ---------------------------------------------------------------- what the dead letter means

_HELPDESK_IMPACT = {
    DecisionKind.APPROVE: "the customer has not received the approved reply",
    DecisionKind.EDIT: "the customer has not received the edited reply",
    DecisionKind.AUTO_SEND: "the customer has not received the auto-sent reply",
    DecisionKind.TAKE_OVER: "the ticket was not handed to the person who took it over",
    DecisionKind.REJECT: "the helpdesk was not told the draft was rejected (no reply went out)",
}
_SLACK_IMPACT = {
    OutboxKind.SLACK_POST_REVIEW: "the review card was never posted: nobody can decide on it in Slack",
    OutboxKind.SLACK_REFRESH_REVIEW: "the card does not show the review's latest state",
    OutboxKind.SLACK_SLA_PING: "an SLA ping did not reach the people it was for",
    OutboxKind.SLACK_DM: "a direct message did not reach its reader",
    OutboxKind.SLACK_UPDATE: "a Slack message still shows an old state",
    OutboxKind.SLACK_POST_QA: "the QA card was not posted: the auto-sent reply stays unrated",
    OutboxKind.AI_SUMMARIZE: "the card has no AI summary of the long customer message",
    OutboxKind.DECISION_CALLBACK: "the AI pipeline was not told the outcome of the review",
}


def impact_of(row: OutboxItem, review: Review | None) -> str:
    """What the people involved miss because this write never happened, in one sentence."""
    if row.kind == OutboxKind.HELPDESK_WRITE:
        decision = (review.decision if review else None) or row.payload.get("decision")
        known = _HELPDESK_IMPACT.get(DecisionKind(decision)) if decision in set(DecisionKind) else None
        return known or "the decision was not written to the helpdesk ticket"
    if row.kind in set(OutboxKind):
        return _SLACK_IMPACT.get(OutboxKind(row.kind), "the write did not happen")
    return "the write did not happen"


def _load(runtime: Runtime, outbox_id: int) -> tuple[OutboxItem, Review | None]:
    with session_scope(runtime.engine, readonly=True) as session:
        row = session.get(OutboxItem, outbox_id)
        if row is None:
            raise Permanent(f"outbox #{outbox_id} is not in the store")
        rid = row.payload.get("review_id")
        review = repo.get_review(session=session, review_id=str(rid)) if rid else None
    return row, review


def alert_view(runtime: Runtime, p: DeadLetterAlert) -> DeadLetterView:
    """The alert's content from the store: the dead row, its review, the card's permalink."""
    row, review = _load(runtime, p.outbox_id)
    link = permalink(runtime, review.slack_channel, review.slack_ts) if review else None
    return DeadLetterView(
        outbox_id=p.outbox_id,
        kind=row.kind,
        error=(row.last_error or "no error recorded")[:2000],
        impact=impact_of(row, review),
        review=review,
        permalink=link,
        retried_by=p.retried_by,
        retried_at=p.retried_at,
        currency=runtime.policy.pings.currency,
    )


def deliver_alert(runtime: Runtime, item: OutboxItem, p: DeadLetterAlert) -> dict[str, Any]:
    """`slack_dead_letter_alert`: post the alert (or re-render it in place), recorded when it names a review."""
    view = alert_view(runtime, p)
    text, blocks = dead_letter_message(view, settings=runtime.settings)
    payload = [b.to_dict() for b in blocks]
    if p.ts:
        call(runtime, "chat_update", channel=p.channel, ts=p.ts, text=text, blocks=payload)
        return {"channel": p.channel, "ts": p.ts, "edited": True}
    resp = call(
        runtime, "chat_postMessage", gate_channel=p.channel, channel=p.channel, text=text, blocks=payload
    )
    channel, ts = str(resp["channel"]), str(resp["ts"])
    if view.review is not None:
        record_message(runtime, review_id=view.review.id, kind=ALERT_KIND, channel=channel, ts=ts)
    return {"channel": channel, "ts": ts}


# ---------------------------------------------------------------- Retry


@dataclass(frozen=True)
class RetryClick:
    """A press of Retry on an alert: who, from which workspace and message, for which outbox row."""

    outbox_id: int
    user_id: str
    team_id: str | None
    channel: str
    ts: str


def retriers(policy: Policy) -> People:
    """Who may retry from an alert: `ops.dead_letter_retry`, else the supervisors of every tier."""
    named = policy.ops.dead_letter_retry
    if not named.anyone:
        return named
    groups = sorted({g for t in policy.tiers.values() for g in t.supervisors.usergroups})
    users = sorted({u for t in policy.tiers.values() for u in t.supervisors.users})
    return People(usergroups=groups, users=users)


def _may_retry(runtime: Runtime, user_id: str) -> None:
    allowed = retriers(runtime.policy)
    if allowed.anyone:  # fail closed: nobody named anywhere is nobody, not everybody
        raise NotAllowed(
            None, "Nobody may retry from Slack yet: name them under `ops.dead_letter_retry` in the policy."
        )
    try:
        ok = people(runtime).includes(allowed, user_id)
    except MembershipUnknown as exc:
        raise NotAllowed(
            None, f"Your permission could not be checked ({exc}); try again in a minute."
        ) from exc
    if not ok:
        raise NotAllowed(
            None, f"Only {allowed.mention()} may retry dead letters (policy: `ops.dead_letter_retry`)."
        )


def _alert_row(runtime: Runtime, click: RetryClick) -> OutboxItem | None:
    """The alert row that posted the clicked message about this outbox row, if it is one."""
    with session_scope(runtime.engine, readonly=True) as session:
        rows = session.exec(
            select(OutboxItem).where(
                OutboxItem.kind == OutboxKind.SLACK_DEAD_LETTER_ALERT,
                col(OutboxItem.dedupe_key).startswith(f"dead:{click.outbox_id}:"),
            )
        )
        for row in rows:
            if (row.result or {}).get("ts") == click.ts and (row.result or {}).get(
                "channel"
            ) == click.channel:
                return row
    return None


def _check_click(runtime: Runtime, click: RetryClick) -> None:
    team = workspace_team(runtime)
    if team is None or click.team_id != team:
        raise ClickRefused(None, "This click did not come from this app's Slack workspace.")
    if _alert_row(runtime, click) is None:
        raise ClickRefused(None, "This Retry button does not belong to the alert it was clicked in.")


def retry_from_alert(runtime: Runtime, click: RetryClick) -> int:
    """Put the alert's dead row back in line (as `hitl outbox retry ID`), audited; edit the alert. Returns 1."""
    _check_click(runtime, click)
    _may_retry(runtime, click.user_id)
    count = requeue(runtime=runtime, ids=[click.outbox_id], actor=click.user_id, via="slack")
    if count == 0:
        raise NotAllowed(
            None, f"Outbox #{click.outbox_id} is not dead-lettered any more: it was already put back in line."
        )
    now = runtime.clock.now()
    edit = DeadLetterAlert(
        outbox_id=click.outbox_id,
        channel=click.channel,
        ts=click.ts,
        retried_by=click.user_id,
        retried_at=now,
    )
    with session_scope(runtime.engine) as session:
        enqueue_dead_letter_alert(
            session,
            now=now,
            alert=edit,
            dedupe_key=f"dead-retried:{click.outbox_id}:{click.ts}:{now.timestamp()}",
        )
    runtime.services.wake_outbox()
    return count


__all__ = [
    "ALERT_KIND",
    "RetryClick",
    "deliver_alert",
    "impact_of",
    "install",
    "retriers",
    "retry_from_alert",
]
