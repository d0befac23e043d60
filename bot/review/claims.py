"""Claims: who works a review's ticket now, so two people never work one ticket. Claiming never decides.

Claim, Unclaim and Reassign act on a pending review; Take over after a Reject makes the clicker the owner
of a rejected review's ticket (the review stays rejected). Each is one conditional `UPDATE reviews …`
(only while the claim is what the clicker saw), audited, with a card refresh queued in the same
transaction, so two racing claimers end with exactly one holder and the loser is told who won.

Who may claim: whoever may make at least one decision on the review (bot.review.decisions.may_decide).
Who may unclaim someone else, or reassign: the supervisors of the review's tier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, or_, update
from sqlmodel import Session, col

from bot.outbox.kinds import (
    RefreshCard,
    SlackDm,
    SlackPost,
    enqueue_refresh_card,
    enqueue_slack_dm,
    enqueue_slack_post,
    review_order,
)
from bot.review.decisions import (
    AlreadyDecided,
    Click,
    ClickRefused,
    DecisionError,
    NotAllowed,
    checked_review,
    may_decide,
    people,
    tell,
)
from bot.review.people import MembershipUnknown, PeopleDirectory
from bot.review.policy import Policy
from bot.slack.blocks.thread import (
    claim_held_text,
    claimed_text,
    not_claimed_text,
    ownership_thread_text,
    reassigned_dm_text,
    unclaimed_text,
)
from bot.slack.dedupe import first_delivery, record_delivery
from storage import repo
from storage.db import changed, session_scope
from storage.models import HUMAN_DECISION_KINDS, Review, ReviewStatus

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


class ClaimHeld(DecisionError):
    """Someone else holds the review (or owns the rejected ticket); carries who, and since when."""

    audit_action = "claim_refused"

    def __init__(self, review_id: str, holder: str, since: datetime | None, *, owner: bool = False) -> None:
        super().__init__(review_id, f"review {review_id} is held by {holder}")
        self.holder, self.since, self.owner = holder, since, owner

    def user_message(self, user_id: str) -> str:
        return claim_held_text(holder=self.holder, since=self.since, owner=self.owner)


class NotClaimed(DecisionError):
    """Unclaim on a review nobody holds."""

    def user_message(self, user_id: str) -> str:
        return not_claimed_text()


@dataclass(frozen=True)
class ClaimChange:
    """What a claim action did: the holder before and after (`changed` False: it was so already)."""

    review_id: str
    action: str  # claim | unclaim | reassign | take_ownership
    previous: str | None
    holder: str | None
    changed: bool = True


# ---------------------------------------------------------------- who holds it, who may


def owner_after_decision(review: Review) -> str | None:
    """Who took a decided review's ticket over after the decision (a claim made at or after it)."""
    if review.claimed_by and review.claimed_at and review.decided_at:
        return review.claimed_by if review.claimed_at >= review.decided_at else None
    return None


def may_claim(*, review: Review, user_id: str, policy: Policy, directory: PeopleDirectory) -> bool:
    """Raise NotAllowed unless the user may make some decision on the review; whether they are a supervisor."""
    refused: NotAllowed | None = None
    for kind in HUMAN_DECISION_KINDS:
        try:
            return may_decide(
                review=review, decision=kind, user_id=user_id, policy=policy, directory=directory
            )
        except NotAllowed as exc:
            refused = refused or exc
    assert refused is not None  # HUMAN_DECISION_KINDS is never empty
    raise refused


def is_supervisor(*, review: Review, user_id: str, policy: Policy, directory: PeopleDirectory) -> bool:
    """Whether the user is one of the tier's supervisors (a tier naming none has none: fail closed)."""
    tier = policy.tiers.get(review.tier)
    if tier is None or tier.supervisors.anyone:
        return False
    try:
        return directory.includes(tier.supervisors, user_id)
    except MembershipUnknown as exc:
        raise NotAllowed(
            review.id, f"Your permission could not be checked ({exc}); try again in a minute."
        ) from exc


def _require_supervisor(runtime: Runtime, review: Review, user_id: str, what: str) -> None:
    if is_supervisor(review=review, user_id=user_id, policy=runtime.policy, directory=people(runtime)):
        return
    tier = runtime.policy.tiers.get(review.tier)
    if tier is None or tier.supervisors.anyone:
        raise NotAllowed(
            review.id,
            f"Only a supervisor may {what}, and tier {review.tier} names none: add `supervisors` "
            "to the tier in the policy file.",
        )
    raise NotAllowed(review.id, f"Only a supervisor of tier {review.tier} may {what}.")


