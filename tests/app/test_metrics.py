"""`GET /metrics` after real traffic: drafts, a signed click, outbox deliveries against the Slack stand-in,
parsed with prometheus-client's own parser; queue gauges agree across replicas, counters do not mix."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.slack.ids import ActionId
from tests.conftest import Service, sample_draft, wait_for
from tests.slack import conftest as slack_fixtures
from tests.slack.conftest import Loop

make_loop = slack_fixtures.make_loop  # the review loop's fixture

FAST_POLICY = Path(__file__).parent.parent / "sla" / "policy_fast.yml"
Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    resp = httpx.get(f"{url}/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(resp.text) for s in f.samples]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there are none)."""
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


def values_of(samples: Samples, name: str, labels: str) -> float:
    """`value` with the labels written `a=1,b=2`."""
    return value(samples, name, **dict(pair.split("=", 1) for pair in labels.split(",") if pair))


def scrape_until(url: str, check: Callable[[Samples], bool], what: str, timeout: float = 30) -> Samples:
    """Scrape until `check` holds (deliveries and timers run on their own threads)."""
    found: Samples = wait_for(lambda: m if check(m := scrape(url)) else None, timeout, what)
    return found


def post(svc: Service, **draft: Any) -> str:
    resp = svc.api.post("/v1/drafts", json=sample_draft(**draft))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_metrics_count_drafts_a_click_and_the_slack_deliveries_it_caused(
    make_loop: Callable[..., Loop], db_url: str
) -> None:
    loop = make_loop(HITL_DATABASE_URL=db_url)
    first = loop.post_draft()
    loop.post_draft(interaction_type="refund", confidence=0.8, refund_amount=20.0)
    loop.post_draft(confidence=0.97)  # order_status at 0.97: auto-sent
    loop.standin.force_ratelimit("chat.postMessage", 1)
    card = loop.card(first)
    assert loop.click(card, ActionId.APPROVE).status_code == 200
    loop.decided(first)

    # Both cards out (the one the 429 deferred waits its Retry-After), and nothing else in line.
    m = scrape_until(
        loop.svc.url,
        lambda m: (
            value(m, "hitl_outbox_delivered_total", kind="slack_post_review") >= 2
            and value(m, "hitl_outbox_depth") == 0
        ),
        "every card delivered",
    )
    seen = loop.standin.calls("chat.postMessage")
    expected = {
        ("hitl_drafts_total", "route=review,interaction_type=order_status"): 1,
        ("hitl_drafts_total", "interaction_type=refund"): 1,
        ("hitl_drafts_total", "route=auto_send,interaction_type=order_status"): 1,
        ("hitl_decisions_total", "decision=approve"): 1,
        ("hitl_decisions_total", "decision=auto_send"): 1,
        ("hitl_time_to_decision_seconds_count", "decision=approve"): 1,
        ("hitl_time_to_decision_seconds_count", "decision=auto_send"): 0,  # nobody waited for it
        ("hitl_slack_ack_seconds_count", "type=block_actions"): 1,
        ("hitl_slack_ack_seconds_bucket", "type=block_actions,le=+Inf"): 1,
        # Every Web API call the stand-in saw is counted once, the forced 429 among them.
        ("hitl_slack_calls_total", "method=chat.postMessage"): len(seen),
        ("hitl_slack_calls_total", "method=chat.postMessage,status=429"): 1,
        ("hitl_outbox_delivered_total", "kind=slack_post_review"): 2,
        ("hitl_outbox_depth", ""): 0,
        ("hitl_outbox_oldest_age_seconds", ""): 0,
        ("hitl_reviews_pending", ""): 1,  # the refund still waits
        ("hitl_database_up", ""): 1,
    }
    assert {key: values_of(m, *key) for key in expected} == expected


