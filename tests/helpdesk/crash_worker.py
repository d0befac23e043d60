"""A delivery process for the crash test: drains `helpdesk_write` rows (and sampled QA cards), then exits.

Run as `python -m tests.helpdesk.crash_worker --db URL --zendesk URL --slack URL` (or `--helpdesk freshdesk
--url URL`, `--helpdesk intercom --url URL`); the test SIGKILLs it
mid-delivery and starts it again. A short lease lets the restart take over the killed process's rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from bot.app.runtime import build_runtime
from bot.app.settings import Settings
from bot.helpdesk import delivery
from bot.outbox.worker import OutboxWorker
from bot.qa import rating
from bot.slack import delivery as slack_delivery
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--helpdesk", default="zendesk", choices=["zendesk", "freshdesk", "intercom"])
    parser.add_argument("--zendesk", help="the Zendesk stand-in's URL (same as --url)")
    parser.add_argument("--url", help="the helpdesk stand-in's URL")
    parser.add_argument("--slack", required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    args = parser.parse_args(argv)
    url = args.url or args.zendesk
    desk = {
        "zendesk": {
            "ZENDESK_URL": url,
            "ZENDESK_EMAIL": "bot@example.com",
            "ZENDESK_API_TOKEN": "zd-test-token",
        },
        "freshdesk": {"FRESHDESK_DOMAIN": url, "FRESHDESK_API_KEY": "fd-test-key"},
        "intercom": {"INTERCOM_API_URL": url, "INTERCOM_ACCESS_TOKEN": "ic-test-token"},
    }[args.helpdesk]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        HITL_DATABASE_URL=args.db,
        HITL_HELPDESK=args.helpdesk,
        **desk,
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_API_URL=args.slack,
        HITL_SCHEDULER=False,
    )
    runtime = build_runtime(settings)
    slack_delivery.install(runtime)  # the Slack clients (users.info finds the approver's email)
    delivery.install(runtime)
    rating.install(runtime)  # a settled human approval may be sampled for QA: its card is a row too
    worker = OutboxWorker(runtime, lease=timedelta(seconds=args.lease), batch=10)
    while True:
        if worker.run_once():
            continue
        with session_scope(runtime.engine, readonly=True) as session:
            left = session.execute(
                select(func.count())
                .select_from(OutboxItem)
                .where(col(OutboxItem.status) == OutboxStatus.PENDING)
            ).scalar_one()
        if not left:
            print("DONE", flush=True)
            return 0
        time.sleep(0.1)  # rows leased by a killed process come back when the lease ends


if __name__ == "__main__":
    sys.exit(main())
