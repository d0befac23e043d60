"""Calibration sessions as a service: `/hitl calibrate` (start, report), votes from the cards, delivery.

Who may run and close a session: the policy's `managers` (open to anyone when it names nobody, like the
reports) and every tier's named `supervisors`. Who may vote on a review: anyone who may decide reviews
of its tier (its approvers or supervisors), and the managers. Slack posts go through the outbox
(`slack_calibration`, one order key per session): the intro first, which picks the channel (the one the
command was run in, or the runner's DM when the app may not post there), then one card per review.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot.app.runtime import Runtime
from bot.outbox.kinds import CalibrationMessage, OutboxKind, enqueue_calibration
from bot.outbox.registry import Permanent
from bot.outbox.worker import set_in_doubt
from bot.qa import calibration_store as store
from bot.qa.calibration import Verdict
from bot.review.decisions import ClickRefused, DecisionError, NotAllowed, tell
from bot.review.people import MembershipUnknown
from bot.review.policy import People
from bot.slack.blocks.calibration import (
    CardView,
    ReportView,
    card_blocks,
    card_text,
    intro_blocks,
    intro_text,
    label,
    report_blocks,
    report_text,
)
from bot.slack.clicks import workspace_team
from bot.slack.dedupe import record_delivery
from bot.slack.delivery import call, slack_kind
from bot.slack.webapi import NoAnswer, find_by_metadata
from storage import repo
from storage.db import session_scope
from storage.models import CalibrationSession, OutboxItem, Review

log = logging.getLogger("hitl.qa.calibration")

USAGE = (
    "`/hitl calibrate [type] [n]` shows n past decided reviews (default 10, at most 25) with the decision hidden; "
    "`/hitl calibrate report [session]` closes a session and posts the agreement."
)
_NUMBER = re.compile(r"^[+-]?\d+$")
_TYPE = re.compile(r"^[a-z0-9_.-]{1,64}$")
# Where Slack will not let the app post: the cards go to the runner's DM instead.
CARD_EVENT = "hitl_calibration_card"  # the metadata a card carries, to find it again after a lost answer
NOT_HERE = frozenset({"not_in_channel", "channel_not_found", "is_archived", "channel_is_archived"})


class CalibrationClosed(DecisionError):
    """A vote on a closed session."""


def closed_text(session_id: int) -> str:
    return f"Calibration session #{session_id} is closed; votes are no longer taken."


# ---------------------------------------------------------------- the words


@dataclass(frozen=True)
class CalibrateArgs:
    """`/hitl calibrate [type] [n]` or `/hitl calibrate report [session]`."""

    report: bool = False
    interaction_type: str | None = None
    n: int = store.DEFAULT_N
    session_id: int | None = None


def parse_calibrate(words: list[str]) -> CalibrateArgs:
    """The words after `calibrate`; ValueError saying which word does not fit, and how to write it."""
    if words and words[0] == "report":
        return _parse_report(words[1:])
    itype: str | None = None
    n: int | None = None
    for word in words:
        itype, n = _take(word, itype, n)
    return CalibrateArgs(interaction_type=itype, n=n or store.DEFAULT_N)


def _take(word: str, itype: str | None, n: int | None) -> tuple[str | None, int | None]:
    """A type first (optional), then the number of reviews; ValueError for anything else."""
    if _NUMBER.match(word) and n is None:
        return itype, _count(word)
    if _TYPE.match(word) and itype is None and n is None and not word[0].isdigit():
        return word, n
    raise ValueError(f"`/hitl calibrate` does not take `{_word(word)}`. {USAGE}")


def _count(word: str) -> int:
    n = int(word)
    if not 1 <= n <= store.MAX_N:
        raise ValueError(f"The number of reviews must be 1 to {store.MAX_N}, not {_word(word)}. {USAGE}")
    return n


def _parse_report(words: list[str]) -> CalibrateArgs:
    if not words:
        return CalibrateArgs(report=True)
    ref = words[0].lstrip("#")
    if len(words) > 1 or not ref.isdigit() or int(ref) < 1:
        raise ValueError(f"`/hitl calibrate report` takes a session number, like `report 3`. {USAGE}")
    return CalibrateArgs(report=True, session_id=int(ref))


def _word(word: str) -> str:
    return word[:40].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


# ---------------------------------------------------------------- who may


def _includes(runtime: Runtime, people: People, user_id: str) -> bool:
    """Is the user in `people`? MembershipUnknown when a user group cannot be read (callers fail closed)."""
    if people.anyone or user_id in people.users:
        return True
    directory = runtime.services.people
    if directory is None:
        if people.usergroups:
            raise MembershipUnknown("the Slack directory is not set up")
        return False
    return directory.includes(people, user_id)


def _supervises_a_tier(runtime: Runtime, user_id: str) -> bool:
    return any(
        not tier.supervisors.anyone and _includes(runtime, tier.supervisors, user_id)
        for tier in runtime.policy.tiers.values()
    )


def run_refusal(
    runtime: Runtime, *, user_id: str, channel: str | None, text: str, now: datetime
) -> str | None:
    """None when the user may run and close sessions; otherwise what to tell them (audited)."""
    try:
        if _includes(runtime, runtime.policy.managers, user_id) or _supervises_a_tier(runtime, user_id):
            return None
        why = "not_a_manager_or_supervisor"
        answer = (
            ":lock: `/hitl calibrate` is for managers (policy: `managers`) and tier supervisors "
            "(`tiers.<tier>.supervisors`). Ask one of them to run a session; anyone who reviews that type may vote."
        )
    except MembershipUnknown:
        why = "membership_unknown"
        answer = ":lock: Your permission could not be checked with Slack just now; try again in a minute."
    with session_scope(runtime.engine) as session:
        repo.audit(
            session=session,
            at=now,
            actor=user_id,
            action="report_refused",
            command=f"/hitl {text.strip()[:200]}".strip(),
            channel=channel,
            reason=why,
        )
    return answer


def check_voter(runtime: Runtime, review: Review, user_id: str) -> None:
    """NotAllowed unless the user may decide reviews of this review's tier, or is a named manager."""
    policy = runtime.policy
    tier = policy.tiers.get(review.tier)
    groups = [] if policy.managers.anyone else [policy.managers]
    if tier is not None:
        groups += [tier.approvers] + ([] if tier.supervisors.anyone else [tier.supervisors])
    unknown: MembershipUnknown | None = None
    for people in groups:  # one group Slack cannot list does not hide the others
        try:
            if _includes(runtime, people, user_id):
                return
        except MembershipUnknown as exc:
            unknown = exc
    if unknown is not None:
        raise NotAllowed(
            review.id, f"Your permission could not be checked ({unknown}); try again in a minute."
        )
    who = tier.approvers.mention() if tier is not None else ""
    raise NotAllowed(
        review.id,
        f"Only people who may decide {review.tier} reviews ({who or 'nobody named'}) and managers vote in "
        "calibration.",
    )