def test_queue_gauges_come_from_the_database_so_replicas_agree_while_counters_stay_their_own(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str
) -> None:
    # No outbox worker anywhere: the cards wait in the outbox, as in a backlog.
    settings = make_settings(HITL_DATABASE_URL=db_url, HITL_OUTBOX_WORKER="false")
    a, b = start_service(settings), start_service(settings)
    for _ in range(3):
        post(a)
    post(b, interaction_type="billing", confidence=0.8)

    ma, mb = scrape(a.url), scrape(b.url)
    for m in (ma, mb):
        assert value(m, "hitl_outbox_depth", kind="slack_post_review") == 4
        assert value(m, "hitl_outbox_oldest_age_seconds", kind="slack_post_review") >= 0
        assert value(m, "hitl_outbox_depth", kind="helpdesk_write") == 0, "every kind has a series"
        assert value(m, "hitl_reviews_pending", tier="standard") == 3
        assert value(m, "hitl_reviews_pending", tier="billing") == 1
    assert value(ma, "hitl_drafts_total") == 3 and value(mb, "hitl_drafts_total") == 1


def test_drafts_from_many_threads_at_once_are_each_counted_once(
    start_service: Callable[..., Service], make_settings: Callable[..., Any], db_url: str
) -> None:
    svc = start_service(make_settings(HITL_DATABASE_URL=db_url, HITL_OUTBOX_WORKER="false"))
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            for _ in range(n):
                post(svc)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(5,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    resend = svc.api.post("/v1/drafts", json=sample_draft(idempotency_key="same"))
    again = svc.api.post("/v1/drafts", json=sample_draft(idempotency_key="same"))
    assert (resend.status_code, again.status_code) == (201, 200)
    m = scrape(svc.url)
    assert value(m, "hitl_drafts_total") == 41, "a duplicate is not a new draft"
    assert value(m, "hitl_reviews_pending") == 41


def test_sla_warnings_and_breaches_are_counted_as_they_fire(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    slack_standin: Any,
    sqlite_url: str,
) -> None:
    svc = start_service(
        make_settings(
            SLACK_API_URL=slack_standin.base_url,
            HITL_DATABASE_URL=sqlite_url,
            HITL_POLICY_FILE=str(FAST_POLICY),
        )
    )
    post(svc, interaction_type="shipping")  # handoff tier: warned at 1 s, breached at 2 s, reassigned at 3 s
    m = scrape_until(
        svc.url, lambda m: value(m, "hitl_sla_breaches_total") == 1, "the breach to be counted", 20
    )
    assert value(m, "hitl_sla_warnings_total") == 1
    assert value(m, "hitl_sla_escalations_total") == 0, "the handoff tier has one level only"


def test_helpdesk_calls_by_status_and_a_dead_letter_are_counted(
    start_service: Callable[..., Service],
    make_settings: Callable[..., Any],
    zendesk_standin: Any,
    sqlite_url: str,
) -> None:
    svc = start_service(
        make_settings(
            HITL_DATABASE_URL=sqlite_url,
            HITL_HELPDESK="zendesk",
            ZENDESK_URL=zendesk_standin.base_url,
            ZENDESK_EMAIL="bot@example.com",
            ZENDESK_API_TOKEN="zd-test-token",
        )
    )
    zendesk_standin.add_ticket(7001, subject="Order", requester_id=601, description="Where is my order?")
    zendesk_standin.force_429(1)
    post(svc, ticket_id="7001", confidence=0.97)  # auto-sent: a public reply on a ticket that exists
    post(svc, ticket_id="7999", confidence=0.97)  # no such ticket: Zendesk says 404, the write is dead
    m = scrape_until(
        svc.url,
        lambda m: value(m, "hitl_outbox_dead", kind="helpdesk_write") == 1,
        "the write to a missing ticket to be dead-lettered",
        30,
    )
    m = scrape_until(
        svc.url,
        lambda m: value(m, "hitl_outbox_depth", kind="helpdesk_write") == 0,
        "the other write to be delivered",
        30,
    )
    assert value(m, "hitl_outbox_dead_letters_total", kind="helpdesk_write") == 1
    assert value(m, "hitl_outbox_delivered_total", kind="helpdesk_write") == 1
    assert value(m, "hitl_helpdesk_calls_total", helpdesk="zendesk", status="429") == 1
    assert value(m, "hitl_helpdesk_calls_total", helpdesk="zendesk", status="404") >= 1
    assert value(m, "hitl_helpdesk_calls_total", helpdesk="zendesk", status="200") >= 1
    assert value(m, "hitl_helpdesk_calls_total") == len(zendesk_standin.requests())
