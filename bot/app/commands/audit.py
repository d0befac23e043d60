"""`hitl audit export [--since 7d] [-o FILE]`: the audit log as JSON Lines."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit", help="the audit log: export it")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    exp = asub.add_parser(
        "export",
        help="write the audit log as JSON Lines, oldest first",
        description="Every ingest, Slack post, click (allowed or refused), decision, helpdesk "
        "write-back, SLA ping and policy change, with who and when.",
    )
    exp.add_argument("--since", metavar="AGE", help="only events newer than this, e.g. 7d, 24h")
    exp.add_argument("--action", metavar="ACTION", help="only this action, e.g. decision, policy_changed")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    exp.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from bot.app.commands.common import open_existing, output_stream, since_arg
    from bot.app.settings import load_settings
    from bot.reporting.audit import export_audit
    from storage.db import session_scope

    since = since_arg(args.since)
    engine = open_existing(load_settings())
    try:
        with output_stream(args.output) as out, session_scope(engine, readonly=True) as session:
            count = export_audit(session=session, out=out, since=since, action=args.action)
    finally:
        engine.dispose()
    print(f"{count} audit events" + (f" written to {args.output}" if args.output else ""), file=sys.stderr)
    return 0
