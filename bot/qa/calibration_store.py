"""Calibration sessions in the store: pick the reviews, record votes (one per person per review), close.

Keyword-only query functions over the 0007 tables, Slack-free. The session's reviews are picked once,
when it is created, and each keeps the verdict its original decision implied then
(`bot.qa.calibration.original_verdict`), so a report reads the same whenever it is computed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.qa.calibration import Agreement, Verdict, Vote, agreement, kappa_text, original_verdict
from storage import repo
from storage.models import (
    HUMAN_DECISION_KINDS,
    CalibrationItem,
    CalibrationSession,
    CalibrationVote,
    Decision,
    DefectCategory,
    Route,
)

DEFAULT_N = 10
MAX_N = 25  # one card per review in the channel: a session people can finish in one sitting
DEFECT_CATEGORIES = tuple(c.value for c in DefectCategory)


class CalibrationProblem(ValueError):
    """A calibration step that cannot be done; the message says why, for the person who asked."""


@dataclass(frozen=True)
class VoteResult:
    """What one vote did: `changed_from` is the earlier verdict it replaced (None for a first vote)."""

    vote: CalibrationVote
    first: bool
    changed_from: str | None
    voters: int  # people who have voted on this review so far


# ---------------------------------------------------------------- picking the reviews


def decided_rows(*, session: Session, interaction_type: str | None, limit: int) -> list[Decision]:
    """The latest decisions a session can show, newest first: human review decisions, and QA ratings of
    auto-sent replies (an auto-send nobody rated has no verdict to compare with). A human-decided reply
    that QA rated later is shown once, with the human decision: that is the decision being calibrated."""
    q = select(Decision).where(
        or_(
            and_(col(Decision.stage) == "review", col(Decision.decision).in_(list(HUMAN_DECISION_KINDS))),
            and_(col(Decision.stage) == "qa", col(Decision.route) == Route.AUTO_SEND),
        )
    )
    if interaction_type:
        q = q.where(col(Decision.interaction_type) == interaction_type)
    q = q.order_by(col(Decision.decided_at).desc(), col(Decision.id).desc()).limit(limit)
    return list(session.execute(q).scalars())


def create_session(
    *,
    session: Session,
    created_by: str,
    channel: str,
    interaction_type: str | None,
    n: int,
    heavy_edit_distance: float,
    now: datetime,
) -> tuple[CalibrationSession, list[CalibrationItem]]:
    """A new session with up to `n` reviews (CalibrationProblem when there is none to show)."""
    rows = decided_rows(session=session, interaction_type=interaction_type, limit=n)
    if not rows:
        what = f"`{interaction_type}` reviews" if interaction_type else "reviews"
        raise CalibrationProblem(
            f"There are no decided {what} to calibrate on yet (human decisions, or auto-sent replies rated in QA)."
        )
    cal = CalibrationSession(
        created_by=created_by, channel=channel, interaction_type=interaction_type, n=len(rows), created_at=now
    )
    session.add(cal)
    session.flush()
    items = [_item(cal, position, row, heavy_edit_distance) for position, row in enumerate(rows, 1)]
    session.add_all(items)
    repo.audit(
        session=session,
        at=now,
        actor=created_by,
        action="calibration_started",
        session_id=cal.id,
        channel=channel,
        interaction_type=interaction_type,
        reviews=[i.review_id for i in items],
    )
    session.flush()
    return cal, items


def _item(cal: CalibrationSession, position: int, row: Decision, heavy: float) -> CalibrationItem:
    verdict = original_verdict(row.decision, edit_distance=row.edit_distance, heavy_edit_distance=heavy)
    return CalibrationItem(
        session_id=cal.id or 0,
        review_id=row.review_id,
        position=position,
        interaction_type=row.interaction_type,
        original_decision=row.decision,
        original_verdict=verdict.value,
        original_category=row.defect_category if verdict == Verdict.DEFECT else None,
    )


# ---------------------------------------------------------------- reading


def get_session(*, session: Session, session_id: int) -> CalibrationSession | None:
    return session.get(CalibrationSession, session_id)


def items_of(*, session: Session, session_id: int) -> list[CalibrationItem]:
    q = select(CalibrationItem).where(col(CalibrationItem.session_id) == session_id)
    return list(session.execute(q.order_by(col(CalibrationItem.position))).scalars())


def item_of(*, session: Session, session_id: int, review_id: str) -> CalibrationItem | None:
    q = select(CalibrationItem).where(
        col(CalibrationItem.session_id) == session_id, col(CalibrationItem.review_id) == review_id
    )
    return session.execute(q).scalars().first()


def votes_of(*, session: Session, session_id: int, review_id: str | None = None) -> list[CalibrationVote]:
    q = select(CalibrationVote).where(col(CalibrationVote.session_id) == session_id)
    if review_id is not None:
        q = q.where(col(CalibrationVote.review_id) == review_id)
    return list(session.execute(q.order_by(col(CalibrationVote.id))).scalars())


def latest_session(*, session: Session, channel: str, user_id: str) -> CalibrationSession | None:
    """The latest session run in `channel`; else the latest one `user_id` ran anywhere."""
    for where in (col(CalibrationSession.channel) == channel, col(CalibrationSession.created_by) == user_id):
        q = select(CalibrationSession).where(where)
        found = session.execute(
            q.order_by(col(CalibrationSession.created_at).desc(), col(CalibrationSession.id).desc())
        ).scalars()
        first: CalibrationSession | None = found.first()
        if first is not None:
            return first
    return None


def closed_sessions(*, session: Session, until: datetime, limit: int = 20) -> list[CalibrationSession]:
    """The latest sessions closed by `until`, newest first."""
    q = (
        select(CalibrationSession)
        .where(col(CalibrationSession.closed_at).is_not(None), col(CalibrationSession.closed_at) <= until)
        .order_by(col(CalibrationSession.closed_at).desc(), col(CalibrationSession.id).desc())
        .limit(limit)
    )
    return list(session.execute(q).scalars())


def session_agreement(*, session: Session, session_id: int, interaction_type: str | None = None) -> Agreement:
    """Kappa and agreement with the original decisions for one session (optionally one type of it)."""
    items = [
        i
        for i in items_of(session=session, session_id=session_id)
        if interaction_type is None or i.interaction_type == interaction_type
    ]
    originals = {i.review_id: Verdict(i.original_verdict) for i in items}
    votes = [
        Vote(v.review_id, v.voter, Verdict(v.verdict))
        for v in votes_of(session=session, session_id=session_id)
        if v.review_id in originals
    ]
    return agreement(votes, originals)


# ---------------------------------------------------------------- writing


def lock_open(*, session: Session, session_id: int) -> None:
    """In a vote's transaction: hold the session open (FOR SHARE on PostgreSQL) or raise SessionClosed."""
    q = select(CalibrationSession).where(col(CalibrationSession.id) == session_id).with_for_update(read=True)
    found = session.execute(q).scalars().first()
    if found is None or found.closed_at is not None:
        raise SessionClosed(session_id)


