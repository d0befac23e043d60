"""Publishing App Home tabs: what each reader may do on each line, links to the cards, paced views.publish.

`request_home(runtime, user)` asks for a user's Home to be (re)published and returns at once: one
background thread per service publishes, so a burst of opens never ties up the listener pool, a user
asked for twice while waiting is published once, and each publish reads the store as it is then. Every
Web API call goes through `bot.slack.webapi.call`, which takes slots of Slack's budget shared by all
replicas (views.publish and chat.getPermalink are Tier 4) and turns a 429 into a wait for everybody.
Links to the cards are built from the workspace URL (bot.slack.permalinks) without a call per line;
chat.getPermalink is asked only while that URL is not known.
A view identical to the one last published for that user (stored in scheduler_state) is not sent again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.outbox.registry import Defer, Permanent, Retry
from bot.reporting.home import HomeData, HomeLine, Snapshot, home_data, snapshot
from bot.review.decisions import NotAllowed, may_decide
from bot.review.people import MembershipUnknown, PeopleDirectory
from bot.review.policy import People
from bot.slack.blocks.home import home_fallback, home_view
from bot.slack.ids import ActionId
from bot.slack.permalinks import message_permalink, workspace_url
from bot.slack.webapi import call
from storage.db import session_scope
from storage.models import DecisionKind, SchedulerState

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("hitl.slack.home")

STATE_PREFIX = "home_view:"
SAME_VIEW_FOR = timedelta(minutes=10)  # an identical view older than this is sent again anyway
SNAPSHOT_SECONDS = 60.0  # the managers' stats are computed at most once a minute per service
MAX_TRIES = 5
MEMBERSHIP_RETRY_SECONDS = 30.0
MEMBERSHIP_RETRIES = 3
IDLE_HORIZON = 1.0  # a publish due further off than this (a retry later) does not count as pending work
UNKNOWN_MEMBERSHIP = (
    ":warning: Slack did not say just now which user groups you are in, so some buttons may be missing. "
    "This tab updates itself in a minute (or press Refresh)."
)
DECISIONS = (
    (ActionId.APPROVE, DecisionKind.APPROVE),
    (ActionId.EDIT, DecisionKind.EDIT),
    (ActionId.TAKE_OVER, DecisionKind.TAKE_OVER),
    (ActionId.REJECT, DecisionKind.REJECT),
)


# ---------------------------------------------------------------- who may do what


class Membership:
    """Who is in which policy group, as far as Slack says now; `unknown` once it did not answer."""

    def __init__(self, directory: PeopleDirectory | None) -> None:
        self.directory = directory
        self.unknown = False

    def includes(self, people: People, user_id: str) -> bool:
        """Listed, or in a listed group (a group Slack does not answer for counts as not, and is noted)."""
        if people.anyone or user_id in people.users:
            return True
        if self.directory is None:
            self.unknown = self.unknown or bool(people.usergroups)
            return False
        try:
            return self.directory.includes(people, user_id)
        except MembershipUnknown:
            self.unknown = True
            return False


def decider_tiers(runtime: Runtime, user_id: str, membership: Membership | None = None) -> list[str]:
    """The policy's tiers whose approvers or supervisors include the user."""
    known = membership or Membership(runtime.services.people)
    return [
        name
        for name, tier in runtime.policy.tiers.items()
        if known.includes(tier.approvers, user_id) or known.includes(tier.supervisors, user_id)
    ]


def is_manager(runtime: Runtime, user_id: str, membership: Membership | None = None) -> bool:
    """Whether the user gets the managers' reports (policy `managers`; nobody named: everybody, as `/hitl`)."""
    managers = runtime.policy.managers
    return managers.anyone or (membership or Membership(runtime.services.people)).includes(managers, user_id)


