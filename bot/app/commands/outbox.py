"""`hitl outbox list|retry`: see what is waiting or dead-lettered, and send dead rows again."""

from __future__ import annotations

import argparse
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import col, select

from bot.common.clock import SystemClock
from bot.common.durations import format_duration
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("outbox", help="outside writes waiting or dead-lettered: list, retry")
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    ls = osub.add_parser("list", help="rows not yet delivered (pending and dead), newest first")
    ls.add_argument("--dead", action="store_true", help="only dead-lettered rows")
    ls.add_argument("--kind", help="only this kind, e.g. helpdesk_write")
    ls.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    ls.set_defaults(func=list_rows)
    rt = osub.add_parser("retry", help="put dead-lettered rows back in line (attempts start again)")
    rt.add_argument(
        "ids", nargs="*", type=int, metavar="ID", help="outbox row ids (see `hitl outbox list --dead`)"
    )
    rt.add_argument("--all-dead", action="store_true", help="every dead-lettered row")
    rt.set_defaults(func=retry)


def list_rows(args: argparse.Namespace) -> int:
    from bot.app.commands.common import open_existing
    from bot.app.settings import load_settings

    engine = open_existing(load_settings())
    rows = _waiting_rows(engine, dead=args.dead, kind=args.kind, limit=args.limit)
    if not rows:
        print("no dead-lettered rows" if args.dead else "nothing waiting: every outside write is delivered")
        return 0
    _print_table(rows)
    dead = sum(r.status == OutboxStatus.DEAD for r in rows)
    if dead:
        print(
            f"\n{dead} dead-lettered: `hitl outbox retry ID...` or `hitl outbox retry --all-dead` sends them again"
        )
    return 0


def _waiting_rows(engine: Engine, *, dead: bool, kind: str | None, limit: int) -> list[OutboxItem]:
    q = select(OutboxItem).where(
        OutboxItem.status == OutboxStatus.DEAD if dead else OutboxItem.status != OutboxStatus.DONE
    )
    if kind:
        q = q.where(OutboxItem.kind == kind)
    with session_scope(engine, readonly=True) as session:
        rows = list(session.execute(q.order_by(col(OutboxItem.id).desc()).limit(max(1, limit))).scalars())
    engine.dispose()
    return rows


def _print_table(rows: list[OutboxItem]) -> None:
    now = SystemClock().now()
    cols = ("id", "kind", "status", "tries", "age", "next", "order key", "last error")
    cells = [
        (
            str(r.id),
            r.kind,
            r.status,
            str(r.attempts),
            _ago(now, r.created_at),
            _next(now, r.next_attempt_at) if r.status == OutboxStatus.PENDING else "-",
            r.order_key,
            (r.last_error or "").replace("\n", " ")[:70],
        )
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _ago(now: datetime, then: datetime) -> str:
    return format_duration(now - then)


def _next(now: datetime, at: datetime) -> str:
    return "due" if at <= now else "in " + format_duration(at - now)


def retry(args: argparse.Namespace) -> int:
    from bot.app.commands.common import CliError, existing_runtime
    from bot.outbox.worker import requeue

    if bool(args.ids) == bool(args.all_dead):
        raise CliError("give outbox row ids or --all-dead (one of the two)")
    runtime = existing_runtime()
    try:
        count = requeue(runtime=runtime, ids=args.ids or None, all_dead=args.all_dead)
    finally:
        runtime.engine.dispose()
    if args.ids and count < len(set(args.ids)):
        print(f"requeued {count} of {len(set(args.ids))}: the others are not dead-lettered (or do not exist)")
    else:
        print(
            f"requeued {count} dead-lettered row{'s' if count != 1 else ''}; a running `hitl serve` delivers them"
        )
    return 0 if count else 1
