"""What every `hitl` command shares: the one-line user error, `--since`, and `-o FILE`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from bot.common.durations import parse_duration

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.app.runtime import Runtime
    from bot.app.settings import Settings


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def since_arg(text: str | None) -> datetime | None:
    """`--since 7d` as the instant that long ago; None when not given."""
    if not text:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None


@contextmanager
def output_stream(path: str | None) -> Iterator[TextIO]:
    """`-o FILE` opened for writing (a clear error if it cannot be), or standard output."""
    if not path:
        yield sys.stdout
        return
    try:
        out = open(path, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"-o {path}: {exc.strerror}") from None
    with out:
        yield out


def open_existing(settings: Settings) -> Engine:
    """The database of a read-only command: never created here, and refused unless at this schema."""
    from storage.db import check_schema, make_engine

    engine = make_engine(settings.database_url, must_exist=True)
    try:
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def existing_runtime(settings: Settings | None = None) -> Runtime:
    """A runtime over an existing database at this schema (for commands that read, or queue work)."""
    from bot.app.runtime import build_runtime
    from bot.app.settings import load_settings

    settings = settings or load_settings()
    return build_runtime(settings, engine=open_existing(settings), check=False)
