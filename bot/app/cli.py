"""The `hitl` command: each sub-command lives in bot/app/commands/ and registers itself here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from bot.app.commands import audit, db, demo, doctor, feedback, outbox, policy, serve, stats
from bot.app.commands.common import CliError
from bot.app.logging import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl", description="Humans in charge of AI customer-support replies."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # One module per command group; each has `register(subparsers)` setting `func(args) -> int`.
    for command in (serve, db, policy, demo, outbox, feedback, stats, audit, doctor):
        command.register(sub)
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
    # Before settings are read (they may be what is wrong): the format from the environment only.
    # `hitl serve` configures again from its settings, with its instance id and secrets to redact.
    configure_logging(
        level=logging.INFO if args.verbose else logging.WARNING, fmt=os.environ.get("HITL_LOG_FORMAT", "text")
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from bot.app.settings import MissingSetting, SettingsError
    from bot.review.policy import PolicyError
    from storage.db import DatabaseUnavailable, SchemaMismatch

    try:
        return int(args.func(args) or 0)
    except (CliError, MissingSetting, SettingsError, SchemaMismatch, PolicyError, DatabaseUnavailable) as exc:
        # One line per problem (a SettingsError names each bad variable on its own line).
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"hitl: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hitl stats | head`: the reader left; exit quietly instead of a traceback at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
