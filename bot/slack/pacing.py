"""Slack's rate limits as a budget shared by every replica on one database.

Each pacing key (`chat.postMessage:C0123` per channel, `chat.update` per workspace, ...) has one row
in `slack_pace` holding its theoretical arrival time (GCRA, the token bucket's twin): a call may go at
`tat - tolerance`, and taking that slot moves `tat` on by one interval. Slots are taken with a
compare-and-set update, so two replicas never take the same one and together they call Slack no
faster than one replica would. A 429 moves `tat` past its Retry-After for everybody.

Slack's budget runs on real time, whatever clock the business logic is given: the pacer reads
`time.time()` (injectable) and never the runtime's clock, so a test's frozen clock cannot freeze it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from storage.db import changed, session_scope
from storage.models import SlackPace

CAS_TRIES = 20


@dataclass(frozen=True)
class Pace:
    """One key's allowance: `per_second` calls on average, `burst` of them back to back."""

    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


@dataclass(frozen=True)
class Slot:
    """The answer to a reservation: `wait` seconds until the call may go; `taken` if it is ours."""

    wait: float
    taken: bool


class SlackPacer:
    """Per-key call slots in the database, plus the channel-name cache of this process."""

    def __init__(self, engine: Engine, *, wall: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.wall = wall
        self.channel_ids: dict[str, str] = {}
        self.list_after = 0.0  # conversations.list failed: not again before this epoch second

    def reserve(self, key: str, pace: Pace, *, max_wait: float) -> Slot:
        """Take the next slot of `key` if it is at most `max_wait` s away; otherwise say how far it is."""
        for _ in range(CAS_TRIES):
            now = self.wall()
            tat = self._tat(key)
            start = max(now, (tat if tat is not None else now) - pace.tolerance)
            if start - now > max_wait:
                return Slot(wait=start - now, taken=False)
            new_tat = max(tat if tat is not None else now, start) + pace.interval
            if self._swap(key, tat, new_tat):
                return Slot(wait=start - now, taken=True)
        return Slot(wait=pace.interval, taken=False)  # heavy contention: come back one interval later

    def hold(self, key: str, pace: Pace, seconds: float) -> None:
        """Slack said Retry-After: nobody calls `key` for `seconds`, then one call per interval."""
        for _ in range(CAS_TRIES):
            tat = self._tat(key)
            until = self.wall() + seconds + pace.tolerance
            if tat is not None and tat >= until:
                return
            if self._swap(key, tat, until):
                return

    def wait_left(self, key: str, pace: Pace) -> float:
        """Seconds until `key`'s next slot (0 when one is free now)."""
        tat = self._tat(key)
        return 0.0 if tat is None else max(0.0, tat - pace.tolerance - self.wall())

    def _tat(self, key: str) -> float | None:
        with session_scope(self.engine, readonly=True) as session:
            value = session.execute(select(col(SlackPace.next_at)).where(col(SlackPace.key) == key)).scalar()
        return None if value is None else float(value)

    def _swap(self, key: str, old: float | None, new: float) -> bool:
        """Compare-and-set `key`'s tat from `old` (None: no row yet) to `new`; False if someone was first."""
        try:
            with session_scope(self.engine) as session:
                if old is None:
                    session.execute(insert(SlackPace).values(key=key, next_at=new))
                    return True
                return bool(
                    changed(
                        session,
                        update(SlackPace)
                        .where(col(SlackPace.key) == key, col(SlackPace.next_at) == old)
                        .values(next_at=new),
                    )
                )
        except IntegrityError:  # another replica inserted the key first
            return False
