"""How fast does a signed Approve click get its HTTP 200? hitl vs a bare Bolt app, same payloads, same stack.

    .venv/bin/python bench/ack.py [--reviews 100000] [--clicks 500] [--clients 1] [--pg-url URL]

Stores `--reviews` pending reviews (bulk-inserted with SQLAlchemy core), starts the real service (FastAPI +
Bolt adapter under uvicorn; a fresh SQLite file, or with --pg-url a fresh database on that PostgreSQL
server, dropped afterwards) against the local Slack stand-in, and beside it a
bare Bolt app whose Approve listener only acks, mounted the same way. Each click is signed as Slack signs it
and sent to both, alternating; the time is from sending the request to reading the 200. With `--clients N`
(e.g. 8) N threads click at once, each alternating between the two apps. Then a burst of `--clicks` more
Approves goes to hitl alone from the same N clients, timed until every decision is in the database:
decisions recorded per second.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request, Response
from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import func, insert, select, update

from bot.app.asgi import create_app
from bot.app.runtime import build_runtime
from bot.app.settings import Settings
from bot.slack.ids import ActionId, ReviewRef
from handlers.slack import ThreadedSlackRequestHandler
from sandbox.pg import scratch_database
from sandbox.server import ServerThread
from sandbox.slack_sim import block_action_payload, signed_headers
from sandbox.slack_standin import SlackStandin
from storage.db import make_engine, upgrade
from storage.models import Decision, Review

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
CHANNEL = "#support-review"
WARMUP = 20


def store_reviews(url: str, count: int) -> list[tuple[str, str]]:
    """Bulk-insert `count` pending, posted reviews; returns their (id, slack_ts)."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    table = Review.metadata.tables["reviews"]
    cards: list[tuple[str, str]] = []
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(count, start + 5000)):
                review_id, ts = uuid.uuid4().hex, f"{1_700_000_000 + i}.{i % 1_000_000:06d}"
                cards.append((review_id, ts))
                rows.append(
                    {
                        "id": review_id,
                        "idempotency_key": f"bench-{i}",
                        "ticket_id": str(100_000 + i),
                        "interaction_type": "order_status",
                        "confidence": 0.8,
                        "customer_message": "Where is my order? It was due Monday.",
                        "draft": "Hi! Your order shipped yesterday and arrives Thursday.",
                        "subject": "Order",
                        "customer_key": None,
                        "customer": {"name": "Bench Customer", "tier": "standard"},
                        "refund_amount": None,
                        "sentiment": None,
                        "policy_exception": False,
                        "ticket_url": f"https://example.zendesk.com/agent/tickets/{i}",
                        "kb_sources": [],
                        "extra": {},
                        "route": "review",
                        "tier": "standard",
                        "reasons": [{"code": "confidence_medium", "message": "confidence 0.80 below 0.90"}],
                        "supervisor_decisions": [],
                        "status": "pending",
                        "created_at": now - timedelta(minutes=5),
                        "sla_due_at": now + timedelta(minutes=25),
                        "sla_warn_at": now + timedelta(minutes=17),
                        "slack_channel": CHANNEL,
                        "slack_ts": ts,
                        "assignee": None,
                        "decision": None,
                        "decided_by": None,
                        "decided_by_name": None,
                        "decided_at": None,
                        "final_text": None,
                        "helpdesk_state": None,
                    }
                )
            conn.execute(insert(table), rows)
    engine.dispose()
    return cards


