"""`hitl review --apply TYPE`: accept a type's oversight verdict from the command line.

The same as the Accept button: the verdict is recomputed, the policy change is printed (or written to
`--write-diff PATH`) as a unified diff of the policy file, never applied to it, and recorded with who
accepted it and why. Exit 2 with one line when the type is unknown, its verdict is keep, or there is no
evidence for it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def add_apply_arguments(rv: argparse.ArgumentParser) -> None:
    """The `--apply` options of `hitl review` (its parser lives in bot/app/commands/stats.py)."""
    rv.add_argument(
        "--apply",
        metavar="TYPE",
        help="accept this type's verdict: print the policy change as a diff and record who accepted it",
    )
    rv.add_argument("--reason", metavar="TEXT", help="why the verdict is accepted (with --apply; required)")
    rv.add_argument(
        "--period", metavar="PERIOD", default="30d", help="the evidence period (with --apply; default 30d)"
    )
    rv.add_argument("--write-diff", metavar="PATH", help="write the diff to PATH instead of printing it")
    rv.add_argument("--actor", metavar="NAME", help="who accepts it (default: the OS user)")


def _actor(args: argparse.Namespace) -> str:
    name = (args.actor or "").strip()
    if name:
        return name[:200]
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli"


def _write(path: str, diff: str) -> None:
    from bot.app.commands.common import CliError

    try:
        Path(path).write_text(diff, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--write-diff {path}: {exc.strerror}") from None


def apply(args: argparse.Namespace) -> int:
    """Record the accepted verdict of `--apply TYPE` and print (or write) its diff."""
    from bot.app.commands.common import CliError, existing_runtime
    from bot.reporting.oversight.accept import Acceptance, ChangeRefused, accept
    from bot.reporting.stats.model import BadPeriod, parse_period

    if args.words or args.threshold or args.post:
        raise CliError("--apply takes no period words, --threshold or --post; use --period 30d")
    if not (args.reason or "").strip():
        raise CliError("--apply needs --reason TEXT: why the verdict is accepted (it is recorded)")
    try:
        period = parse_period(args.period)
    except BadPeriod as exc:
        raise CliError(f"--period: {exc}") from None
    runtime = existing_runtime()
    try:
        acceptance = Acceptance(args.apply.strip().lower(), args.reason, _actor(args), "cli", period)
        try:
            accepted = accept(runtime, acceptance)
        except ChangeRefused as exc:
            raise CliError(f"review --apply {args.apply}: {exc}") from None
    finally:
        runtime.engine.dispose()
    change = accepted.change
    if args.write_diff:
        _write(args.write_diff, accepted.diff)
        print(f"diff written to {args.write_diff}", file=sys.stderr)
    else:
        print(accepted.diff, end="")
    print(
        f"recorded oversight change #{change.id} ({change.verdict} {change.interaction_type}: auto_send_at "
        f"{change.before['auto_send_at']} → {change.after['auto_send_at']}) by {change.actor}. "
        + accepted.instructions(),
        file=sys.stderr,
    )
    return 0
