"""`/hitl` end to end: a signed slash command over real HTTP, answers arriving at the Slack stand-in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.slack_sim import SlackSim, slash_command_form
from storage.db import make_engine, session_scope
from tests.conftest import SIGNING_SECRET, FakeClock, Service, wait_for
from tests.reporting.factory import NOW, Store, known_week

MANAGER = "U0MANAGER1"
CHANNEL = "C0MANAGERS"


@pytest.fixture
def svc(
    sqlite_url: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> Service:
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        known_week(Store(session))
    engine.dispose()
    return start_service(
        make_settings(SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=sqlite_url),
        clock=FakeClock(NOW),
    )


@pytest.fixture
def sim(svc: Service) -> SlackSim:
    with SlackSim(svc.url, SIGNING_SECRET) as s:
        yield s


def command(sim: SlackSim, text: str) -> tuple[Any, float]:
    t0 = time.monotonic()
    resp = sim.post_command(slash_command_form(text=text, user_id=MANAGER, channel_id=CHANNEL))
    return resp, time.monotonic() - t0


def ephemeral(standin: Any, contains: str) -> dict[str, Any]:
    return wait_for(
        lambda: next((e for e in standin.ephemerals(MANAGER) if contains in e["text"]), None),
        what=f"an ephemeral with {contains!r}",
    )


def test_stats_are_acked_at_once_and_arrive_as_an_ephemeral(sim: SlackSim, slack_standin: Any) -> None:
    resp, elapsed = command(sim, "stats 7d")
    assert resp.status_code == 200 and elapsed < 1.5
    e = ephemeral(slack_standin, "hitl stats")
    assert e["channel"] == CHANNEL
    # The notification text is the summary: volume, auto-sent share, breaches, what to look at.
    assert "12 drafts in 7d · 17% auto-sent · SLA breached 3" in e["text"]
    assert "Look at: order_status (error rate 40%, 2 of 5 judged)" in e["text"]
    blocks = str(e["blocks"])
    assert "8 by humans" in blocks and "33%" in blocks and "1 reject + 1 heavy edit" in blocks
    assert "median 7m 30s" in blocks and "p90 21m 30s" in blocks and "hallucination 2" in blocks


def test_stats_for_one_type(sim: SlackSim, slack_standin: Any) -> None:
    command(sim, "stats 7d refund")
    e = ephemeral(slack_standin, "hitl stats")
    assert "last 7d · refund" in e["text"] and "4 drafts in 7d" in e["text"]
    assert "2 by humans" in str(e["blocks"])


def test_chart_is_uploaded_as_a_png_to_the_channel(sim: SlackSim, slack_standin: Any) -> None:
    resp, _ = command(sim, "stats 30d chart")
    assert resp.status_code == 200
    f = wait_for(lambda: slack_standin.files(), timeout=20, what="the chart upload")[0]
    assert f["is_png"] and f["channel"] == CHANNEL and f["name"] == "hitl-stats-30d.png"
    assert f["length"] > 10_000 and f"<@{MANAGER}>" in f["initial_comment"]
    ephemeral(slack_standin, "hitl stats")


def test_queue_lists_pending_reviews_with_their_sla_state(sim: SlackSim, slack_standin: Any) -> None:
    command(sim, "queue")
    e = ephemeral(slack_standin, "Queue · 2 pending")
    assert "1 past their SLA" in e["text"]
    blocks = str(e["blocks"])
    assert "billing" in blocks and ":red_circle: 5m past SLA" in blocks and "due in 20m" in blocks


def test_review_gives_a_recommendation_per_type(sim: SlackSim, slack_standin: Any) -> None:
    command(sim, "review 7d")
    e = ephemeral(slack_standin, "Oversight review")
    blocks = str(e["blocks"])
    assert "1 needs more oversight" in e["text"]
    assert "order_status" in blocks and "More oversight" in blocks and "what-if" in blocks


@pytest.mark.parametrize(
    "text, expect",
    [
        ("", "/hitl stats [period]"),
        ("help", "/hitl queue"),
        ("stast", "I don't know `stast`"),
        ("stats 7d refund billing", "does not take `billing`"),
        ("stats 0d", "a period is from 1h"),
    ],
)
def test_help_and_unknown_words_get_usage_in_the_ack(
    sim: SlackSim, slack_standin: Any, text: str, expect: str
) -> None:
    resp, elapsed = command(sim, text)
    assert resp.status_code == 200 and elapsed < 1.5
    body = resp.json()
    assert expect in body["text"] and "/hitl review" in body["text"]
    assert "Traceback" not in resp.text
    time.sleep(0.2)
    assert slack_standin.ephemerals(MANAGER) == []


def test_digest_says_where_and_when(sim: SlackSim, slack_standin: Any) -> None:
    command(sim, "digest")
    e = ephemeral(slack_standin, "Weekly oversight digest")
    assert "0 9 * * mon" in e["text"] and "HITL_MANAGERS_CHANNEL is not set" in e["text"]