def post_cards(url: str, standin: SlackStandin, cards: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Post the cards that will be clicked, so the card updates and thread replies after each ack are real."""
    client = WebClient(token=TOKEN, base_url=standin.base_url)
    engine = make_engine(url)
    posted = []
    with engine.begin() as conn:
        for review_id, _ in cards:
            ts = client.chat_postMessage(channel=CHANNEL, text="Review needed (bench)")["ts"]
            reviews = Review.metadata.tables["reviews"]
            conn.execute(update(reviews).where(reviews.c.id == review_id).values(slack_ts=ts))
            posted.append((review_id, ts))
    engine.dispose()
    return posted


def bare_bolt_app(standin: SlackStandin) -> FastAPI:
    """A Bolt app that only acks Approve, behind Bolt's FastAPI adapter: the floor for any Bolt app."""
    bolt = App(
        signing_secret=SECRET,
        client=WebClient(token=TOKEN, base_url=standin.base_url),
        token_verification_enabled=False,
        process_before_response=False,
    )

    @bolt.action(ActionId.APPROVE)
    def approve(ack: Ack) -> None:
        ack()

    # Mounted exactly as hitl mounts its own (dispatch off the event loop): Bolt's stock FastAPI adapter runs a
    # sync App on the loop and would serialise concurrent clicks, which is no floor for 8 clients.
    handler = ThreadedSlackRequestHandler(bolt, SECRET)
    api = FastAPI()

    @api.post("/slack/events")
    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return api


def click_body(review_id: str, ts: str) -> bytes:
    """A Slack-shaped Approve click on the card of `review_id`, form-encoded as Slack sends it."""
    value = ReviewRef(review_id=review_id).model_dump_json()
    card = {
        "ts": ts,
        "blocks": [
            {
                "type": "actions",
                "block_id": "review_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ActionId.APPROVE,
                        "value": value,
                        "text": {"type": "plain_text", "text": "Approve"},
                    }
                ],
            }
        ],
    }
    user = f"U0BENCH{secrets.randbelow(1000):03d}"
    payload = block_action_payload(message=card, channel=CHANNEL, action_id=ActionId.APPROVE, user_id=user)
    return urlencode({"payload": json.dumps(payload)}).encode()


def timed_post(http: httpx.Client, url: str, body: bytes) -> float:
    """Milliseconds from sending a freshly signed request to reading its 200."""
    headers = signed_headers(SECRET, body)
    started = time.perf_counter()
    resp = http.post(url, content=body, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status_code != 200:
        raise SystemExit(f"{url} answered HTTP {resp.status_code}: {resp.text[:200]}")
    return elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} p50 {percentile(values, 50):6.1f} ms   p90 {percentile(values, 90):6.1f} ms   "
        f"p99 {percentile(values, 99):6.1f} ms   max {max(values):6.1f} ms   mean {statistics.fmean(values):6.1f} ms"
    )


def decisions_in(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(Decision.metadata.tables["decisions"])).scalar_one()
        )


def in_parallel(clients: int, jobs: list[Any], work: Any) -> None:
    """Run `work(http, job)` for every job, `clients` threads at once, each with its own connection."""
    lock = threading.Lock()
    queue = list(reversed(jobs))

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop()
                work(http, job)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def alternating_clicks(
    http: httpx.Client, hitl: str, bare: str, clicks: list[tuple[str, str]], clients: int
) -> dict[str, list[float]]:
    """Warm-up clicks, then each measured click sent to both apps (alternating which goes first)."""
    times: dict[str, list[float]] = {"hitl": [], "bare": []}
    for review_id, ts in clicks[:WARMUP]:
        timed_post(http, hitl + "/slack/events", click_body(review_id, ts))
        timed_post(http, bare + "/slack/events", click_body(review_id, ts))

    def alternate(client: httpx.Client, job: tuple[int, tuple[str, str]]) -> None:
        n, (review_id, ts) = job
        body = click_body(review_id, ts)
        for name, url in (("hitl", hitl), ("bare", bare)) if n % 2 else (("bare", bare), ("hitl", hitl)):
            times[name].append(timed_post(client, url + "/slack/events", body))  # atomic under the GIL

    in_parallel(clients, list(enumerate(clicks[WARMUP:])), alternate)
    return times


