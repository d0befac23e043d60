"""The `hitl` command: each sub-command lives in bot/commands/ and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn, TextIO

from bot.common.durations import parse_duration

# One module per command group; each has `register(subparsers)` setting `func(args) -> int`.
COMMAND_MODULES = [
    "bot.app.commands.serve",
    "bot.app.commands.db",
    "bot.app.commands.policy",
    "bot.app.commands.demo",
    "bot.app.commands.outbox",
    "bot.app.commands.feedback",
    "bot.app.commands.stats",
    "bot.app.commands.audit",
]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl", description="Humans in charge of AI customer-support replies."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _one_line_errors(parser)
    return parser


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Every (sub-)command reports a usage mistake as one line (`hitl stats: ...`) and exit 2."""

    def one_line_error(message: str, prog: str = parser.prog) -> NoReturn:
        print(f"{prog}: {message} (see `{prog} --help`)", file=sys.stderr)
        sys.exit(2)

    parser.error = one_line_error  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _one_line_errors(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from bot.app.settings import MissingSetting
    from bot.review.policy import PolicyError
    from storage.db import SchemaMismatch

    try:
        return int(args.func(args) or 0)
    except (CliError, MissingSetting, SchemaMismatch, PolicyError) as exc:
        print(f"hitl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hitl stats | head`: the reader left; exit quietly instead of a traceback at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    # Run the package's bot.app.cli, not this __main__ copy: commands raise bot.app.cli.CliError, which
    # `except CliError` here would not catch (python -m bot.app.cli would print a traceback).
    from bot.app.cli import main as package_main

    sys.exit(package_main())
