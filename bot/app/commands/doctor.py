"""`hitl doctor`: check the database, Slack, the helpdesk, the model and the policy, one line each."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor",
        help="check database, Slack token/scopes/channels/people, helpdesk, model and policy",
        description="Each check prints one line, ✓ or ✗ with how to fix it; exit 0 only when all pass.",
    )
    p.set_defaults(func=run)


def run(_args: argparse.Namespace) -> int:
    from bot.app.doctor import run_checks
    from bot.app.settings import load_settings

    # The checks report Slack's failures on their own line; slack_sdk's own error log would repeat them.
    logging.getLogger("slack_sdk").setLevel(logging.CRITICAL)
    failed = 0
    for check in run_checks(load_settings()):
        print(check.line(), flush=True)
        failed += not check.ok
    print(f"\n{failed} check{'s' if failed != 1 else ''} failed" if failed else "\nall checks passed")
    return 1 if failed else 0