def _pending(review: Review) -> Review:
    if review.status != ReviewStatus.PENDING:
        raise AlreadyDecided.of(review)
    return review


# ---------------------------------------------------------------- the four actions


def claim(runtime: Runtime, click: Click) -> ClaimChange | None:
    """The clicker holds the pending review now (if nobody did); None for a redelivered click."""
    review = _pending(checked_review(runtime, click))
    may_claim(review=review, user_id=click.user_id, policy=runtime.policy, directory=people(runtime))
    me = click.user_id

    def work(session: Session, now: datetime) -> ClaimChange:
        values = {"claimed_by": me, "claimed_by_name": click.user_name, "claimed_at": now}
        if _update(session, review.id, _is_pending() & col(Review.claimed_by).is_(None), values):
            return ClaimChange(review.id, "claim", None, me)
        current = _pending(_reread(session, review.id))
        if current.claimed_by == me:
            return ClaimChange(review.id, "claim", me, me, changed=False)
        raise ClaimHeld(review.id, current.claimed_by or "someone", current.claimed_at)

    return _run(runtime, click, review, work)


def unclaim(runtime: Runtime, click: Click) -> ClaimChange | None:
    """Nobody holds the pending review any more: its holder, or a supervisor, lets go of it."""
    review = _pending(checked_review(runtime, click))
    holder = review.claimed_by
    if holder is None:
        raise NotClaimed(review.id, "Nobody has claimed this review.")
    if holder != click.user_id:
        _require_supervisor(runtime, review, click.user_id, "unclaim a review someone else holds")

    def work(session: Session, now: datetime) -> ClaimChange:
        values = {"claimed_by": None, "claimed_by_name": None, "claimed_at": None}
        if _update(session, review.id, _is_pending() & (col(Review.claimed_by) == holder), values):
            return ClaimChange(review.id, "unclaim", holder, None)
        raise _moved_on(_reread(session, review.id))

    return _run(runtime, click, review, work)


def reassign(runtime: Runtime, click: Click, to_user_id: str) -> ClaimChange | None:
    """A supervisor hands the pending review to `to_user_id`, who must be allowed to decide it."""
    review = _pending(checked_review(runtime, click))
    if not USER_ID.fullmatch(to_user_id or ""):
        raise ClickRefused(review.id, "Choose a person (not a bot or a channel) to reassign this review to.")
    _require_supervisor(runtime, review, click.user_id, "reassign a review")
    try:
        may_claim(review=review, user_id=to_user_id, policy=runtime.policy, directory=people(runtime))
    except NotAllowed as exc:
        raise NotAllowed(
            review.id,
            f"<@{to_user_id}> may not decide reviews of tier {review.tier}, so cannot hold this one.",
        ) from exc
    previous = review.claimed_by

    def work(session: Session, now: datetime) -> ClaimChange:
        if previous == to_user_id:
            return ClaimChange(review.id, "reassign", previous, to_user_id, changed=False)
        same = col(Review.claimed_by).is_(None) if previous is None else col(Review.claimed_by) == previous
        values = {"claimed_by": to_user_id, "claimed_by_name": None, "claimed_at": now}
        if not _update(session, review.id, _is_pending() & same, values):
            raise _moved_on(_reread(session, review.id))
        dm = SlackDm(user=to_user_id, text=reassigned_dm_text(review, by=click.user_id), review_id=review.id)
        enqueue_slack_dm(session, now=now, dm=dm, order_key=f"dm:{to_user_id}")
        return ClaimChange(review.id, "reassign", previous, to_user_id)

    return _run(runtime, click, review, work)