@contextmanager
def bench_database(pg_url: str | None, database_url: str | None) -> Iterator[str]:
    """The database to run on: the caller's own, a fresh one on a PostgreSQL server, or a fresh SQLite file."""
    if database_url:
        yield database_url
        return
    if not pg_url:
        with tempfile.TemporaryDirectory(prefix="hitl-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    with scratch_database(pg_url, "hitl_ack") as url:
        yield url


def reviews_in(url: str) -> int:
    """How many reviews the database holds (after migrating it, which an empty database needs anyway)."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Review)).scalar_one())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reviews", type=int, default=100_000, help="pending reviews stored first (default 100000)"
    )
    parser.add_argument("--clicks", type=int, default=500, help="measured clicks per app (default 500)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1; e.g. 8)")
    parser.add_argument(
        "--pg-url",
        help="a PostgreSQL server URL (e.g. HITL_TEST_POSTGRES_URL): the bench makes a fresh database there "
        "and drops it afterwards (default: a fresh SQLite file in a temporary directory)",
    )
    parser.add_argument("--database-url", help="an empty database of your own instead (left as it ends)")
    args = parser.parse_args(argv)
    if 2 * args.clicks + WARMUP > args.reviews:
        parser.error("--reviews must be at least 2 x --clicks + 20 (each click decides a different review)")

    with bench_database(args.pg_url, args.database_url) as url:
        if (stored := reviews_in(url)) > 0:
            parser.error(f"{url} already holds {stored:,} reviews: give an empty database (or --pg-url)")
        return run(url, args)


def run(url: str, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    cards = store_reviews(url, args.reviews)
    print(
        f"stored {args.reviews:,} pending reviews in {time.perf_counter() - started:.1f}s ({make_engine(url).dialect.name})"
    )

    # The stand-in enforces Slack's 1 post/s per channel; the bench posts its cards in bulk and one thread reply
    # per click into one channel, so it lifts that limit: what is measured is the ack, not the drain.
    standin = SlackStandin(token=TOKEN, post_rate_per_channel=10_000, burst=10_000).start()
    posted = post_cards(url, standin, cards[: 2 * args.clicks + WARMUP])
    clicks, burst = posted[: args.clicks + WARMUP], posted[args.clicks + WARMUP :]
    env = {
        "HITL_DATABASE_URL": url,
        "HITL_INGEST_TOKEN": "bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": standin.base_url,
        "HITL_SCHEDULER": False,
    }
    settings = Settings(_env_file=None, **env)  # type: ignore[call-arg,arg-type]
    runtime = build_runtime(settings)
    with (
        ServerThread(create_app(runtime)) as hitl,
        ServerThread(bare_bolt_app(standin)) as bare,
        httpx.Client(timeout=10) as http,
    ):
        times = alternating_clicks(http, hitl.url, bare.url, clicks, args.clients)
        deadline = time.monotonic() + 60
        while decisions_in(runtime.engine) < len(clicks) and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.perf_counter()
        in_parallel(
            args.clients,
            burst,
            lambda client, card: timed_post(client, hitl.url + "/slack/events", click_body(*card)),
        )
        while (decided := decisions_in(runtime.engine)) < len(posted) and time.monotonic() < deadline + 60:
            time.sleep(0.01)
        burst_secs = time.perf_counter() - start
        deadline = time.monotonic() + 30
        while (done := len(standin.messages()) - len(posted)) < len(posted) and time.monotonic() < deadline:
            time.sleep(0.1)  # every decision's thread reply has reached Slack
    standin.stop()
    runtime.engine.dispose()

    mode = "sequential" if args.clients == 1 else f"{args.clients} concurrent clients"
    print(f"{args.clicks} measured clicks per app ({WARMUP} warm-up), {mode}, alternating, same payloads:")
    print(summary("hitl (record + queue)", times["hitl"]))
    print(summary("bare Bolt (ack only)", times["bare"]))
    print(
        f"hitl overhead at p50: {percentile(times['hitl'], 50) - percentile(times['bare'], 50):+.1f} ms; "
        f"ratio {percentile(times['hitl'], 50) / percentile(times['bare'], 50):.2f}x; "
        f"decisions recorded: {decided}/{len(posted)}, thread replies in Slack: {done}/{len(posted)}"
    )
    print(
        f"burst of {len(burst)} Approves to hitl alone, {mode}: "
        f"{len(burst) / burst_secs:.0f} decisions recorded per second (click sent to row committed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