class SessionClosed(CalibrationProblem):
    """The session was closed before this vote could be recorded."""

    def __init__(self, session_id: int) -> None:
        super().__init__(f"Calibration session #{session_id} is closed; votes are no longer taken.")
        self.session_id = session_id


def record_card(*, session: Session, item_id: int, channel: str, ts: str) -> None:
    """The card of one review was posted (the first answer wins; a repost never moves it)."""
    session.execute(
        update(CalibrationItem)
        .where(col(CalibrationItem.id) == item_id, col(CalibrationItem.ts).is_(None))
        .values(channel=channel, ts=ts)
        .execution_options(synchronize_session=False)
    )


def record_vote(
    *,
    session: Session,
    session_id: int,
    review_id: str,
    voter: str,
    voter_name: str | None,
    verdict: Verdict,
    category: str | None,
    now: datetime,
) -> VoteResult:
    """One person's verdict on one review: inserted, or replacing their earlier one (audited either way)."""
    if verdict == Verdict.DEFECT and category not in DEFECT_CATEGORIES:
        raise CalibrationProblem("Pick what kind of defect it is.")
    category = category if verdict == Verdict.DEFECT else None
    vote = CalibrationVote(
        session_id=session_id,
        review_id=review_id,
        voter=voter,
        voter_name=voter_name,
        verdict=verdict.value,
        category=category,
        voted_at=now,
    )
    vote, first, before = _insert_or_replace(session, vote)
    after = vote.verdict + (f":{vote.category}" if vote.category else "")
    changed = before is not None and before != after
    repo.audit(
        session=session,
        at=now,
        actor=voter,
        action="calibration_vote"
        if first
        else "calibration_vote_changed"
        if changed
        else "calibration_vote_repeated",
        review_id=review_id,
        session_id=session_id,
        verdict=verdict.value,
        category=category,
        previous=before,
    )
    session.flush()
    count = Counter(v.voter for v in votes_of(session=session, session_id=session_id, review_id=review_id))
    return VoteResult(vote, first, before if changed else None, len(count))