# ---------------------------------------------------------------- start and report


def answer(runtime: Runtime, args: CalibrateArgs, *, user_id: str, channel: str, now: datetime) -> str:
    """Run one `/hitl calibrate ...` (the asker may: see `run_refusal`); the text to show them."""
    try:
        if args.report:
            return report(runtime, args.session_id, user_id=user_id, channel=channel, now=now)
        return start(runtime, args, user_id=user_id, channel=channel, now=now)
    except store.CalibrationProblem as exc:
        return f":information_source: {exc}"


def start(runtime: Runtime, args: CalibrateArgs, *, user_id: str, channel: str, now: datetime) -> str:
    """Create a session and queue its intro and cards."""
    itype = args.interaction_type
    known = [*runtime.policy.interaction_types, *runtime.policy.human_only]
    if itype is not None and itype not in known:
        raise store.CalibrationProblem(
            f"`{_word(itype)}` is not an interaction type in the policy. Types: "
            + ", ".join(f"`{k}`" for k in known)
            + f". {USAGE}"
        )
    with session_scope(runtime.engine) as session:
        cal, items = store.create_session(
            session=session,
            created_by=user_id,
            channel=channel,
            interaction_type=itype,
            n=args.n,
            heavy_edit_distance=runtime.policy.oversight.heavy_edit_distance,
            now=now,
        )
        sid = cal.id or 0
        enqueue_calibration(session, now=now, message=CalibrationMessage(session_id=sid, part="intro"))
        for item in items:
            message = CalibrationMessage(session_id=sid, part="card", review_id=item.review_id)
            enqueue_calibration(session, now=now, message=message)
    runtime.services.wake_outbox()
    fewer = f" (only {len(items)} decided so far)" if len(items) < args.n else ""
    return (
        f":white_check_mark: Calibration session *#{sid}* started: {len(items)} past reviews{fewer}, decisions "
        "hidden, are being posted here (or in our DM if I cannot post here). Vote Good or Defect on each; "
        f"`/hitl calibrate report {sid}` closes it and posts the agreement."
    )


