"""Who is in a policy's `People` (user ids, and Slack user groups resolved briefly cached)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.review.policy import People


class MembershipUnknown(Exception):
    """A user group's members could not be read from Slack (decisions then fail closed)."""


class PeopleDirectory:
    """Answers "is this user in these People?", reading user groups with `usergroups.users.list`."""

    def __init__(
        self, client: WebClient, *, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        """The user ids in a user group, at most `ttl` seconds old."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(group_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group_id).get("users") or [])
        except (SlackApiError, OSError) as exc:
            raise MembershipUnknown(f"could not read the members of user group {group_id}: {exc}") from exc
        with self._lock:
            self._cache[group_id] = (now, users)
        return users

    def includes(self, people: People, user_id: str) -> bool:
        """True if the user is listed or in a listed group (an empty `People` includes everyone)."""
        if people.anyone or user_id in people.users:
            return True
        return any(user_id in self.members(group) for group in people.usergroups)
