"""What every `hitl` command shares: the one-line user error, `--since`, and `-o FILE`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO

from bot.common.durations import parse_duration


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