def report(runtime: Runtime, session_id: int | None, *, user_id: str, channel: str, now: datetime) -> str:
    """Close the session (the given one, or the latest run in this channel) and queue its report."""
    with session_scope(runtime.engine) as session:
        cal = _session_to_report(session, session_id, user_id=user_id, channel=channel)
        sid = cal.id or 0
        closed_now = store.close_session(session=session, session_id=sid, closed_by=user_id, now=now)
        if closed_now:
            for item in store.items_of(session=session, session_id=sid):
                message = CalibrationMessage(session_id=sid, part="card", review_id=item.review_id)
                enqueue_calibration(session, now=now, message=message)
        enqueue_calibration(session, now=now, message=CalibrationMessage(session_id=sid, part="report"))
        votes = len(store.votes_of(session=session, session_id=sid))
    runtime.services.wake_outbox()
    where = f"<#{cal.posted_channel}>" if cal.posted_channel else "the session's channel"
    already = "" if closed_now else " It was already closed; the report is posted again."
    return f":bar_chart: Calibration session *#{sid}* is closed ({votes} votes). The report is being posted in {where}.{already}"


def _session_to_report(
    session: Session, session_id: int | None, *, user_id: str, channel: str
) -> CalibrationSession:
    if session_id is not None:
        cal = store.get_session(session=session, session_id=session_id)
        if cal is None:
            raise store.CalibrationProblem(f"There is no calibration session #{session_id}. {USAGE}")
        return cal
    cal = store.latest_session(session=session, channel=channel, user_id=user_id)
    if cal is None:
        raise store.CalibrationProblem(f"No calibration session was run here yet. {USAGE}")
    return cal


# ---------------------------------------------------------------- votes


@dataclass(frozen=True)
class VoteClick:
    """A Good click or a Defect pick on a calibration card."""

    session_id: int
    review_id: str
    verdict: Verdict
    category: str | None
    user_id: str
    user_name: str | None
    team_id: str | None
    channel: str
    message_ts: str
    delivery_key: str


def vote(runtime: Runtime, click: VoteClick) -> store.VoteResult | None:
    """Record one vote (None for a redelivered click), re-render the card, confirm to the voter."""
    now = runtime.clock.now()
    _check_workspace(runtime, click)
    with session_scope(runtime.engine, readonly=True) as session:
        _, review = _open_card(session, click)
    check_voter(runtime, review, click.user_id)  # may ask Slack for a user group: outside the write
    try:
        result = _record(runtime, click, now)
    except store.SessionClosed as exc:
        raise CalibrationClosed(click.review_id, closed_text(exc.session_id)) from None
    except store.CalibrationProblem as exc:  # a Defect without a category: not a value our menu sends
        raise ClickRefused(click.review_id, str(exc)) from None
    if result is not None:
        text = _confirmation(click, result)
        tell(runtime, user_id=click.user_id, channel=click.channel, text=text, review_id=None)
    return result


