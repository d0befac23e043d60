"""How listeners reach the runtime: a Bolt middleware puts it into every request's context.

Listeners take `context: BoltContext` and call `runtime_of(context)`, as Netflix Dispatch's
`db_middleware` hands its listeners a session; no listener closes over the runtime or reads a global.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext

from bot.app.runtime import Runtime

RUNTIME_KEY = "runtime"


class SharedRuntime:
    """The context's runtime entry. Bolt deep-copies the context for lazy listeners: this one is shared."""

    __slots__ = ("runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedRuntime:
        return self


def runtime_middleware(runtime: Runtime) -> Callable[[BoltContext, Callable[[], None]], None]:
    """A global middleware that gives every listener, error handler and lazy listener the runtime."""

    def put_runtime(context: BoltContext, next: Callable[[], None]) -> None:  # Bolt passes `next` by name
        context[RUNTIME_KEY] = SharedRuntime(runtime)
        next()

    return put_runtime


def runtime_of(context: BoltContext) -> Runtime:
    """The runtime the middleware put into this request's context."""
    shared = context[RUNTIME_KEY]
    if not isinstance(shared, SharedRuntime):
        raise TypeError(f"context[{RUNTIME_KEY!r}] is {type(shared).__name__}, not the hitl runtime")
    return shared.runtime