def take_ownership(runtime: Runtime, click: Click) -> ClaimChange | None:
    """After a Reject: the clicker owns the ticket (claim set, thread note, audit). Not a second decision."""
    review = checked_review(runtime, click)
    if review.status == ReviewStatus.PENDING:
        raise DecisionError(review.id, "This review is still open: decide it on its card first.")
    if review.status != ReviewStatus.REJECTED:
        raise AlreadyDecided.of(review)
    may_claim(review=review, user_id=click.user_id, policy=runtime.policy, directory=people(runtime))
    me = click.user_id

    def work(session: Session, now: datetime) -> ClaimChange:
        unowned = or_(
            col(Review.claimed_by).is_(None),
            col(Review.claimed_at).is_(None),
            col(Review.claimed_at) < col(Review.decided_at),
        )
        values = {"claimed_by": me, "claimed_by_name": click.user_name, "claimed_at": now, "assignee": me}
        rejected = col(Review.status) == ReviewStatus.REJECTED
        if _update(session, review.id, and_(rejected, unowned), values):
            text = ownership_thread_text(review, user_id=me)
            post = SlackPost(review_id=review.id, in_review_thread=True, text=text)
            enqueue_slack_post(session, now=now, post=post, order_key=review_order(review.id))
            return ClaimChange(review.id, "take_ownership", None, me)
        current = _reread(session, review.id)
        owner = owner_after_decision(current)
        if owner == me:
            return ClaimChange(review.id, "take_ownership", me, me, changed=False)
        raise ClaimHeld(review.id, owner or "someone", current.claimed_at, owner=True)

    return _run(runtime, click, review, work)


# ---------------------------------------------------------------- one transaction each


def _is_pending() -> ColumnElement[bool]:
    return col(Review.status) == ReviewStatus.PENDING


def _update(session: Session, review_id: str, where: ColumnElement[bool], values: dict[str, Any]) -> bool:
    """The conditional update: True when this call changed the row."""
    statement = (
        update(Review)
        .where(col(Review.id) == review_id, where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return changed(session, statement) == 1


def _reread(session: Session, review_id: str) -> Review:
    """The review as the winner of a race left it."""
    review = session.get(Review, review_id, populate_existing=True)
    if review is None:
        raise DecisionError(review_id, "This review is no longer in the store.")
    return review


def _moved_on(current: Review) -> DecisionError:
    """Why an unclaim or reassign found the claim changed under it."""
    if current.status != ReviewStatus.PENDING:
        return AlreadyDecided.of(current)
    if current.claimed_by:
        return ClaimHeld(current.id, current.claimed_by, current.claimed_at)
    return NotClaimed(current.id, "Nobody holds this review any more.")


def _run(
    runtime: Runtime, click: Click, review: Review, work: Callable[[Session, datetime], ClaimChange]
) -> ClaimChange | None:
    """Run `work` once per click delivery, audit and refresh the card with it, then tell the clicker."""
    now = runtime.clock.now()
    try:
        with session_scope(runtime.engine) as session:
            if click.delivery_key and not record_delivery(session=session, key=click.delivery_key, now=now):
                return None
            change = work(session, now)
            _record(session, click, change, now)
    except DecisionError:
        # Refused once the click is known to be about this review: its redelivery stays silent.
        if click.delivery_key and not first_delivery(engine=runtime.engine, key=click.delivery_key, now=now):
            return None
        raise
    _answer(runtime, click, review, change)
    runtime.services.wake_outbox()
    return change


def _record(session: Session, click: Click, change: ClaimChange, now: datetime) -> None:
    """The audit row, and the card refresh when the holder changed."""
    repo.audit(
        session=session,
        at=now,
        actor=click.user_id,
        action=change.action,
        review_id=change.review_id,
        previous=change.previous,
        holder=change.holder,
        changed=change.changed,
        surface=click.surface,
        channel=click.channel,
        ts=click.message_ts,
    )
    if change.changed:
        enqueue_refresh_card(session, now=now, refresh=RefreshCard(review_id=change.review_id))


def _answer(runtime: Runtime, click: Click, review: Review, change: ClaimChange) -> None:
    """Tell the clicker what happened, unless they see it already (the card itself, or their Home tab)."""
    if click.surface == "home":
        return  # the Home tab is published again after the click (handlers.slack.errors.republish_home)
    on_card = bool(review.slack_ts) and (click.channel, click.message_ts) == (
        review.slack_channel,
        review.slack_ts,
    )
    if change.changed and on_card:
        return
    if change.action == "unclaim":
        text = unclaimed_text(review, previous=change.previous)
    else:
        text = claimed_text(review, change.action, holder=change.holder, changed=change.changed)
    tell(runtime, user_id=click.user_id, channel=click.channel or None, text=text, review_id=review.id)