def _record(runtime: Runtime, click: VoteClick, now: datetime) -> store.VoteResult | None:
    """The vote, its delivery key and the card's re-render, in one transaction that holds the session open."""
    with session_scope(runtime.engine) as session:
        store.lock_open(session=session, session_id=click.session_id)  # a close waits for this vote, or wins
        if not record_delivery(session=session, key=click.delivery_key, now=now):
            return None
        result = store.record_vote(
            session=session,
            session_id=click.session_id,
            review_id=click.review_id,
            voter=click.user_id,
            voter_name=click.user_name,
            verdict=click.verdict,
            category=click.category,
            now=now,
        )
        message = CalibrationMessage(session_id=click.session_id, part="card", review_id=click.review_id)
        enqueue_calibration(session, now=now, message=message)
    return result


def _check_workspace(runtime: Runtime, click: VoteClick) -> None:
    team = workspace_team(runtime)
    if team is None or click.team_id != team:
        raise ClickRefused(click.review_id, "This click did not come from this app's Slack workspace.")


def _open_card(session: Session, click: VoteClick) -> tuple[CalibrationSession, Review]:
    """The session and review a click names, once the click is known to come from that review's card."""
    cal = store.get_session(session=session, session_id=click.session_id)
    item = store.item_of(session=session, session_id=click.session_id, review_id=click.review_id)
    review = session.get(Review, click.review_id)
    if cal is None or item is None or review is None:
        raise ClickRefused(
            click.review_id, "This card names a calibration session or review that does not exist."
        )
    if (item.channel, item.ts) != (click.channel, click.message_ts):
        raise ClickRefused(
            click.review_id, "This button does not belong to the calibration card it was clicked in."
        )
    if cal.closed_at is not None:
        raise CalibrationClosed(click.review_id, closed_text(cal.id or 0))
    return cal, review


def _confirmation(click: VoteClick, result: store.VoteResult) -> str:
    said = "*Good*" if click.verdict == Verdict.GOOD else f"*Defect: {label(click.category)}*"
    changed = f" (changed from {result.changed_from.replace(':', ': ')})" if result.changed_from else ""
    return (
        f"Your vote on calibration #{click.session_id} card: {said}{changed}. Click again to change it; "
        "nobody sees it before the report."
    )


# ---------------------------------------------------------------- outbox kind `slack_calibration`


def install(runtime: Runtime) -> None:
    """Register the calibration outbox kind."""
    runtime.services.kinds.register(OutboxKind.SLACK_CALIBRATION, deliver, slack_kind(runtime))


def deliver(runtime: Runtime, item: OutboxItem, msg: CalibrationMessage) -> dict[str, Any]:
    """Post or re-render one calibration message from the store."""
    if msg.part == "intro":
        return _deliver_intro(runtime, msg.session_id)
    if msg.part == "card":
        return _deliver_card(runtime, item, msg.session_id, msg.review_id or "")
    return _deliver_report(runtime, msg.session_id)


def _load_session(session: Session, session_id: int) -> CalibrationSession:
    cal = store.get_session(session=session, session_id=session_id)
    if cal is None:
        raise Permanent(f"calibration session {session_id} does not exist")
    return cal


def _post(
    runtime: Runtime, channel: str, text: str, blocks: list[Any], metadata: dict[str, Any] | None = None
) -> tuple[str, str]:
    resp = call(
        runtime,
        "chat_postMessage",
        gate_channel=channel,
        channel=channel,
        text=text,
        blocks=blocks,
        metadata=metadata,
        unfurl_links=False,
        unfurl_media=False,
    )
    return str(resp["channel"]), str(resp["ts"])


def _deliver_intro(runtime: Runtime, session_id: int) -> dict[str, Any]:
    """Post the intro where the command was run; where Slack refuses, in the runner's DM instead."""
    with session_scope(runtime.engine, readonly=True) as session:
        cal = _load_session(session, session_id)
    if cal.posted_channel:
        return {"channel": cal.posted_channel, "skipped": "already posted"}
    try:
        channel, ts = _post(runtime, cal.channel, intro_text(cal), intro_blocks(cal))
    except Permanent as exc:
        error = _slack_error(exc)
        if error not in NOT_HERE:
            raise
        log.info(
            "calibration #%s: cannot post in %s (%s); using the runner's DM", session_id, cal.channel, error
        )
        dm = str(call(runtime, "conversations_open", users=cal.created_by)["channel"]["id"])
        blocks = intro_blocks(cal, not_posted_in=cal.channel, why=error)
        channel, ts = _post(runtime, dm, intro_text(cal), blocks)
    with session_scope(runtime.engine) as session:
        held = store.set_posted_channel(session=session, session_id=session_id, channel=channel)
    return {"channel": held, "ts": ts}


