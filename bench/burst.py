"""A burst of reviews into one tier channel, against the Slack stand-in at Slack's own rate.

    .venv/bin/python bench/burst.py [--reviews 60] [--rate 1.0] [--replicas 1,2] [--database-url URL]

For each replica count: a fresh database gets `--reviews` drafts routed to review (all for
#support-review, as a morning backlog or a bulk import brings them), then that many service replicas
(outbox workers on the one database) drain them into a stand-in that allows `--rate` posts per second
per channel, burst 3, 429 with Retry-After beyond (Slack: about 1 a second). Prints the drain rate as a
share of the allowed rate (goal >= 0.95), the 429s Slack had to send, cards posted twice for one review
(goal 0) and dead letters (goal 0). At the real rate 500 reviews take 500 s: the defaults finish in
about two minutes; `--reviews 500` is the full run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import Settings
from bot.app.workers import install_workers
from bot.review.ingest import DraftIn, ingest_draft
from sandbox.pg import scratch_database
from sandbox.slack_standin import SlackStandin
from storage.db import session_scope, upgrade
from storage.models import OutboxItem, OutboxStatus, Review

TOKEN = "xoxb-bench"
CHANNEL = "#support-review"


@dataclass
class Figures:
    replicas: int
    reviews: int
    seconds: float
    first_to_last: float
    rate_limited: int
    doubled: int
    dead: int
    retried: int

    def report(self, rate: float) -> str:
        drain = (self.reviews - 1) / self.first_to_last if self.first_to_last > 0 else float("nan")
        return (
            f"replicas={self.replicas}  reviews={self.reviews}  allowed={rate:g}/s  "
            f"drain={drain:.3f}/s  share={drain / rate:.3f}  (all posted in {self.seconds:.1f}s)  "
            f"429s={self.rate_limited}  cards doubled={self.doubled}  dead letters={self.dead}  "
            f"rows retried={self.retried}"
        )


@contextmanager
def fresh_database(base: str | None, workdir: Path) -> Iterator[str]:
    """An empty database with the schema: a SQLite file, or a scratch database on `base`'s PostgreSQL
    server, dropped afterwards."""
    if base is None:
        url = f"sqlite:///{workdir / f'burst-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url
        return
    with scratch_database(base, "hitl_burst") as url:
        upgrade(url)
        yield url


def replica(url: str, standin: SlackStandin, rate: float, n: int) -> Runtime:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        HITL_DATABASE_URL=url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_URL=standin.base_url,
        HITL_SCHEDULER=False,
        HITL_SLACK_POST_PER_SECOND=rate,
        HITL_INSTANCE_ID=f"replica-{n}",
        HITL_OUTBOX_POLL_SECONDS=0.2,
    )
    rt = build_runtime(settings)
    install_workers(rt)
    return rt


def ingest(rt: Runtime, count: int) -> None:
    with session_scope(rt.engine) as session:
        for i in range(count):
            draft = DraftIn.model_validate(
                {
                    "ticket_id": f"B{i}",
                    "interaction_type": "order_status",
                    "confidence": 0.75,
                    "customer_message": "Where is my order? It was due Monday.",
                    "draft": "Hi! Your order shipped yesterday and should arrive Thursday.",
                    "customer": {"id": f"cus_{i}", "name": "Bench Customer", "tier": "standard"},
                }
            )
            ingest_draft(session=session, draft=draft, policy=rt.policy, now=rt.clock.now())


def posted(rt: Runtime) -> int:
    with session_scope(rt.engine, readonly=True) as session:
        q = select(func.count()).select_from(Review).where(Review.slack_ts.is_not(None))  # type: ignore[union-attr]
        return int(session.execute(q).scalar_one())


def run(replicas: int, reviews: int, rate: float, base_url: str | None, workdir: Path) -> Figures:
    standin = SlackStandin(token=TOKEN, post_rate_per_channel=rate, burst=3, channel_ids=True).start()
    standin.add_channel(CHANNEL)
    with fresh_database(base_url, workdir) as url:
        runtimes = [replica(url, standin, rate, n + 1) for n in range(replicas)]
        ingest(runtimes[0], reviews)
        started = time.monotonic()
        for rt in runtimes:
            rt.start()
        deadline = started + reviews / rate * 3 + 60
        while posted(runtimes[0]) < reviews and time.monotonic() < deadline:
            time.sleep(0.2)
        seconds = time.monotonic() - started
        for rt in runtimes:
            rt.stop()
        figures = measure(runtimes[0], standin, replicas, reviews, seconds)
        for rt in runtimes:
            rt.engine.dispose()
    standin.stop()
    return figures


def cards_per_review(standin: SlackStandin) -> dict[str, int]:
    """How many cards the channel holds for each review (from the cards' metadata)."""
    per_review: dict[str, int] = {}
    for m in standin.messages(CHANNEL):
        review_id = ((m.get("metadata") or {}).get("event_payload") or {}).get("review_id")
        if review_id:
            per_review[review_id] = per_review.get(review_id, 0) + 1
    return per_review


def measure(rt: Runtime, standin: SlackStandin, replicas: int, reviews: int, seconds: float) -> Figures:
    calls = standin.calls("chat.postMessage")
    ok = [c["time"] for c in calls if c["status"] == 200]
    per_review = cards_per_review(standin)
    with session_scope(rt.engine, readonly=True) as session:
        rows = list(session.execute(select(OutboxItem)).scalars())
    dead, retried = outbox_figures(rows)
    return Figures(
        replicas=replicas,
        reviews=len(per_review),
        seconds=seconds,
        first_to_last=(max(ok) - min(ok)) if len(ok) > 1 else 0.0,
        rate_limited=sum(1 for c in calls if c["status"] == 429),
        doubled=sum(n - 1 for n in per_review.values()),
        dead=dead,
        retried=retried,
    )


def outbox_figures(rows: list[OutboxItem]) -> tuple[int, int]:
    """(dead letters, rows that needed more than one attempt)."""
    return sum(1 for r in rows if r.status == OutboxStatus.DEAD), sum(1 for r in rows if r.attempts > 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=60, help="reviews in the burst (500: the full run)")
    parser.add_argument("--rate", type=float, default=1.0, help="posts per second per channel (Slack: 1)")
    parser.add_argument("--replicas", default="1,2", help="replica counts to run, comma-separated")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("HITL_BENCH_POSTGRES_URL"),
        help="PostgreSQL server to create scratch databases on (default: SQLite files)",
    )
    args = parser.parse_args()
    print(f"burst: {args.reviews} reviews into {CHANNEL}, stand-in allows {args.rate:g} posts/s, burst 3")
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(n) for n in args.replicas.split(",")):
            figures = run(count, args.reviews, args.rate, args.database_url, Path(tmp))
            print(figures.report(args.rate), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
