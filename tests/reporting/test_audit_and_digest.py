"""Policy changes audited once across replicas, the weekly digest claimed once, and the audit log export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.runtime import Runtime, build_runtime
from bot.app.settings import BUNDLED_POLICY
from bot.reporting.digest import JOB_ID, post_digest, scheduled_this_week, week_key
from bot.reporting.policy_audit import record_policy
from storage.db import make_engine, session_scope
from storage.models import AuditEvent, OutboxItem, SchedulerState
from tests.conftest import FakeClock, Service, sample_draft
from tests.reporting.factory import NOW, Store, known_week

MANAGERS = "#support-managers"


def hitl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "SLACK_", "ZENDESK_", "OPENAI_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment on threads; their results in order."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def audit_rows(runtime: Runtime, action: str) -> list[AuditEvent]:
    with session_scope(runtime.engine, readonly=True) as session:
        return list(
            session.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).scalars()
        )


@pytest.fixture
def replicas(db_url: str, make_settings: Callable[..., Any]) -> Callable[..., list[Runtime]]:
    made: list[Runtime] = []

    def build(n: int = 2, **env: Any) -> list[Runtime]:
        settings = make_settings(HITL_DATABASE_URL=db_url, **env)
        runtimes = [
            build_runtime(settings, clock=FakeClock(NOW), engine=make_engine(db_url)) for _ in range(n)
        ]
        made.extend(runtimes)
        return runtimes

    yield build
    for rt in made:
        rt.engine.dispose()


def test_a_policy_change_is_audited_once_across_replicas_with_what_changed(
    replicas: Callable[..., list[Runtime]], tmp_path: Path
) -> None:
    a, b = replicas()
    assert sorted(race(lambda: record_policy(a), lambda: record_policy(b))) == [False, True]
    first = audit_rows(a, "policy_changed")
    assert len(first) == 1 and first[0].detail["changes"] == ["first policy recorded"]
    assert first[0].detail["path"] == str(BUNDLED_POLICY) and first[0].actor == "policy-file"
    assert record_policy(a) is False  # same policy again: nothing to audit

    changed = tmp_path / "policy.yml"
    changed.write_text(
        BUNDLED_POLICY.read_text().replace(
            "refund:         {auto_send_at: 0.95", "refund:         {auto_send_at: 0.90"
        )
    )
    c, d = replicas(HITL_POLICY_FILE=str(changed))
    assert sorted(race(lambda: record_policy(c), lambda: record_policy(d))) == [False, True]
    rows = audit_rows(a, "policy_changed")
    assert len(rows) == 2
    changes = rows[1].detail["changes"]
    assert f"file: {BUNDLED_POLICY} → {changed}" in changes
    assert "interaction_types.refund.auto_send_at: 0.95 → 0.9" in changes
    assert rows[1].detail["previous_hash"] == first[0].detail["hash"]


def test_the_digest_is_claimed_once_per_week_across_replicas(replicas: Callable[..., list[Runtime]]) -> None:
    a, b = replicas(HITL_MANAGERS_CHANNEL=MANAGERS)
    with session_scope(a.engine) as session:
        known_week(Store(session))
    key = week_key(NOW)
    assert key == "digest:2026-W47"
    assert sorted(
        race(lambda: post_digest(a, now=NOW, claim=key), lambda: post_digest(b, now=NOW, claim=key))
    ) == [False, True]
    with session_scope(a.engine, readonly=True) as session:
        posts = list(session.execute(select(OutboxItem).where(OutboxItem.kind == "slack_post")).scalars())
        assert session.get(SchedulerState, key) is not None
    assert len(posts) == 1
    payload = posts[0].payload
    assert payload["channel"] == MANAGERS and "Weekly oversight digest" in payload["text"]
    assert any("order_status" in json.dumps(block) for block in payload["blocks"])
    assert len(audit_rows(a, "digest_queued")) == 1


def test_the_digest_is_due_at_its_cron_time_in_the_week() -> None:
    monday = datetime(2026, 11, 16, tzinfo=UTC)
    assert scheduled_this_week(monday.replace(hour=10), "0 9 * * mon") == monday.replace(hour=9)
    assert scheduled_this_week(monday.replace(hour=8), "0 9 * * mon") is None
    assert scheduled_this_week(monday + timedelta(days=3), "30 7 * * wed") == monday + timedelta(
        days=2, hours=7, minutes=30
    )


def test_two_replicas_started_after_the_digest_time_post_it_once(
    sqlite_url: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        known_week(Store(session))
    engine.dispose()
    settings = make_settings(
        SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=sqlite_url, HITL_MANAGERS_CHANNEL=MANAGERS
    )
    # NOW is Monday 10:00 UTC: an hour after the digest's time, as after a restart.
    one, two = start_service(settings, clock=FakeClock(NOW)), start_service(settings, clock=FakeClock(NOW))
    deadline = time.monotonic() + 15
    while not slack_standin.messages(MANAGERS) and time.monotonic() < deadline:
        time.sleep(0.05)
    from bot.reporting.digest import run_weekly_digest

    run_weekly_digest(one.runtime)  # the cron job firing on both replicas changes nothing this week
    run_weekly_digest(two.runtime)
    time.sleep(0.5)
    messages = slack_standin.messages(MANAGERS)
    assert len(messages) == 1
    assert "Weekly oversight digest" in messages[0]["text"]
    assert "1 needs more oversight" in messages[0]["text"]
    assert ":warning: More oversight · *order_status*" in json.dumps(
        messages[0]["blocks"], ensure_ascii=False
    )
    job = one.runtime.services.scheduler.get_job(JOB_ID)
    assert job is not None and job.next_run_time.weekday() == 0 and job.next_run_time.hour == 9


def assert_exported_events(events: list[dict[str, Any]]) -> None:
    """The policy recorded at start and the draft's ingest, with actor, review and an aware time."""
    actions = [e["action"] for e in events]
    assert "policy_changed" in actions and "ingest" in actions
    ingest = next(e for e in events if e["action"] == "ingest")
    assert ingest["actor"] == "api" and ingest["review_id"] and ingest["detail"]["route"] == "auto_send"
    assert datetime.fromisoformat(ingest["at"]).tzinfo is not None