def _slack_error(exc: Exception) -> str:
    cause = exc.__cause__
    return str(cause.response.get("error") or "") if isinstance(cause, SlackApiError) else ""


def _deliver_card(runtime: Runtime, row: OutboxItem, session_id: int, review_id: str) -> dict[str, Any]:
    """Post a review's card once; after that, re-render it in place (votes so far, or the verdicts)."""
    with session_scope(runtime.engine, readonly=True) as session:
        cal = _load_session(session, session_id)
        item = store.item_of(session=session, session_id=session_id, review_id=review_id)
        review = session.get(Review, review_id)
        if item is None or review is None:
            raise Permanent(f"calibration session {session_id} has no review {review_id}")
        votes = store.votes_of(session=session, session_id=session_id, review_id=review_id)
    view = CardView(cal, item, review, votes)
    if item.channel and item.ts:
        call(
            runtime,
            "chat_update",
            channel=item.channel,
            ts=item.ts,
            text=card_text(view),
            blocks=card_blocks(view),
        )
        return {"channel": item.channel, "ts": item.ts, "updated": True}
    if not cal.posted_channel:
        raise Permanent(f"calibration session {session_id} has no channel (its intro was not posted)")
    channel, ts = _post_card_once(runtime, row, view, cal.posted_channel)
    with session_scope(runtime.engine) as session:
        store.record_card(session=session, item_id=item.id or 0, channel=channel, ts=ts)
    return {"channel": channel, "ts": ts}


def _post_card_once(runtime: Runtime, row: OutboxItem, view: CardView, channel: str) -> tuple[str, str]:
    """Post the card with its metadata; if an earlier try went unanswered, adopt the card it left instead."""
    payload: dict[str, Any] = {"session_id": view.item.session_id, "review_id": view.item.review_id}
    meta = {"event_type": CARD_EVENT, "event_payload": payload}
    if row.in_doubt_at is not None:
        found = _find_card(runtime, channel, payload, oldest=row.in_doubt_at.timestamp() - 120)
        if found is not None:
            log.info(
                "calibration #%s: adopting the card of %s an unanswered post left",
                view.cal.id,
                view.item.review_id,
            )
            return channel, found
    pacer = runtime.services.slack_gate
    wall = pacer.wall() if pacer is not None else time.time()
    set_in_doubt(runtime=runtime, row=row, at=datetime.fromtimestamp(wall, UTC))
    try:
        return _post(runtime, channel, card_text(view), card_blocks(view), metadata=meta)
    except NoAnswer:
        raise  # stays in doubt: the next try looks in the channel first
    except Exception:
        set_in_doubt(runtime=runtime, row=row, at=None)
        raise


def _find_card(runtime: Runtime, channel: str, payload: dict[str, Any], *, oldest: float) -> str | None:
    """The ts of the card carrying this metadata payload in `channel` since `oldest`, if Slack has one."""
    metadata = {"event_type": CARD_EVENT, "event_payload": payload}
    return find_by_metadata(runtime, channel, metadata, oldest=oldest)


def _deliver_report(runtime: Runtime, session_id: int) -> dict[str, Any]:
    with session_scope(runtime.engine, readonly=True) as session:
        cal = _load_session(session, session_id)
        items = store.items_of(session=session, session_id=session_id)
        votes = store.votes_of(session=session, session_id=session_id)
        tickets = {
            i.review_id: r.ticket_id for i in items if (r := session.get(Review, i.review_id)) is not None
        }
        agreement = store.session_agreement(session=session, session_id=session_id)
    view = ReportView(cal, items, tickets, votes, agreement)
    channel, ts = _post(runtime, cal.posted_channel or cal.channel, report_text(view), report_blocks(view))
    return {"channel": channel, "ts": ts}
