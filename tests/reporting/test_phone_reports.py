"""Reports that fit a phone: `/hitl stats`, `/hitl review`, `/hitl queue` and the weekly digest.

Each surface is asked for through a signed request to the real service and read back from the Slack
stand-in; its blocks are parsed with slack_sdk's models and checked for what a phone reader needs: the
summary first, kept types folded into one line, no monospace table wider than a phone, words beside
every emoji, the queue in order of time to breach with links to the cards, Accept only where a verdict
asks for a change, and no empty chart.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block, SectionBlock

from bot.reporting.charts import NO_CHART, stats_chart_png
from bot.reporting.format import PHONE_WIDTH
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import OversightReview, ReviewSection
from bot.reporting.queue import Queue, QueueItem
from bot.reporting.stats.model import Counts, Stats
from bot.reporting.stats.query import compute_stats
from bot.slack.blocks.reports import render_queue_blocks, render_review_blocks
from bot.slack.ids import ActionId
from sandbox.slack_sim import SlackSim, slash_command_form
from sandbox.slack_standin import MAX_MESSAGE_BLOCKS, validate_blocks
from storage.db import make_engine, session_scope
from storage.models import Review
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, FakeClock, Service, sample_draft, wait_for
from tests.reporting.factory import NOW, SINCE, Store, known_week

MANAGER = "U0MANAGER1"
CHANNEL = "C0MANAGERS"
MANAGERS = "#support-managers"
SHORTCODE = re.compile(r":[a-z][a-z0-9_+-]*:")
PICTOGRAPH = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff]")
WORD_AFTER = re.compile(r"\ufe0f?\s*[*_~]*[\w#$]")
WORD_BEFORE = re.compile(r"\w[*_~]*\s*$")


# ---------------------------------------------------------------- what every surface must satisfy


def slack_blocks(blocks: list[dict[str, Any]]) -> list[Block]:
    """The blocks as slack_sdk's models (the stand-in's own check first: limits, shapes, 50 blocks)."""
    validate_blocks(blocks, limit=MAX_MESSAGE_BLOCKS)
    parsed = [Block.parse(b) for b in blocks]
    assert all(p is not None for p in parsed)
    return [p for p in parsed if p is not None]


def all_text(node: Any) -> Iterator[str]:
    """Every text a reader sees in a block tree: section text and fields, context, buttons, confirms."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from all_text(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_text(value)


def emoji_alone(text: str) -> list[str]:
    """Emoji with no word right after or right before them."""
    alone = []
    for m in itertools.chain(SHORTCODE.finditer(text), PICTOGRAPH.finditer(text)):
        if not (WORD_AFTER.match(text, m.end()) or WORD_BEFORE.search(text[: m.start()])):
            alone.append(f"{m.group()} in {text[max(0, m.start() - 20) : m.end() + 20]!r}")
    return alone


def wide_code_lines(text: str) -> list[str]:
    return [
        line
        for block in re.findall(r"```(.*?)```", text, re.S)
        for line in block.splitlines()
        if len(line) > PHONE_WIDTH
    ]


def assert_fits_a_phone(message: dict[str, Any]) -> list[Block]:
    """Valid slack_sdk blocks, a section first, no wide code block, no emoji without a word."""
    blocks = slack_blocks(message["blocks"])
    assert isinstance(blocks[0], SectionBlock) and blocks[0].text is not None
    texts = list(all_text(message["blocks"])) + [message["text"]]
    assert [line for t in texts for line in wide_code_lines(t)] == []
    assert [e for t in texts for e in emoji_alone(t)] == []
    assert message["text"] and len(message["text"]) <= 3000
    return blocks


