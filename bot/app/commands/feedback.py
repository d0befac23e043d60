"""`hitl feedback export`: the feedback store as OpenAI fine-tuning files (SFT, DPO) or raw JSONL."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("sft", "dpo", "jsonl")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("feedback", help="the feedback store: export training data")
    fsub = p.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    exp = fsub.add_parser(
        "export",
        help="write decisions as JSONL: sft (approved/edited replies), dpo (edited pairs), jsonl (raw rows)",
        description="SFT: approved and edited replies, plus auto-sent replies a QA reviewer rated Good. "
        "DPO: one pair per edited draft, the human's text preferred. jsonl: every decision row.",
    )
    exp.add_argument("--format", dest="fmt", metavar="sft|dpo|jsonl", help="output format (required)")
    exp.add_argument("--since", metavar="AGE", help="only decisions newer than this, e.g. 30d, 12h")
    exp.add_argument(
        "--type", dest="interaction_type", metavar="TYPE", help="only this interaction type, e.g. refund"
    )
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    exp.add_argument(
        "--mask-pii", action="store_true", help="mask emails, phones, cards, IBANs and national ids"
    )
    exp.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from bot.app.commands.common import CliError, open_existing, output_stream, since_arg
    from bot.app.settings import load_settings
    from bot.reporting.feedback import export as write_export
    from storage.db import session_scope

    if args.fmt not in FORMATS:
        raise CliError(
            f"--format must be one of {', '.join(FORMATS)}" + (f" (got {args.fmt!r})" if args.fmt else "")
        )
    since = since_arg(args.since)
    engine = open_existing(load_settings())
    try:
        with output_stream(args.output) as out, session_scope(engine, readonly=True) as session:
            count = write_export(
                session=session,
                fmt=args.fmt,
                out=out,
                since=since,
                interaction_type=args.interaction_type,
                mask=args.mask_pii,
            )
    finally:
        engine.dispose()
    print(
        f"{count} {args.fmt} lines" + (f" written to {args.output}" if args.output else ""), file=sys.stderr
    )
    return 0
