"""Ingest throughput and latency: POST /v1/drafts at 8 concurrent clients, beside a floor.

The floor is a bare endpoint on the same server stack (FastAPI + uvicorn, same engine and
database) that inserts the same row with no auth, validation, dedupe, routing or outbox.
The ratio of the two says what our own work costs; absolute numbers depend on the machine.

    python bench/ingest.py [--requests 4000] [--clients 8] [--rounds 4] [--pg-url URL]

The requests are split into `--rounds` rounds; each round loads both endpoints, alternating which goes
first, so a noisy neighbour on a shared machine weighs on both alike.

PostgreSQL runs when --pg-url or HITL_TEST_POSTGRES_URL is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


def serve(url: str, port: int) -> None:
    """Run in a child process: the real app plus a bare insert endpoint."""
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from fastapi.concurrency import run_in_threadpool

    from bot.app.asgi import create_app
    from bot.app.runtime import build_runtime
    from bot.app.settings import Settings
    from storage.db import session_scope
    from storage.models import Review

    settings = Settings(
        _env_file=None,
        HITL_DATABASE_URL=url,
        HITL_INGEST_TOKEN=TOKEN,  # type: ignore[call-arg]
        HITL_OUTBOX_WORKER=False,
        HITL_SCHEDULER=False,
    )
    runtime = build_runtime(settings)
    app = create_app(runtime)

    @app.post("/bench/bare")
    async def bare(request: Request) -> JSONResponse:
        data = json.loads(await request.body())

        def insert() -> str:
            rid = uuid.uuid4().hex
            with session_scope(runtime.engine) as s:
                s.add(
                    Review(
                        id=rid,
                        idempotency_key=data["idempotency_key"],
                        ticket_id=data["ticket_id"],
                        interaction_type=data["interaction_type"],
                        confidence=data["confidence"],
                        customer_message=data["customer_message"],
                        draft=data["draft"],
                        route="review",
                        tier="standard",
                        created_at=runtime.clock.now(),
                    )
                )
            return rid

        return JSONResponse({"id": await run_in_threadpool(insert)}, status_code=201)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def body(i: int, run: str) -> dict[str, object]:
    return {
        "ticket_id": f"{run}-{i}",
        "interaction_type": ["order_status", "refund", "billing"][i % 3],
        "confidence": 0.5 + (i % 50) / 100,
        "customer_message": "Where is my order? It was due on Monday. " * 4,
        "draft": "Hi! Your order shipped yesterday and should arrive on Thursday. Tracking: NW123456.",
        "customer": {"id": f"cus_{i % 997}", "name": "Pat", "tier": "standard", "account_value": 300},
        "idempotency_key": f"{run}-{i}",
    }


def load(base: str, path: str, requests: int, clients: int) -> tuple[float, list[float], int]:
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per = requests // clients

    def client(k: int) -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
            for j in range(per):
                payload = body(k * per + j, run)
                t0 = time.perf_counter()
                r = c.post(path, json=payload)
                mine.append(time.perf_counter() - t0)
                bad += r.status_code != 201
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, errors


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def wait_until_up(name: str, proc: subprocess.Popen[bytes], base: str) -> None:
    """Wait for the server's /healthz; stop at once if it died (an import error, a port taken)."""
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"the {name} server exited (code {proc.returncode}) before answering")
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the {name} server never answered /healthz")


def bench_backend(name: str, url: str, requests: int, clients: int, rounds: int = 4) -> None:
    sys.path.insert(0, str(ROOT))
    from sandbox.server import free_port
    from storage.db import upgrade

    upgrade(url)
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(name, proc, base)
        load(base, "/v1/drafts", 200, clients)  # warm-up
        load(base, "/bench/bare", 200, clients)
        endpoints = (("POST /v1/drafts", "/v1/drafts"), ("bare insert (floor)", "/bench/bare"))
        totals = {path: (0.0, [], 0) for _, path in endpoints}
        for n in range(rounds):
            for _, path in endpoints if n % 2 == 0 else endpoints[::-1]:
                secs, lat, errors = load(base, path, requests // rounds, clients)
                was = totals[path]
                totals[path] = (was[0] + secs, was[1] + lat, was[2] + errors)
        rows = []
        for label, path in endpoints:
            secs, lat, errors = totals[path]
            rows.append((label, len(lat) / secs, statistics.median(lat) * 1000, pct(lat, 0.99), errors))
        print(f"\n{name}: {requests} requests, {clients} concurrent clients, {rounds} interleaved rounds")
        print(f"  {'endpoint':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for label, rps, p50, p99, errors in rows:
            print(f"  {label:<22} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f} {errors:>7}")
        print(f"  ingest / floor throughput: {rows[0][1] / rows[1][1]:.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pg-url", default=os.environ.get("HITL_TEST_POSTGRES_URL"))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bench_backend("SQLite (WAL)", f"sqlite:///{tmp}/bench.db", args.requests, args.clients, args.rounds)
    if args.pg_url:
        sys.path.insert(0, str(ROOT))
        from sandbox.pg import scratch_database

        with scratch_database(args.pg_url, "hitl_bench") as url:
            bench_backend("PostgreSQL", url, args.requests, args.clients, args.rounds)
    else:
        print("\nPostgreSQL: skipped (give --pg-url or set HITL_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