def _insert_or_replace(session: Session, vote: CalibrationVote) -> tuple[CalibrationVote, bool, str | None]:
    """(the row, first vote?, the earlier "verdict[:category]"): unique (session, review, voter) lets one in."""
    try:
        with session.begin_nested():
            session.add(vote)
        return vote, True, None
    except IntegrityError:
        pass
    q = select(CalibrationVote).where(
        col(CalibrationVote.session_id) == vote.session_id,
        col(CalibrationVote.review_id) == vote.review_id,
        col(CalibrationVote.voter) == vote.voter,
    )
    earlier = session.execute(q.with_for_update()).scalars().one()
    before = earlier.verdict + (f":{earlier.category}" if earlier.category else "")
    if (earlier.verdict, earlier.category) != (vote.verdict, vote.category):
        earlier.changes += 1
    earlier.verdict, earlier.category, earlier.voted_at = vote.verdict, vote.category, vote.voted_at
    earlier.voter_name = vote.voter_name or earlier.voter_name
    session.add(earlier)
    return earlier, False, before


def close_session(*, session: Session, session_id: int, closed_by: str, now: datetime) -> bool:
    """Close a session (conditional: True only for the call that closed it)."""
    closed = session.execute(
        update(CalibrationSession)
        .where(col(CalibrationSession.id) == session_id, col(CalibrationSession.closed_at).is_(None))
        .values(closed_at=now, closed_by=closed_by)
        .execution_options(synchronize_session=False)
    )
    won = bool(getattr(closed, "rowcount", 0))
    if won:
        repo.audit(
            session=session, at=now, actor=closed_by, action="calibration_closed", session_id=session_id
        )
    return won


def set_posted_channel(*, session: Session, session_id: int, channel: str) -> str:
    """Where the session's cards go, decided once by its first post; returns the channel that holds."""
    session.execute(
        update(CalibrationSession)
        .where(col(CalibrationSession.id) == session_id, col(CalibrationSession.posted_channel).is_(None))
        .values(posted_channel=channel)
        .execution_options(synchronize_session=False)
    )
    found = session.get(CalibrationSession, session_id, populate_existing=True)
    return (found.posted_channel if found else None) or channel


# ---------------------------------------------------------------- the oversight review's "Calibration" section

RECENT_SESSIONS = 3


def review_summary(
    *, session: Session, until: datetime, interaction_type: str | None = None
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(lines about the latest closed sessions, lines per type from the latest closed session with that type)."""
    closed = closed_sessions(session=session, until=until)
    if interaction_type:
        closed = [c for c in closed if c.interaction_type in (None, interaction_type)]
    if not closed:
        return ("No calibration session closed yet: `/hitl calibrate [type] [n]` starts one.",), {}
    lines = tuple(_session_line(session, cal, None) for cal in closed[:RECENT_SESSIONS])
    return lines, _per_type(session, closed, interaction_type)


def _per_type(
    session: Session, closed: list[CalibrationSession], interaction_type: str | None
) -> dict[str, tuple[str, ...]]:
    """For each type, the line of the latest closed session that showed reviews of it."""
    per_type: dict[str, tuple[str, ...]] = {}
    for cal in closed:
        types = {i.interaction_type for i in items_of(session=session, session_id=cal.id or 0)}
        for itype in sorted(types - set(per_type)):
            if interaction_type in (None, itype):
                per_type[itype] = (_session_line(session, cal, itype),)
    return per_type


def _session_line(session: Session, cal: CalibrationSession, itype: str | None) -> str:
    """`calibration #4 (refund, closed 2026-11-16): Fleiss' kappa 0.33 (...); with the original decisions 67% (...)`."""
    result = session_agreement(session=session, session_id=cal.id or 0, interaction_type=itype)
    what = cal.interaction_type or "all types"
    when = f"{cal.closed_at:%Y-%m-%d}" if cal.closed_at else "open"
    return (
        f"calibration #{cal.id} ({what}, closed {when}): {kappa_text(result.between, len(result.voters))}; "
        f"with the original decisions {result.overall.text()}"
    )
