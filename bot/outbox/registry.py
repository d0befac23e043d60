"""Which handler delivers each outbox kind, and how hard to try: one registry per runtime, filled at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlmodel import Session

from bot.outbox.kinds import PAYLOADS, OutboxKind, Payload
from storage.models import OutboxItem

if TYPE_CHECKING:
    from bot.app.runtime import Runtime


class Retry(Exception):
    """A transient failure: try again later (after `retry_after` seconds when the service said so)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(Exception):
    """A failure retrying cannot fix: dead-letter the row now."""


class Defer(Exception):
    """Not a failure: the row waits its turn (pacing, Retry-After) and comes due again in `retry_after` s.

    The worker moves `next_attempt_at` only: no attempt is counted, and a deferred row is never
    dead-lettered, however long the queue in front of it.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)


@dataclass(frozen=True)
class KindPolicy:
    """How hard to try one kind of write before dead-lettering it.

    `max_attempts` counts real failures only (a `Defer` is not one). `give_up_after` is the time budget
    of a run of transient failures, counted from the first of them; `max_age` (when set) counts from
    the row's creation, queue time included, so kinds that must never be lost to a long queue leave it
    None.
    """

    max_attempts: int = 10
    max_age: timedelta | None = timedelta(hours=24)
    give_up_after: timedelta | None = None
    initial_delay: float = 1.0
    max_delay: float = 300.0
    announce_dead: bool = True
    # Called in the dead-lettering transaction (session, row, "why: error", now) to tell the people concerned.
    on_dead: Callable[[Session, OutboxItem, str, datetime], None] | None = None


P = TypeVar("P", bound=Payload)
Result = dict[str, Any] | None


@dataclass(frozen=True)
class Registration(Generic[P]):
    kind: OutboxKind
    handler: Callable[[Runtime, OutboxItem, P], Result]
    policy: KindPolicy
    payload_type: type[P]

    def deliver(self, runtime: Runtime, item: OutboxItem) -> Result:
        """Validate the stored payload against the kind's model, then call the handler with it."""
        try:
            payload = self.payload_type.model_validate(item.payload)
        except ValueError as exc:
            raise Permanent(f"{self.kind} payload does not validate: {exc}") from None
        return self.handler(runtime, item, payload)


class KindRegistry:
    """The kinds this runtime can deliver. A row of a kind it does not know is left to the replicas that do
    (a rolling deploy: a newer replica queued it) and dead-lettered, loudly, only once it has waited
    `UNKNOWN_KIND_GRACE` (bot.outbox.worker): then no running replica knows it."""

    def __init__(self) -> None:
        self._kinds: dict[str, Registration[Any]] = {}

    def register(
        self,
        kind: OutboxKind,
        handler: Callable[[Runtime, OutboxItem, P], Result],
        policy: KindPolicy = KindPolicy(),
    ) -> None:
        payload_type: type[Any] = PAYLOADS[kind]
        self._kinds[kind.value] = Registration(kind, handler, policy, payload_type)

    def get(self, kind: str) -> Registration[Any] | None:
        return self._kinds.get(kind)

    def names(self) -> tuple[str, ...]:
        """The kinds registered, sorted (the worker leases only these while they are young)."""
        return tuple(sorted(self._kinds))

    def policy(self, kind: str) -> KindPolicy:
        registration = self._kinds.get(kind)
        return registration.policy if registration else KindPolicy()
