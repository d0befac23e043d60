"""First click wins: 20 people click one review at once; exactly one decision, 19 are told who won."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bot.slack.ids import ActionId
from sandbox.slack_sim import SlackSim
from storage.models import DecisionKind
from tests.conftest import SIGNING_SECRET
from tests.slack.conftest import Loop

CLICKERS = [f"U0CLICK{i:03d}" for i in range(20)]
ACTIONS = [ActionId.APPROVE, ActionId.TAKE_OVER]


def click_all_at_once(loops: list[Loop], card: dict[str, Any]) -> list[int]:
    """Each clicker clicks from its own HTTP connection, released together; clicks alternate between services."""
    gate = threading.Barrier(len(CLICKERS))
    sims = [
        SlackSim(loops[i % len(loops)].svc.url, SIGNING_SECRET, httpx.Client(timeout=10))
        for i in range(len(CLICKERS))
    ]

    def one(i: int) -> int:
        gate.wait()
        return loops[0].click(card, ACTIONS[i % 2], CLICKERS[i], f"clicker{i}", sim=sims[i]).status_code

    with ThreadPoolExecutor(len(CLICKERS)) as pool:
        codes = list(pool.map(one, range(len(CLICKERS))))
    for sim in sims:
        sim.http.close()
    return codes


def assert_one_winner(loops: list[Loop], review_id: str) -> None:
    loop = loops[0]
    review = loop.decided(review_id)
    winner = review.decided_by
    assert winner in CLICKERS and review.decision in (DecisionKind.APPROVE, DecisionKind.TAKE_OVER)
    losers = [u for u in CLICKERS if u != winner]
    for user in losers:
        (note,) = loop.ephemerals(user)
        assert f"by <@{winner}>" in note["text"], note["text"]
    assert loop.standin.ephemerals(winner) == []
    for each in loops:
        each.settled()
    assert loop.decisions(review_id) == 1
    assert len(loop.outbox("helpdesk_write", review_id)) == 1
    assert len(loop.standin.thread(review.slack_channel, review.slack_ts)) == 1
    assert len(loop.standin.ephemerals()) == 19


def test_twenty_concurrent_clicks_make_one_decision_on_sqlite(loop: Loop) -> None:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    assert click_all_at_once([loop], card) == [200] * 20
    assert_one_winner([loop], review_id)


@pytest.mark.usefixtures("pg_url")
def test_twenty_concurrent_clicks_across_two_services_on_postgresql(
    make_loop: Callable[..., Loop], pg_url: str
) -> None:
    first = make_loop(HITL_DATABASE_URL=pg_url, HITL_INSTANCE_ID="replica-a")
    second = make_loop(HITL_DATABASE_URL=pg_url, HITL_INSTANCE_ID="replica-b")
    review_id = first.post_draft()
    card = first.card(review_id)
    assert second.review(review_id).slack_ts == card["ts"]
    assert click_all_at_once([first, second], card) == [200] * 20
    assert_one_winner([first, second], review_id)
    assert len([m for m in first.standin.messages() if m.get("thread_ts") in (None, m["ts"])]) == 1, (
        "posted once by two replicas"
    )
