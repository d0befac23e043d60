"""hitl beside awaithumans (the closest open-source peer: FastAPI + SQLModel), in one run, interleaved.

    .venv/bin/pip install -e '.[bench]'          # once: awaithumans[server] (never needed by the app or tests)
    .venv/bin/python bench/peer.py [--creates 10000] [--approves 500] [--clients 8] [--pg-url URL]

Installs nothing itself; without awaithumans it says how to install it and exits 0. Each app runs as its own
uvicorn process on the same database backend (SQLite, then PostgreSQL when --pg-url or
HITL_TEST_POSTGRES_URL is given, in a database made for the run):
- create: `--creates` creates per app from `--clients` clients, in interleaved rounds (POST /v1/drafts for
  hitl; POST /api/tasks with the admin token for awaithumans): throughput, p50, p99. They are what is stored.
- approve: `--approves` approvals per app with all of that stored, the two apps alternating click by click
  (hitl: a signed Slack Approve on the review's posted card, the path a reviewer takes, answered by the
  local Slack stand-in; awaithumans: POST /api/tasks/{id}/complete, its own approve path): p50, p99.
- recorded per second: `--approves` more approvals to one app at a time, timed until the last is in the
  database (hitl acks first and records after; awaithumans records before answering).
- RSS of each server process at the end (VmRSS, and the peak VmHWM).
Neither app talks to Slack on its own here: hitl's outbox worker is off (the bench posts the clicked cards to
the stand-in itself; the decisions' Slack and helpdesk deliveries are queued, not sent), awaithumans has no
Slack configured.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slack_sdk import WebClient  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from bot.slack.ids import ActionId, ReviewRef  # noqa: E402
from sandbox.pg import scratch_database  # noqa: E402
from sandbox.server import free_port  # noqa: E402
from sandbox.slack_sim import block_action_payload, signed_headers  # noqa: E402
from sandbox.slack_standin import SlackStandin  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import Decision, Review  # noqa: E402

INGEST_TOKEN = "bench-ingest"
ADMIN_TOKEN = "bench-admin"
SECRET = "bench-signing-secret"
SLACK_TOKEN = "xoxb-bench"
CHANNEL = "#support-review"


# ---------------------------------------------------------------- the two servers (child processes)


def serve_hitl(url: str, port: int, slack_url: str) -> None:
    import uvicorn

    from bot.app.asgi import create_app
    from bot.app.runtime import build_runtime
    from bot.app.settings import Settings

    settings = Settings(
        _env_file=None,
        HITL_DATABASE_URL=url,
        HITL_INGEST_TOKEN=INGEST_TOKEN,  # type: ignore[call-arg]
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_API_URL=slack_url,
        HITL_SCHEDULER=False,
        HITL_OUTBOX_WORKER=False,  # the bench posts the cards itself: Slack's 1 post/s per channel is no load
    )
    uvicorn.run(create_app(build_runtime(settings)), host="127.0.0.1", port=port, log_level="warning")


def serve_peer(port: int) -> None:
    import uvicorn
    from awaithumans.server.app import create_app  # type: ignore[import-not-found]

    uvicorn.run(create_app(serve_dashboard=False), host="127.0.0.1", port=port, log_level="warning")


def peer_env(url: str, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AWAITHUMANS_ADMIN_API_TOKEN": ADMIN_TOKEN,
        "AWAITHUMANS_PAYLOAD_KEY": base64.b64encode(os.urandom(32)).decode(),
        "AWAITHUMANS_LOG_LEVEL": "WARNING",
    }
    if url.startswith("sqlite"):
        env["AWAITHUMANS_DB_PATH"] = str(
            workdir / "peer.db"
        )  # its sync (alembic) and async URLs from one path
    else:
        env["AWAITHUMANS_DATABASE_URL"] = url
    return env


@contextmanager
def child(
    args: list[str], health: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=env)
    try:
        for _ in range(300):
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{health} never answered")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# ---------------------------------------------------------------- load


def in_parallel(clients: int, jobs: list[Any], work: Callable[[httpx.Client, Any], float]) -> list[float]:
    """Run `work(http, job)` for every job from `clients` threads; its latencies in ms."""
    lock = threading.Lock()
    queue = list(reversed(jobs))
    out: list[float] = []

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop()
                out.append(work(http, job))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def timed(http: httpx.Client, method: str, url: str, ok: int, **kw: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    resp = http.request(method, url, **kw)
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status_code != ok:
        raise SystemExit(f"{url} answered HTTP {resp.status_code}: {resp.text[:300]}")
    return elapsed, resp


def draft(i: int, run: str) -> dict[str, Any]:
    return {
        "ticket_id": f"{run}-{i}",
        "interaction_type": "order_status",
        "confidence": 0.8,
        "customer_message": "Where is my order? It was due on Monday. " * 4,
        "draft": "Hi! Your order shipped yesterday and should arrive on Thursday. Tracking: NW123456.",
        "customer": {"id": f"cus_{i % 997}", "name": "Pat", "tier": "standard"},
        "idempotency_key": f"{run}-{i}",
    }


def task(i: int, run: str) -> dict[str, Any]:
    d = draft(i, run)
    return {
        "task": f"Approve the reply to ticket {d['ticket_id']}",
        "payload": {k: d[k] for k in ("ticket_id", "customer_message", "draft", "confidence")},
        "payload_schema": {},
        "response_schema": {},
        "timeout_seconds": 3600,
        "idempotency_key": d["idempotency_key"],
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class Apps:
    """The two running apps, and how each is asked to create and to approve."""

    def __init__(self, hitl: str, peer: str, hitl_db: str) -> None:
        self.hitl, self.peer, self.engine = hitl, peer, make_engine(hitl_db)
        self.created: dict[str, list[str]] = {"hitl": [], "awaithumans": []}
        self.lock = threading.Lock()

    def create(self, name: str, run: str, numbers: list[int], clients: int) -> tuple[float, list[float]]:
        def one(http: httpx.Client, i: int) -> float:
            if name == "hitl":
                headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
                ms, resp = timed(
                    http, "POST", f"{self.hitl}/v1/drafts", 201, json=draft(i, run), headers=headers
                )
            else:
                headers = {"x-admin-token": ADMIN_TOKEN}
                ms, resp = timed(
                    http, "POST", f"{self.peer}/api/tasks", 201, json=task(i, run), headers=headers
                )
            with self.lock:
                self.created[name].append(resp.json()["id"])
            return ms

        started = time.perf_counter()
        lat = in_parallel(clients, numbers, one)
        return time.perf_counter() - started, lat

    def cards(self, ids: list[str], slack: SlackStandin) -> list[tuple[str, str, str]]:
        """Post the cards of `ids` as the outbox would (it is off: Slack's pacing is not what is measured)."""
        reviews = Review.metadata.tables["reviews"]
        client = WebClient(token=SLACK_TOKEN, base_url=slack.base_url)
        out = []
        with self.engine.begin() as conn:
            for review_id in ids:
                ts = str(client.chat_postMessage(channel=CHANNEL, text="Review needed (bench)")["ts"])
                conn.execute(
                    update(reviews)
                    .where(reviews.c.id == review_id)
                    .values(slack_channel=CHANNEL, slack_ts=ts)
                )
                out.append((review_id, CHANNEL, ts))
        return out

    def approve(self, name: str, job: Any) -> Callable[[httpx.Client], float]:
        if name == "hitl":
            review_id, channel, ts = job
            body = click_body(review_id, channel, ts)
            return lambda http: timed(
                http,
                "POST",
                f"{self.hitl}/slack/events",
                200,
                content=body,
                headers=signed_headers(SECRET, body),
            )[0]
        answer = {"response": {"approved": True}, "completed_by_email": "reviewer@example.com"}
        url = f"{self.peer}/api/tasks/{job}/complete"
        return lambda http: timed(
            http, "POST", url, 200, json=answer, headers={"x-admin-token": ADMIN_TOKEN}
        )[0]

    def decisions(self) -> int:
        with self.engine.connect() as conn:
            table = Decision.metadata.tables["decisions"]
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def click_body(review_id: str, channel: str, ts: str) -> bytes:
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
                        "value": ReviewRef(review_id=review_id).model_dump_json(),
                        "text": {"type": "plain_text", "text": "Approve"},
                    }
                ],
            }
        ],
    }
    payload = block_action_payload(
        message=card,
        channel=channel,
        action_id=ActionId.APPROVE,
        user_id=f"U0B{uuid.uuid4().hex[:6].upper()}",
    )
    return urlencode({"payload": json.dumps(payload)}).encode()


