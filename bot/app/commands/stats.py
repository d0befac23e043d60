"""`hitl stats [period] [type]` and `hitl review [period]`: the managers' numbers on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from bot.app.commands.review import add_apply_arguments
from bot.app.commands.review import apply as apply_verdict

if TYPE_CHECKING:
    from bot.app.runtime import Runtime
    from bot.reporting.manager import Command


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    st = sub.add_parser(
        "stats",
        help="volume, decisions, time to decision, SLA, AI error rate, defects, QA",
        description="The numbers of `/hitl stats`, e.g. `hitl stats 7d refund`.",
    )
    st.add_argument(
        "words",
        nargs="*",
        metavar="PERIOD|TYPE",
        help="a period (24h, 7d, 4w, 30d; default 7d) and/or one interaction type",
    )
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.add_argument("--chart", metavar="FILE.png", help="also write the chart as a PNG")
    st.set_defaults(func=stats)

    rv = sub.add_parser(
        "review",
        help="oversight review: expand / keep / increase human involvement per type",
        description="The oversight review of `/hitl review` and the weekly digest, e.g. "
        "`hitl review 30d --threshold refund=0.90`.",
    )
    rv.add_argument("words", nargs="*", metavar="PERIOD|TYPE", help="a period (default 30d) and/or one type")
    rv.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TYPE=X",
        help="what-if with this auto-send threshold for a type (repeatable)",
    )
    rv.add_argument(
        "--post",
        action="store_true",
        help="queue the review as the digest to HITL_MANAGERS_CHANNEL now (a running service sends it)",
    )
    add_apply_arguments(rv)  # issue 12: --apply TYPE (bot/app/commands/review.py)
    rv.set_defaults(func=review)


def _command(action: str, words: list[str], thresholds: list[str] | None = None) -> Command:
    from bot.app.commands.common import CliError
    from bot.reporting.manager import UsageError, parse_command

    text = " ".join([action, *(w.lower() for w in words), *(t.lower() for t in thresholds or [])])
    try:
        return parse_command(text)
    except UsageError as exc:
        message = str(exc).replace(f"`/hitl {action}`", f"`hitl {action}`")
        raise CliError(f"{message} Usage: hitl {action} [period like 7d] [interaction type]") from None


def _runtime() -> Runtime:
    from bot.app.commands.common import existing_runtime

    return existing_runtime()


def stats(args: argparse.Namespace) -> int:
    from bot.app.commands.common import CliError
    from bot.reporting.stats.rollup import cached_stats
    from bot.reporting.stats.text import render_stats_text
    from storage.db import session_scope

    cmd = _command("stats", args.words)
    runtime = _runtime()
    now = runtime.clock.now()
    try:
        with session_scope(runtime.engine, readonly=True) as session:
            result = cached_stats(
                session=session,
                since=now - cmd.span,
                until=now,
                interaction_type=cmd.interaction_type,
                oversight=runtime.policy.oversight,
                now=now,
            )
        print(json.dumps(result.as_dict(), indent=2) if args.json else render_stats_text(result))
        if args.chart:
            from bot.reporting.charts import NO_CHART, stats_chart_png

            png = stats_chart_png(result)
            if png is None:
                print(f"{NO_CHART} Nothing written to {args.chart}.", file=sys.stderr)
                return 0
            try:
                with open(args.chart, "wb") as fh:
                    fh.write(png)
            except OSError as exc:
                raise CliError(f"--chart {args.chart}: {exc.strerror}") from None
            print(f"chart written to {args.chart}", file=sys.stderr)
    finally:
        runtime.engine.dispose()
    return 0


def review(args: argparse.Namespace) -> int:
    if args.apply:
        return apply_verdict(args)
    from bot.app.commands.common import CliError
    from bot.reporting.digest import post_digest
    from bot.reporting.oversight.review import build_review
    from bot.reporting.oversight.text import render_review_text
    from storage.db import session_scope

    cmd = _command("review", args.words, args.threshold)
    runtime = _runtime()
    now = runtime.clock.now()
    try:
        if args.post:
            channel = runtime.settings.managers_channel
            if not channel:
                raise CliError(
                    "--post needs HITL_MANAGERS_CHANNEL (the managers' channel, e.g. #support-managers)"
                )
            post_digest(runtime, now=now, actor="cli")
            print(
                f"oversight digest queued for {channel}; a running `hitl serve` delivers it", file=sys.stderr
            )
            return 0
        with session_scope(runtime.engine, readonly=True) as session:
            result = build_review(
                session=session,
                policy=runtime.policy,
                now=now,
                period=cmd.span,
                interaction_type=cmd.interaction_type,
                thresholds=cmd.thresholds,
                cached=True,
            )
        print(render_review_text(result))
    finally:
        runtime.engine.dispose()
    return 0
