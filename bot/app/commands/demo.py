"""`hitl demo`: the whole loop offline, on SQLite, with local stand-ins for Slack and Zendesk."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the whole loop offline on sample tickets (no setup needed)")
    p.add_argument("--keep", action="store_true", help="keep the demo's SQLite database afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.demo.runner import run_demo

    return run_demo(keep=args.keep)