# ---------------------------------------------------------------- one backend


def compare(label: str, hitl_db: str, peer_db: str, args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hitl-peer-"))
    upgrade(hitl_db)
    standin = SlackStandin(token=SLACK_TOKEN, post_rate_per_channel=10_000, burst=10_000).start()
    hitl_port, peer_port = free_port(), free_port()
    hitl_args = ["--serve-hitl", hitl_db, "--port", str(hitl_port), "--slack", standin.base_url]
    try:
        with (
            child(hitl_args, f"http://127.0.0.1:{hitl_port}/healthz") as hitl_proc,
            child(
                ["--serve-peer", "--port", str(peer_port)],
                f"http://127.0.0.1:{peer_port}/api/health",
                env=peer_env(peer_db, workdir),
            ) as peer_proc,
        ):
            apps = Apps(f"http://127.0.0.1:{hitl_port}", f"http://127.0.0.1:{peer_port}", hitl_db)
            pids = {"hitl": hitl_proc.pid, "awaithumans": peer_proc.pid}
            report(label, apps, args, pids, standin)
    finally:
        standin.stop()


NAMES = ("hitl", "awaithumans")
ROUNDS = 4


def create_phase(apps: Apps, args: argparse.Namespace) -> dict[str, tuple[float, list[float]]]:
    """Warm-up, then `--creates` per app in interleaved rounds: (seconds, latencies) per app."""
    run = uuid.uuid4().hex[:8]
    for name in NAMES:  # warm-up, not in the figures
        apps.create(name, run + "w", list(range(50)), args.clients)
    create: dict[str, tuple[float, list[float]]] = {n: (0.0, []) for n in NAMES}
    per = args.creates // ROUNDS
    for r in range(ROUNDS):
        for name in NAMES if r % 2 == 0 else NAMES[::-1]:
            secs, lat = apps.create(name, run, list(range(r * per, (r + 1) * per)), args.clients)
            create[name] = (create[name][0] + secs, create[name][1] + lat)
    return create


def approve_phase(
    apps: Apps, args: argparse.Namespace, cards: list[Any], tasks: list[str]
) -> dict[str, list[float]]:
    """Approvals, the two apps alternating click by click: latencies per app."""
    approve: dict[str, list[float]] = {n: [] for n in NAMES}
    pairs = list(enumerate(zip(cards, tasks, strict=True)))

    def both(http: httpx.Client, job: tuple[int, tuple[Any, Any]]) -> float:
        n, (card, tid) = job
        order = ((("hitl", card), ("awaithumans", tid)), (("awaithumans", tid), ("hitl", card)))[n % 2]
        for name, target in order:
            approve[name].append(apps.approve(name, target)(http))
        return 0.0

    in_parallel(args.clients, pairs, both)
    return approve


def recorded_phase(apps: Apps, args: argparse.Namespace, jobs: dict[str, list[Any]]) -> dict[str, float]:
    """Approvals to one app at a time, timed until the last is in the database: per second."""
    recorded: dict[str, float] = {}
    for name in NAMES:
        target = apps.decisions() + len(jobs[name])
        started = time.perf_counter()
        in_parallel(args.clients, jobs[name], lambda http, job, name=name: apps.approve(name, job)(http))
        while name == "hitl" and apps.decisions() < target and time.perf_counter() - started < 120:
            time.sleep(0.01)
        recorded[name] = len(jobs[name]) / (time.perf_counter() - started)
    return recorded


def report(
    label: str, apps: Apps, args: argparse.Namespace, pids: dict[str, int], slack: SlackStandin
) -> None:
    create = create_phase(apps, args)
    need = 2 * args.approves
    hitl_cards = apps.cards(apps.created["hitl"][50 : 50 + need], slack)
    peer_tasks = apps.created["awaithumans"][50 : 50 + need]
    approve = approve_phase(apps, args, hitl_cards[: args.approves], peer_tasks[: args.approves])
    recorded = recorded_phase(
        apps, args, {"hitl": hitl_cards[args.approves :], "awaithumans": peer_tasks[args.approves :]}
    )
    rss = {n: rss_mb(pids[n]) for n in NAMES}
    print(
        f"\n{label}: {args.creates} creates per app ({ROUNDS} interleaved rounds), {args.approves} approvals"
    )
    print(f"  {args.clients} clients; {args.creates + 50} stored per app when approving")
    print(
        f"  {'':<12} {'create/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'approve p50':>12} {'p99':>7} "
        f"{'recorded/s':>11} {'RSS MB':>7} {'peak':>6}"
    )
    for name in NAMES:
        secs, lat = create[name]
        print(
            f"  {name:<12} {len(lat) / secs:>9.0f} {statistics.median(lat):>7.1f} {pct(lat, 0.99):>7.1f} "
            f"{statistics.median(approve[name]):>12.1f} {pct(approve[name], 0.99):>7.1f} "
            f"{recorded[name]:>11.0f} {rss[name][0]:>7.0f} {rss[name][1]:>6.0f}"
        )
    h, p = create["hitl"], create["awaithumans"]
    print(
        "  hitl / awaithumans: "
        f"create throughput {(len(h[1]) / h[0]) / (len(p[1]) / p[0]):.2f}x, "
        f"create p50 {statistics.median(p[1]) / statistics.median(h[1]):.2f}x faster, "
        f"approve p50 {statistics.median(approve['awaithumans']) / statistics.median(approve['hitl']):.2f}x faster, "
        f"approvals recorded/s {recorded['hitl'] / recorded['awaithumans']:.2f}x, "
        f"RSS {rss['hitl'][0] / rss['awaithumans'][0]:.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--creates", type=int, default=10_000, help="creates per app, all stored (default 10000)"
    )
    parser.add_argument("--approves", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pg-url", default=os.environ.get("HITL_TEST_POSTGRES_URL"))
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--serve-hitl", help=argparse.SUPPRESS)
    parser.add_argument("--serve-peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slack", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hitl:
        serve_hitl(args.serve_hitl, args.port, args.slack)
        return 0
    if args.serve_peer:
        serve_peer(args.port)
        return 0
    if importlib.util.find_spec("awaithumans") is None:
        print(
            "awaithumans is not installed, so there is nothing to compare with. Install the optional extra:\n"
            "    .venv/bin/pip install -e '.[bench]'     # or: .venv/bin/pip install 'awaithumans[server]==0.1.12'"
        )
        return 0
    if 2 * args.approves > args.creates:
        parser.error("--creates must be at least 2 x --approves (each approval decides a different item)")
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            compare("SQLite", f"sqlite:///{tmp}/hitl.db", "sqlite", args)
    if args.pg_url:
        with (
            scratch_database(args.pg_url, "hitl_peer") as hitl_db,
            scratch_database(args.pg_url, "peer_peer") as peer_db,
        ):
            compare("PostgreSQL", hitl_db, peer_db, args)
    else:
        print("\nPostgreSQL: skipped (give --pg-url or set HITL_TEST_POSTGRES_URL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