def first_text(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def accept_buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept buttons by the type they accept, with the text of the block that carries them."""
    found = {}
    for b in message["blocks"]:
        acc = b.get("accessory") or {}
        if acc.get("action_id") == ActionId.OVERSIGHT_ACCEPT:
            value = json.loads(acc["value"])
            found[value["t"]] = {"value": value, "confirm": acc.get("confirm"), "text": b["text"]["text"]}
    return found


def test_the_checks_catch_what_they_look_for() -> None:
    assert emoji_alone(":warning:") == [":warning: in ':warning:'"]
    assert emoji_alone("state :red_circle:") == []
    assert emoji_alone(":arrow_up: Expand autonomy") == []
    assert emoji_alone("⚠ ") != [] and emoji_alone("⚠ refund") == []
    assert wide_code_lines("```" + "x" * (PHONE_WIDTH + 1) + "```") == ["x" * (PHONE_WIDTH + 1)]


# ---------------------------------------------------------------- a service with a known week


@pytest.fixture
def known(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        store = Store(session)
        known_week(store)
        for itype in ("shipping", "billing", "password_reset"):  # one decision each: kept, too few
            store.decided(itype, "approve", seconds=60, breached=False)
    engine.dispose()
    return sqlite_url


@pytest.fixture
def svc(
    known: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> Service:
    return start_service(
        make_settings(SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=known), clock=FakeClock(NOW)
    )


def ask(svc: Service, standin: Any, text: str, contains: str) -> dict[str, Any]:
    """`/hitl <text>` as a signed POST; the ephemeral answer whose text holds `contains`."""
    with SlackSim(svc.url, SIGNING_SECRET) as sim:
        resp = sim.post_command(slash_command_form(text=text, user_id=MANAGER, channel_id=CHANNEL))
    assert resp.status_code == 200
    return wait_for(  # type: ignore[no-any-return]
        lambda: next((e for e in standin.ephemerals(MANAGER) if contains in e["text"]), None),
        what=f"an ephemeral with {contains!r}",
    )


def field_texts(blocks: list[Block]) -> list[str]:
    fields = next(b for b in blocks if isinstance(b, SectionBlock) and b.fields)
    return [f.text for f in fields.fields or []]


def test_stats_lead_with_what_to_look_at_and_show_figures_as_fields(svc: Service, slack_standin: Any) -> None:
    e = ask(svc, slack_standin, "stats 7d", "hitl stats")
    blocks = assert_fits_a_phone(e)
    assert first_text(e) == (
        "*15 drafts in 7d · 13% auto-sent · SLA breached 3*\n"
        "Look at: order_status (error rate 40%, 2 of 5 judged) · 1 review past SLA now"
    )
    assert "15 drafts in 7d · 13% auto-sent · SLA breached 3. Look at: order_status" in e["text"]
    fields = field_texts(blocks)
    labels = [f.split("\n", 1)[0] for f in fields]
    assert labels[:4] == ["*Volume*", "*Decisions*", "*Time to decision*", "*SLA*"]
    assert "*AI error rate*\n22%\n1 reject + 1 heavy edit\nof 9 judged" in fields
    assert [t for t in all_text(e["blocks"]) if "```" in t] == []  # no monospace table at all
    by_type = next(t for t in all_text(e["blocks"]) if t.startswith("*By interaction type*"))
    assert by_type.splitlines()[1] == "• *order_status* 8 drafts · error 40% · QA pass 50% · SLA breached 33%"


def section_texts(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]


def assert_folded(message: dict[str, Any], names: list[str]) -> str:
    """Exactly one section holds the kept types, all on its first line; none has an entry of its own."""
    texts = section_texts(message)
    folded = [t for t in texts if t.startswith("*Keep as is* (")]
    assert [t.splitlines()[0] for t in folded] == [f"*Keep as is* ({len(names)}): " + ", ".join(names)]
    assert [t for t in texts if t.startswith("Keep as is · ")] == []
    return folded[0]


def assert_confirmed(button: dict[str, Any], change: str) -> None:
    confirm = button["confirm"]
    assert (confirm["confirm"]["text"], confirm["deny"]["text"]) == ("Accept", "Cancel")
    assert change in confirm["text"]["text"]


def test_review_counts_verdicts_first_folds_kept_types_and_offers_accept_where_it_changes(
    svc: Service, slack_standin: Any
) -> None:
    e = ask(svc, slack_standin, "review 7d", "Oversight review")
    assert_fits_a_phone(e)
    summary = first_text(e).splitlines()
    assert summary[:2] == [
        "*Oversight review · last 7d*",
        "0 types can take more autonomy, 1 needs more oversight, 4 keep as is",
    ]
    assert summary[2].startswith("To do: accept or leave the 1 proposal below · ")
    assert "1 needs more oversight, 4 keep as is" in e["text"]
    assert_folded(e, ["billing", "password_reset", "refund", "shipping"])
    buttons = accept_buttons(e)
    assert list(buttons) == ["order_status"]
    button = buttons["order_status"]
    assert button["value"] == {"t": "order_status", "v": "increase", "c": 0.9, "p": 0.95, "d": 7}
    assert button["text"].startswith(
        ":warning: More oversight · *order_status*\nauto-send at 0.95 instead of 0.90"
    )
    assert_confirmed(button, "auto-send at 0.95 instead of 0.90")


def test_a_review_of_one_type_shows_it_in_full_even_when_kept(svc: Service, slack_standin: Any) -> None:
    e = ask(svc, slack_standin, "review 7d refund", "Oversight review")
    assert_fits_a_phone(e)
    assert (
        first_text(e).splitlines()[1] == "0 types can take more autonomy, 0 need more oversight, 1 keep as is"
    )
    entry = next(t for t in section_texts(e) if t.startswith("Keep as is · *refund*"))
    assert "• why not expand: only 2 decisions" in entry
    assert accept_buttons(e) == {}  # keep changes nothing: nothing to accept
    assert [t for t in section_texts(e) if t.startswith("*Keep as is* (")] == []


def test_an_empty_period_gets_no_chart_but_a_sentence(
    sqlite_url: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> None:
    svc = start_service(
        make_settings(SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=sqlite_url),
        clock=FakeClock(NOW),
    )
    e = ask(svc, slack_standin, "stats 7d chart", "hitl stats")
    assert_fits_a_phone(e)
    assert (
        first_text(e)
        == "*0 drafts in 7d · — auto-sent · SLA breached 0*\nNo drafts or decisions in this period."
    )
    assert NO_CHART in list(all_text(e["blocks"]))
    time.sleep(0.5)
    assert slack_standin.files() == []


def test_the_chart_is_one_tall_image(known: str) -> None:
    engine = make_engine(known)
    with session_scope(engine, readonly=True) as session:
        stats = compute_stats(session=session, since=SINCE, until=NOW)
        empty = compute_stats(
            session=session, since=SINCE - timedelta(days=30), until=SINCE - timedelta(days=20)
        )
    engine.dispose()
    png = stats_chart_png(stats)
    assert png is not None and png.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", png[16:24])
    assert width <= 700 and height > 2 * width  # panels stacked, not side by side
    assert stats_chart_png(empty) is None


# ---------------------------------------------------------------- the queue, with real cards


@pytest.fixture
def queue_svc(
    db_url: str, make_settings: Callable[..., Any], start_service: Callable[..., Service], slack_standin: Any
) -> tuple[Service, FakeClock]:
    clock = FakeClock(NOW)
    settings = make_settings(SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=db_url)
    return start_service(settings, clock=clock), clock


def post(svc: Service, ticket: str, **over: Any) -> str:
    resp = svc.api.post("/v1/drafts", json=sample_draft(ticket_id=ticket, **over))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def card_of(svc: Service, review_id: str) -> Review:
    def posted() -> Review | None:
        with session_scope(svc.runtime.engine, readonly=True) as session:
            r = session.get(Review, review_id)
            return r if r is not None and r.slack_ts else None

    return wait_for(posted, what="the card to be posted")  # type: ignore[no-any-return]


def seed_queue(svc: Service, clock: FakeClock) -> dict[str, Review]:
    """Three pending reviews with posted cards, created in another order than they breach."""
    late = post(svc, "Q-LATE")  # standard tier, SLA 30m: due at +30m
    clock.advance(minutes=10)
    vip = post(svc, "Q-VIP", customer={"name": "Ana", "tier": "vip", "account_value": 25000.0})  # vip: 15m
    later = post(svc, "Q-LATER")  # standard, due at +40m
    cards = {"vip": card_of(svc, vip), "late": card_of(svc, late), "later": card_of(svc, later)}
    clock.advance(minutes=16)  # now +26m: the VIP review 1m past its SLA, the first one due in 4m
    return cards


def permalinks(standin: Any, cards: dict[str, Review]) -> dict[str, str]:
    """What Slack's chat.getPermalink answers for each card."""
    web = WebClient(token=BOT_TOKEN, base_url=standin.base_url)
    return {
        k: str(web.chat_getPermalink(channel=str(r.slack_channel), message_ts=str(r.slack_ts))["permalink"])
        for k, r in cards.items()
    }


def test_queue_sorts_by_time_to_breach_and_links_every_line_to_its_card(
    queue_svc: tuple[Service, FakeClock], slack_standin: Any
) -> None:
    svc, clock = queue_svc
    cards = seed_queue(svc, clock)
    e = ask(svc, slack_standin, "queue", "Queue · 3 pending")
    assert_fits_a_phone(e)
    links = permalinks(slack_standin, cards)
    assert first_text(e).splitlines() == [
        "*Queue · 3 pending · 1 past SLA*",
        f":red_circle: Start with <{links['vip']}|order_status #Q-VIP>: 1m past SLA",
    ]
    assert "1 past their SLA; first: order_status #Q-VIP (1m past SLA)" in e["text"]
    lines = e["blocks"][2]["text"]["text"].splitlines()
    assert [line.split(" · ")[0] for line in lines] == [
        ":red_circle: 1m past SLA",
        ":large_orange_circle: due in 4m",
        ":white_circle: due in 14m",
    ]
    expected = [f"<{links[k]}|order_status #{cards[k].ticket_id}>" for k in ("vip", "late", "later")]
    assert [line.split(" · ")[1] for line in lines] == expected
    assert lines[0].endswith("· vip · vip · value $25k · take over")
    assert "standard · value $420" in lines[1]
    assert e["blocks"][1]["elements"][0]["text"].startswith("By tier: standard 2 · vip 1 (1 past SLA)")


def test_a_long_queue_shows_the_top_ten_and_counts_the_rest() -> None:
    items = [
        QueueItem(
            review_id=f"r{i}",
            ticket_id=str(500 + i),
            interaction_type="refund",
            tier="billing",
            route="review",
            created_at=NOW - timedelta(hours=1),
            sla_warn_at=None,
            sla_due_at=NOW + timedelta(minutes=i + 1),
            slack_channel="C0BILLING1",
            slack_ts=f"1700000000.{i:06d}",
        )
        for i in range(10)
    ]
    queue = Queue(now=NOW, tier=None, counts={"billing": (14, 0)}, items=items)
    text, blocks = render_queue_blocks(
        queue, {"billing": "#support-billing"}, workspace_url="https://acme.slack.com/"
    )
    message = {"text": text, "blocks": [b.to_dict() for b in blocks]}
    assert_fits_a_phone(message)
    first = "<https://acme.slack.com/archives/C0BILLING1/p1700000000000000|refund #500>"
    assert first_text(message).splitlines() == [
        "*Queue · 14 pending · 0 past SLA*",
        f"Next up: {first} · :white_circle: due in 1m",
    ]
    lines = message["blocks"][2]["text"]["text"].splitlines()
    assert len(lines) == 11 and lines[-1] == "_and 4 more_: `/hitl queue <tier>`"
    assert "<https://acme.slack.com/archives/C0BILLING1/p1700000000000000|refund #500>" in lines[0]
    # Slack never answered auth.test: no URL to link with, but the line still says where the card is.
    _, unlinked = render_queue_blocks(queue, {"billing": "#support-billing"}, workspace_url=None)
    assert (
        unlinked[2]
        .to_dict()["text"]["text"]
        .startswith(":white_circle: due in 1m · refund #500 (card in <#C0BILLING1>)")
    )


# ---------------------------------------------------------------- many types, sections from other features


def _stats(by_type: dict[str, Counts]) -> Stats:
    total = Counts()
    for c in by_type.values():
        total.add(c)
    return Stats(SINCE, NOW, None, total, by_type, {}, None, None, 0, 0, {}, {})


def many_types_review() -> OversightReview:
    """Two types to expand, one to narrow, nine kept; a section another feature added."""
    recs = [
        Recommendation(
            "refund",
            "increase",
            "increase human involvement: auto-send at 0.97 instead of 0.95",
            ("e",),
            ("r",),
            0.95,
            0.97,
        )
    ]
    recs += [
        Recommendation(
            t, "expand", "expand AI autonomy: auto-send at 0.85 instead of 0.90", ("e",), (), 0.90, 0.85
        )
        for t in ("order_status", "shipping")
    ]
    kept = [f"type_{i}" for i in range(9)]
    recs += [
        Recommendation(t, "keep", "keep as is: auto-send stays at 0.90", ("e",), ("only 3 decisions",), 0.90)
        for t in kept
    ]
    by_type = {r.interaction_type: Counts(volume=10, approve=10) for r in recs}
    by_type["shipping"] = Counts(
        volume=200, approve=150, qa_good=94, qa_defect=3, qa_human_good=99, qa_human_defect=1
    )
    section = ReviewSection(
        "Calibration sessions",
        ("2 sessions this week, reviewers agreed on 91% of drafts",),
        {"refund": ("agreement 72%",)},
    )
    return OversightReview(SINCE, NOW, _stats(by_type), _stats({}), recs, [], {}, [], sections=[section])


def test_many_types_fold_into_one_line_and_other_features_sections_show() -> None:
    text, blocks = render_review_blocks(many_types_review())
    message = {"text": text, "blocks": [b.to_dict() for b in blocks]}
    assert_fits_a_phone(message)
    summary = first_text(message).splitlines()[1]
    assert summary == "2 types can take more autonomy, 1 needs more oversight, 9 keep as is"
    buttons = accept_buttons(message)
    assert sorted(buttons) == ["order_status", "refund", "shipping"]
    shipping = buttons["shipping"]
    assert shipping["value"] == {"t": "shipping", "v": "expand", "c": 0.9, "p": 0.85, "d": 7}
    assert shipping["text"].startswith(":arrow_up: Expand autonomy · *shipping*")
    assert "• QA defects: auto-sent 3.1% of 97 rated · human-approved 1.0% of 100 rated" in shipping["text"]
    assert_confirmed(shipping, "auto-send at 0.85 instead of 0.90")
    assert "• Calibration sessions: agreement 72%" in buttons["refund"]["text"]
    folded = assert_folded(message, [f"type_{i}" for i in range(9)])
    texts = section_texts(message)
    section = "*Calibration sessions*\n• 2 sessions this week, reviewers agreed on 91% of drafts"
    assert texts.index(folded) < texts.index(section)  # other features' sections come after the verdicts


# ---------------------------------------------------------------- the weekly digest


def test_the_weekly_digest_leads_with_the_verdict_counts(
    known: str, make_settings: Callable[..., Any], start_service: Callable[..., Service], slack_standin: Any
) -> None:
    settings = make_settings(
        SLACK_API_URL=slack_standin.base_url, HITL_DATABASE_URL=known, HITL_MANAGERS_CHANNEL=MANAGERS
    )
    start_service(settings, clock=FakeClock(NOW))  # Monday 10:00, an hour after the digest's time: caught up
    message = wait_for(
        lambda: next(iter(slack_standin.messages(MANAGERS)), None), timeout=15, what="the digest"
    )
    assert_fits_a_phone(message)
    summary = first_text(message).splitlines()
    assert summary[0].startswith("*Weekly oversight digest · last ")
    assert summary[1].endswith("1 needs more oversight, 4 keep as is")
    assert message["text"].startswith("Weekly oversight digest (last ")
    assert list(accept_buttons(message)) == ["order_status"]
    assert any(t.startswith("*Keep as is* (4): ") for t in all_text(message["blocks"]))
