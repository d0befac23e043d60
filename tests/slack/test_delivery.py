"""Slack outbox kinds against the stand-in: post once, move between tiers, re-render, map Slack's errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from bot.app.runtime import Runtime, build_runtime
from bot.app.workers import install_workers
from bot.outbox.registry import Defer, Permanent, Retry
from bot.review.ingest import DraftIn, ingest_draft
from bot.slack.client import make_web_client
from bot.slack.delivery import call
from sandbox.slack_standin import SlackStandin
from storage import repo
from storage.db import session_scope
from storage.models import OutboxItem, OutboxStatus, Review
from tests.conftest import FakeClock, sample_draft, wait_for


@pytest.fixture
def make_runtime(
    make_settings: Callable[..., Any], slack_standin: Any, sqlite_url: str
) -> Iterator[Callable[..., Runtime]]:
    """A runtime with the outbox kinds installed but no threads started: tests drain the outbox by hand."""
    made: list[Runtime] = []

    def build(clock: Any = None) -> Runtime:
        settings = make_settings(
            SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=sqlite_url, HITL_SCHEDULER=False
        )
        rt = build_runtime(settings, clock=clock)
        install_workers(rt)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.engine.dispose()


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime], clock: FakeClock) -> Runtime:
    return make_runtime(clock)


def ingest(rt: Runtime, **overrides: Any) -> str:
    with session_scope(rt.engine) as session:
        draft = DraftIn.model_validate(sample_draft(**overrides))
        return ingest_draft(session=session, draft=draft, policy=rt.policy, now=rt.clock.now()).review.id


def enqueue(rt: Runtime, kind: str, payload: dict[str, Any]) -> None:
    with session_scope(rt.engine) as session:
        repo.enqueue(
            session=session,
            now=rt.clock.now(),
            kind=kind,
            order_key=f"review:{payload.get('review_id')}",
            payload=payload,
        )


def drain(rt: Runtime) -> None:
    assert rt.services.outbox is not None and rt.services.outbox.drain(10)


def review(rt: Runtime, review_id: str) -> Review:
    with session_scope(rt.engine, readonly=True) as session:
        found = session.get(Review, review_id)
    assert found is not None
    return found


def test_posting_a_review_twice_posts_one_card(runtime: Runtime, slack_standin: Any) -> None:
    review_id = ingest(runtime)
    drain(runtime)
    enqueue(runtime, "slack_post_review", {"review_id": review_id})
    drain(runtime)
    assert len(slack_standin.messages("#support-review")) == 1
    assert review(runtime, review_id).slack_channel == "#support-review"


def test_a_review_moved_to_another_tier_is_reposted_and_the_old_card_points_there(
    runtime: Runtime, slack_standin: Any
) -> None:
    review_id = ingest(runtime)
    drain(runtime)
    old = review(runtime, review_id)
    with session_scope(runtime.engine) as session:  # what the SLA timers do on timeout: move_tier
        session.execute(update(Review).where(col(Review.id) == review_id).values(tier="vip"))
    moved = {"review_id": review_id, "moved_from": {"channel": old.slack_channel, "ts": old.slack_ts}}
    enqueue(runtime, "slack_post_review", moved)
    drain(runtime)
    enqueue(runtime, "slack_post_review", moved)  # delivered again after a crash: nothing new
    drain(runtime)
    new = review(runtime, review_id)
    assert (new.slack_channel, len(slack_standin.messages("#support-vip"))) == ("#support-vip", 1)
    assert new.slack_ts != old.slack_ts
    assert "Moved to #support-vip" in slack_standin.message(old.slack_channel, old.slack_ts)["text"]


def test_refresh_re_renders_the_sla_state(runtime: Runtime, slack_standin: Any, clock: FakeClock) -> None:
    review_id = ingest(runtime)
    drain(runtime)
    card = review(runtime, review_id)
    clock.advance(minutes=40)
    enqueue(runtime, "slack_refresh_review", {"review_id": review_id})
    drain(runtime)
    blocks = slack_standin.message(card.slack_channel, card.slack_ts)["blocks"]
    assert blocks[0]["text"]["text"].startswith("🔥 SLA breached · ")  # the breach shows in the header
    assert "🔥 *SLA breached*: was due <!date^" in str(blocks)  # an absolute due time, never a countdown


def test_dm_and_ephemeral_kinds_reach_slack(runtime: Runtime, slack_standin: Any) -> None:
    enqueue(runtime, "slack_dm", {"user": "U0LEAD", "text": "SLA breached on ticket 1"})
    enqueue(runtime, "slack_ephemeral", {"channel": "#support-review", "user": "U0ALEX", "text": "psst"})
    drain(runtime)
    assert slack_standin.calls("conversations.open")
    assert [m["text"] for m in slack_standin.messages() if m["channel"].startswith("D")] == [
        "SLA breached on ticket 1"
    ]
    assert slack_standin.ephemerals("U0ALEX")[0]["text"] == "psst"


def test_slack_errors_map_to_wait_retry_or_permanent(runtime: Runtime, slack_standin: Any) -> None:
    with pytest.raises(Permanent, match="message_not_found"):
        call(runtime, "chat_update", channel="#support-review", ts="1.000001", text="x")
    slack_standin.force_ratelimit("chat.postMessage", 1, retry_after=7)
    with pytest.raises(Defer) as limited:  # a 429 is a wait, not a failure
        call(runtime, "chat_postMessage", gate_channel="#busy", channel="#busy", text="x")
    assert limited.value.retry_after >= 7
    with pytest.raises(Defer, match="budget"):  # the channel is held back without calling Slack
        call(runtime, "chat_postMessage", gate_channel="#busy", channel="#busy", text="x")
    assert len(slack_standin.calls("chat.postMessage")) == 1
    slack_standin.set_outage(True)
    with pytest.raises(Retry, match="503"):
        call(runtime, "chat_postMessage", gate_channel="#other", channel="#other", text="x")


def test_a_permanent_failure_is_dead_lettered(runtime: Runtime, slack_standin: Any) -> None:
    enqueue(runtime, "slack_update", {"channel": "#support-review", "ts": "1.000001", "text": "x"})
    drain(runtime)
    with session_scope(runtime.engine, readonly=True) as session:
        row = session.execute(select(OutboxItem).where(col(OutboxItem.kind) == "slack_update")).scalar_one()
    assert row.status == OutboxStatus.DEAD and "message_not_found" in (row.last_error or "")


def test_many_cards_for_one_channel_drain_at_slacks_pace_without_losing_one(
    make_runtime: Callable[..., Runtime], slack_standin: Any
) -> None:
    runtime = make_runtime()  # the real clock: rows put back by a 429 come due again
    ids = [ingest(runtime) for _ in range(6)]
    started = time.monotonic()
    wait_for(
        lambda: (
            runtime.services.outbox is not None
            and runtime.services.outbox.run_once() >= 0
            and all(review(runtime, i).slack_ts for i in ids)
        ),
        15,
        "six cards",
    )
    assert time.monotonic() - started > 2, "burst of 3, then about one a second"
    assert len(slack_standin.messages("#support-review")) == 6
    limited = [c for c in slack_standin.calls("chat.postMessage") if c["status"] == 429]
    assert len(limited) <= 6, "rows for a rate-limited channel wait at the gate instead of hammering Slack"


def test_a_newer_refresh_of_a_card_supersedes_the_older_ones_still_waiting(
    runtime: Runtime, slack_standin: Any, clock: FakeClock
) -> None:
    review_id = ingest(runtime)
    drain(runtime)
    for _ in range(3):  # e.g. an SLA sweep and two clicks, all while Slack was busy
        enqueue(runtime, "slack_refresh_review", {"review_id": review_id})
    card = review(runtime, review_id)
    for text in ("old", "new"):
        update = {"channel": card.slack_channel, "ts": card.slack_ts, "text": text, "review_id": review_id}
        enqueue(runtime, "slack_update", update)
    drain(runtime)
    assert len(slack_standin.calls("chat.update")) == 2, "one re-render and the newest update, not five calls"
    assert slack_standin.message(card.slack_channel, card.slack_ts)["text"] == "new"
    with session_scope(runtime.engine, readonly=True) as session:
        rows = session.execute(select(OutboxItem)).scalars().all()
    assert {r.status for r in rows} == {OutboxStatus.DONE}
    assert sum(1 for r in rows if "superseded" in str(r.result.get("skipped", ""))) == 3


def test_a_429_on_a_channel_named_by_name_holds_back_the_posts_that_use_its_id(
    make_settings: Callable[..., Any], sqlite_url: str
) -> None:
    standin = SlackStandin(token="xoxb-test", channel_ids=True).start()
    try:
        channel_id = standin.add_channel("#support-review")
        settings = make_settings(
            SLACK_API_URL=standin.base_url, HITL_DATABASE_URL=sqlite_url, HITL_SCHEDULER=False
        )
        rt = build_runtime(settings)
        install_workers(rt)
        standin.force_ratelimit("chat.postMessage", 1, retry_after=30)
        with pytest.raises(Defer):
            call(rt, "chat_postMessage", gate_channel="#support-review", channel="#support-review", text="x")
        with pytest.raises(Defer, match="budget"):  # a thread reply by id: same channel, same budget
            call(
                rt, "chat_postMessage", gate_channel=channel_id, channel=channel_id, text="y", thread_ts="1.1"
            )
        assert len(standin.calls("chat.postMessage")) == 1
        assert len(standin.calls("conversations.list")) == 1, "the name was resolved once"
        rt.engine.dispose()
    finally:
        standin.stop()


def test_a_card_carries_its_review_in_the_message_metadata(runtime: Runtime, slack_standin: Any) -> None:
    review_id = ingest(runtime)
    drain(runtime)
    card = review(runtime, review_id)
    metadata = slack_standin.message(card.slack_channel, card.slack_ts)["metadata"]
    assert metadata == {"event_type": "hitl_review", "event_payload": {"review_id": review_id}}


class ClosingServer:
    """An HTTP server that reads each request and hangs up without answering (a reset after sending)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.paths: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536).decode("latin-1")
                self.paths.append(head.split(" ")[1] if " " in head else "")

    def close(self) -> None:
        self.sock.close()


def test_the_web_client_never_repeats_a_post_whose_answer_was_lost(make_settings: Callable[..., Any]) -> None:
    server = ClosingServer()
    try:
        client = make_web_client(make_settings(SLACK_API_URL=server.url))
        for method, kwargs in (
            ("chat_postMessage", {"channel": "C1", "text": "x"}),
            ("users_info", {"user": "U1"}),
        ):
            with pytest.raises(Exception):  # noqa: B017 - urllib's own connection error, whatever its class
                getattr(client, method)(**kwargs)
    finally:
        server.close()
    posts = [p for p in server.paths if p.endswith("chat.postMessage")]
    lookups = [p for p in server.paths if p.endswith("users.info")]
    assert (len(posts), len(lookups)) == (1, 2), "a lookup is retried once; a post is never sent twice"
