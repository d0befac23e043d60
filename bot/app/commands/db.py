"""`hitl db upgrade|current`: schema migrations (Alembic)."""

from __future__ import annotations

import argparse

from bot.app.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database schema: upgrade, current")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="create or migrate the schema to this version (HITL_DATABASE_URL)")
    up.set_defaults(func=upgrade)
    cur = dsub.add_parser("current", help="show the schema revision and whether it is up to date")
    cur.set_defaults(func=current)


def upgrade(_args: argparse.Namespace) -> int:
    from storage.db import head_revision
    from storage.db import upgrade as do_upgrade

    url = load_settings().database_url
    do_upgrade(url)
    print(f"schema at {head_revision()} ({_safe(url)})")
    return 0


def current(_args: argparse.Namespace) -> int:
    from storage.db import current_revision, head_revision, make_engine

    url = load_settings().database_url
    engine = make_engine(url, must_exist=True)
    try:
        rev = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    print(
        f"{_safe(url)}: schema {rev or 'none'}; this hitl needs {head}"
        + ("" if rev == head else " — run `hitl db upgrade`")
    )
    return 0 if rev == head else 1


def _safe(url: str) -> str:
    from storage.db import safe_url

    return safe_url(url)