def line_actions(runtime: Runtime, line: HomeLine, user_id: str) -> tuple[str, ...]:
    """The buttons the user gets on a line: Claim (Unclaim on their own) and each decision they may make."""
    directory = runtime.services.people
    review = line.review
    if directory is None or review is None:
        return ()
    allowed: list[str] = []
    for action, kind in DECISIONS:
        try:
            may_decide(
                review=review, decision=kind, user_id=user_id, policy=runtime.policy, directory=directory
            )
        except NotAllowed:
            continue
        allowed.append(action)
    if not allowed:
        return ()
    if line.claimed_by and line.claimed_by != user_id:
        return tuple(allowed)  # someone else holds it: the line says who; a supervisor reassigns on the card
    return (ActionId.UNCLAIM if line.claimed_by == user_id else ActionId.CLAIM, *allowed)


# ---------------------------------------------------------------- building


class HomePublisher:
    """One service's Home publishing: a queue of users, one thread, caches of permalinks and the stats."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.permalinks: dict[tuple[str, str], str] = {}
        self._due: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._busy = False
        self._snapshot: tuple[float, Snapshot] | None = None
        self._workspace_url: str | None = None
        self._unknown_for: dict[str, int] = {}  # users whose groups Slack did not answer for: times retried
        self.published = 0  # views.publish calls made (for the log and the demo)
        self.skipped = 0  # publishes not sent because the view had not changed

    # -- the queue

    def request(self, user_id: str, *, delay: float = 0.0) -> None:
        """Publish `user_id`'s Home soon (after `delay` s); a user already waiting is published once."""
        with self._cond:
            if self._stopped:
                return
            at = time.monotonic() + delay
            self._due[user_id] = min(self._due.get(user_id, at), at)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hitl-home", daemon=True)
                self._thread.start()
            self._cond.notify()

    def idle(self) -> bool:
        """No publish is under way or due now (retries scheduled for later do not count)."""
        horizon = time.monotonic() + IDLE_HORIZON
        with self._cond:
            return not self._busy and all(at > horizon for at in self._due.values())

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _next(self) -> str | None:
        with self._cond:
            while not self._stopped:
                if not self._due:
                    self._cond.wait()
                    continue
                user, at = min(self._due.items(), key=lambda kv: kv[1])
                wait = at - time.monotonic()
                if wait <= 0:
                    del self._due[user]
                    self._busy = True
                    return user
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (user := self._next()) is not None:
            try:
                self._publish_once(user)
            finally:
                with self._cond:
                    self._busy = False

    def _publish_once(self, user_id: str) -> None:
        try:
            self.publish(user_id)
            self._tries.pop(user_id, None)
        except Defer as exc:  # Slack's budget is taken for a while (or a 429): wait, nothing counted
            self.request(user_id, delay=exc.retry_after)
        except Retry as exc:
            tries = self._tries[user_id] = self._tries.get(user_id, 0) + 1
            if tries < MAX_TRIES:
                self.request(user_id, delay=exc.retry_after or min(30.0, 2.0**tries))
            else:
                self._tries.pop(user_id, None)
                log.warning("App Home of %s not published after %d tries: %s", user_id, tries, exc)
        except Permanent as exc:
            log.warning("App Home of %s not published: %s", user_id, exc)
        except Exception:  # noqa: BLE001 - one user's Home must not stop the others'
            log.exception("App Home of %s could not be built", user_id)

    # -- one publish

    def data(self, user_id: str) -> HomeData:
        """What the user's Home shows now, with the buttons they get and the links to the cards."""
        runtime, now = self.runtime, self.runtime.clock.now()
        membership = Membership(runtime.services.people)
        tiers = decider_tiers(runtime, user_id, membership)
        manager = is_manager(runtime, user_id, membership)
        with session_scope(runtime.engine, readonly=True) as session:
            data = home_data(session=session, user_id=user_id, now=now, tiers=tiers or None)
        notes = []
        if membership.unknown:
            notes.append(UNKNOWN_MEMBERSHIP)
            self._again_later(user_id)
        else:
            self._unknown_for.pop(user_id, None)
        return replace(
            data,
            my_claims=self._dressed(data.my_claims, user_id),
            waiting=self._dressed(data.waiting, user_id),
            breached=self._dressed(data.breached, user_id),
            decides_anywhere=bool(tiers) or membership.unknown,
            snapshot=self._stats() if manager else None,
            notes=notes,
        )

    def _again_later(self, user_id: str) -> None:
        """Publish again in a while, a few times: Slack may answer for the user groups by then."""
        tries = self._unknown_for[user_id] = self._unknown_for.get(user_id, 0) + 1
        if tries <= MEMBERSHIP_RETRIES:
            self.request(user_id, delay=MEMBERSHIP_RETRY_SECONDS)

    def _dressed(self, lines: list[HomeLine], user_id: str) -> list[HomeLine]:
        return [
            replace(line, actions=line_actions(self.runtime, line, user_id), permalink=self.permalink(line))
            for line in lines
        ]

    def _stats(self) -> Snapshot:
        cached = self._snapshot
        if cached is not None and time.monotonic() - cached[0] < SNAPSHOT_SECONDS:
            return cached[1]
        runtime, now = self.runtime, self.runtime.clock.now()
        with session_scope(runtime.engine, readonly=True) as session:
            snap = snapshot(session=session, now=now, oversight=runtime.policy.oversight)
        self._snapshot = (time.monotonic(), snap)
        return snap

    def permalink(self, line: HomeLine) -> str | None:
        """The card's permalink: built from the workspace URL (no Slack call), else chat.getPermalink once."""
        if not line.channel or not line.ts:
            return None
        key = (line.channel, line.ts)
        if key not in self.permalinks:
            if self._workspace_url is None:
                self._workspace_url = workspace_url(self.runtime, ask=False)
            link = message_permalink(self._workspace_url, line.channel, line.ts) or self._asked_permalink(
                line
            )
            if link is None:
                return None
            self.permalinks[key] = link
        return self.permalinks[key]

    def _asked_permalink(self, line: HomeLine) -> str | None:
        """chat.getPermalink (Tier 4, paced); None while Slack will not say."""
        try:
            resp = call(self.runtime, "chat_getPermalink", channel=line.channel, message_ts=line.ts)
        except (Defer, Retry, Permanent) as exc:
            log.info("no permalink for the card of %s yet: %s", line.review_id, exc)
            return None
        link = resp.get("permalink")
        return link if isinstance(link, str) and link.startswith("https://") else None

    def publish(self, user_id: str) -> bool:
        """Build and publish the user's Home; False when it had not changed since the last publish."""
        data = self.data(user_id)
        view = home_view(data).to_dict()
        digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()
        if self._unchanged(user_id, digest):
            self.skipped += 1
            return False
        resp = call(self.runtime, "views_publish", user_id=user_id, view=view)
        self.published += 1
        published = resp.get("view") or {}
        self._remember(user_id, digest, str(published.get("id") or ""))
        log.info("App Home published for %s: %s", user_id, home_fallback(data))
        return True

    def _unchanged(self, user_id: str, digest: str) -> bool:
        with session_scope(self.runtime.engine, readonly=True) as session:
            row = session.get(SchedulerState, STATE_PREFIX + user_id)
        if row is None or (row.value or {}).get("hash") != digest:
            return False
        return self.runtime.clock.now() - row.updated_at < SAME_VIEW_FOR

    def _remember(self, user_id: str, digest: str, view_id: str) -> None:
        with session_scope(self.runtime.engine) as session:
            session.merge(
                SchedulerState(
                    key=STATE_PREFIX + user_id,
                    value={"hash": digest, "view_id": view_id},
                    updated_at=self.runtime.clock.now(),
                )
            )


_publishers: dict[str, HomePublisher] = {}
_lock = threading.Lock()


def home_publisher(runtime: Runtime) -> HomePublisher:
    """The runtime's publisher, created on first use (stopped with the service)."""
    with _lock:
        publisher = _publishers.get(runtime.instance_id)
        if publisher is None:
            publisher = _publishers[runtime.instance_id] = HomePublisher(runtime)
            runtime.add_worker("slack-home", lambda: None, lambda: _forget(runtime))
    return publisher


def _forget(runtime: Runtime) -> None:
    with _lock:
        publisher = _publishers.pop(runtime.instance_id, None)
    if publisher is not None:
        publisher.stop()


def request_home(runtime: Runtime, user_id: str) -> None:
    """Publish `user_id`'s App Home soon (returns at once)."""
    if user_id:
        home_publisher(runtime).request(user_id)