def test_audit_export_writes_every_event_as_a_json_line(
    sqlite_url: str, make_settings: Callable[..., Any], start_service: Callable[..., Service], tmp_path: Path
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=sqlite_url))
    assert svc.api.post("/v1/drafts", json=sample_draft(confidence=0.99)).status_code == 201
    svc.stop()
    out = tmp_path / "audit.jsonl"
    done = hitl("audit", "export", "--since", "7d", "-o", str(out), env={"HITL_DATABASE_URL": sqlite_url})
    assert done.returncode == 0, done.stderr
    assert_exported_events([json.loads(line) for line in out.read_text().splitlines()])
    assert "audit events written to" in done.stderr
    bad = hitl("audit", "export", "--since", "soon", env={"HITL_DATABASE_URL": sqlite_url})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--since" in bad.stderr


def test_stats_and_review_on_the_command_line(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        known_week(Store(session, now=datetime.now(UTC)))
    engine.dispose()
    env = {"HITL_DATABASE_URL": sqlite_url}
    out = hitl("stats", "7d", env=env)
    assert out.returncode == 0, out.stderr
    assert "8 by humans" in out.stdout and "median 7m 30s · p90 21m 30s" in out.stdout
    data = json.loads(hitl("stats", "7d", "refund", "--json", env=env).stdout)
    assert data["interaction_type"] == "refund" and data["total"]["human"] == 2
    for args, expect in (
        (("stats", "7x"), "not a period"),
        (("stats", "7d", "refund", "billing"), "billing"),
        (("review", "--post"), "HITL_MANAGERS_CHANNEL"),
    ):
        bad = hitl(*args, env=env)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and expect in bad.stderr, bad.stderr
    review = hitl("review", "7d", "--threshold", "order_status=0.8", env=env)
    assert (
        review.returncode == 0
        and "Oversight review" in review.stdout
        and "at 0.80 instead of 0.90" in review.stdout
    )
    posted = hitl("review", "--post", env={**env, "HITL_MANAGERS_CHANNEL": MANAGERS})
    assert posted.returncode == 0 and "queued for #support-managers" in posted.stderr
