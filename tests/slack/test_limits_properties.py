"""Every Block Kit builder holds Slack's limits whatever text it is given: escaped first, trimmed after.

Hypothesis feeds each builder adversarial text (dense `&<>`, emoji and ZWJ sequences, 50,000 characters,
lone surrogates, mention syntax) in every outside field; the result must pass slack_sdk's own model
validation (Block.parse / View and to_dict) and the Slack stand-in's checks (block count, total text),
carry no lone surrogate, and never let the text mention @channel.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import load_policy
from bot.slack.blocks import limits
from bot.slack.blocks.card import fallback_text, moved_message, review_message
from bot.slack.blocks.modals import edit_modal, full_text_modal, reject_modal
from bot.slack.blocks.qa import defect_modal, qa_card, qa_text
from bot.slack.blocks.thread import already_decided_text, decision_thread_text, not_allowed_text
from bot.slack.ids import ModalMeta
from sandbox.slack_standin import (
    MAX_MESSAGE_BLOCK_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_VIEW_BLOCKS,
    _text_length,
    validate_blocks,
    validate_view,
)
from storage.models import Decision, DecisionKind, Review, ReviewStatus, Route

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
POLICY = load_policy(BUNDLED_POLICY)
META = ModalMeta(review_id="r1", channel="C0REVIEW01", ts="1700000000.000100")
PIECES = [
    "&",
    "<",
    ">",
    "&amp;",
    "<!channel>",
    "<@U0BOSS>",
    "😀",
    "👩‍👩‍👧",
    "\ud800",
    "\udfff",
    "é",
    " ",
    "\n",
    "a",
    "`",
]

adversarial = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=4000).map("".join),
    st.builds(
        lambda piece, n: piece * n, st.sampled_from(["&", "<>", "😀", "\ud800", "x "]), st.integers(0, 50_000)
    ),
)
short = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(PIECES), max_size=300).map("".join))
FAST = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)


def make_review(texts: dict[str, str], **overrides: Any) -> Review:
    values: dict[str, Any] = {
        "id": "r1",
        "idempotency_key": "k1",
        "ticket_id": texts["ticket"][:100] or "1",
        "interaction_type": "order_status",
        "confidence": 0.75,
        "customer_message": texts["customer"] or "x",
        "draft": texts["draft"] or "x",
        "subject": texts["subject"],
        "customer": {"name": texts["name"], "tier": texts["name"], "account_value": 214.5},
        "ticket_url": "https://northwind.zendesk.com/agent/tickets/48101",
        "kb_sources": [texts["name"]],
        "extra": {
            "summary": texts["summary"],
            "reject_category": "other",
            "reject_comment": texts["comment"],
        },
        "route": Route.REVIEW,
        "tier": "standard",
        "reasons": [{"code": "x", "message": texts["subject"]}],
        "supervisor_decisions": [],
        "status": ReviewStatus.PENDING,
        "created_at": NOW - timedelta(minutes=5),
        "sla_warn_at": NOW + timedelta(minutes=17),
        "sla_due_at": NOW + timedelta(minutes=25),
    }
    values.update(overrides)
    return Review(**values)


texts_strategy = st.fixed_dictionaries(
    {
        "customer": adversarial,
        "draft": adversarial,
        "summary": adversarial,
        "comment": adversarial,
        "subject": short,
        "name": short,
        "ticket": short,
    }
)


def no_surrogates(data: Any) -> None:
    dumped = json.dumps(data, ensure_ascii=False)
    assert not any("\ud800" <= ch <= "\udfff" for ch in dumped)
    dumped.encode("utf-8")  # what the Web API call sends


def message_ok(text: str, blocks: list[Block]) -> None:
    """What Slack checks on chat.postMessage / chat.update."""
    dicts = [b.to_dict() for b in blocks]
    for d in dicts:
        parsed = Block.parse(d)
        assert parsed is not None
        parsed.to_dict()  # slack_sdk validates the limits of each field here
    validate_blocks(dicts, limit=MAX_MESSAGE_BLOCKS)
    assert _text_length(dicts) <= MAX_MESSAGE_BLOCK_TEXT
    assert text and len(text) <= limits.FALLBACK_TEXT
    no_surrogates([text, dicts])
    assert not any("<!channel>" in t for t in [text, *mrkdwn_texts(dicts)])


def mrkdwn_texts(data: Any) -> list[str]:
    """Every mrkdwn text in blocks (plain_text is never parsed for mentions or links)."""
    if isinstance(data, list):
        return [t for item in data for t in mrkdwn_texts(item)]
    if not isinstance(data, dict):
        return []
    own = [data["text"]] if data.get("type") == "mrkdwn" and isinstance(data.get("text"), str) else []
    return own + [t for value in data.values() for t in mrkdwn_texts(value)]


def view_ok(view: View) -> None:
    d = view.to_dict()
    View(**d).to_dict()
    validate_view(d)
    assert len(d["blocks"]) <= MAX_VIEW_BLOCKS
    assert len(d["title"]["text"]) <= limits.MODAL_TITLE
    assert len(d.get("private_metadata") or "") <= limits.PRIVATE_METADATA
    for block in d["blocks"]:
        element = block.get("element") or {}
        assert len(element.get("initial_value") or "") <= limits.INPUT_VALUE
    no_surrogates(d)


@FAST
@given(texts=texts_strategy, status=st.sampled_from(list(DecisionKind)[:4]))
def test_the_review_card_holds_slacks_limits_pending_and_decided(texts: dict[str, str], status: str) -> None:
    pending = make_review(texts)
    message_ok(*review_message(pending, POLICY, NOW))
    decided = make_review(
        texts,
        status={
            "approve": ReviewStatus.APPROVED,
            "edit": ReviewStatus.EDITED,
            "take_over": ReviewStatus.TAKEN_OVER,
            "reject": ReviewStatus.REJECTED,
        }[status],
        decision=status,
        decided_by="U0ALEX0001",
        decided_by_name=texts["name"],
        decided_at=NOW,
        final_text=texts["comment"] or "x",
    )
    message_ok(*review_message(decided, POLICY, NOW))
    message_ok(*moved_message(decided, texts["name"] or "#x"))
    thread = decision_thread_text(decided)
    assert len(thread) <= 40_000
    no_surrogates(thread)
    assert "<!channel>" not in thread


@FAST
@given(texts=texts_strategy)
def test_the_modals_hold_slacks_limits(texts: dict[str, str]) -> None:
    review = make_review(texts, final_text=texts["comment"] or "x")
    view_ok(edit_modal(review, META, text=texts["comment"], ai_note=texts["summary"]))
    view_ok(reject_modal(review, META))
    view_ok(full_text_modal(review))
    view_ok(defect_modal(review_id="r1", channel="C0QA", ts="1700000000.000200"))


@FAST
@given(texts=texts_strategy, rated=st.booleans())
def test_the_qa_card_escapes_before_it_trims(texts: dict[str, str], rated: bool) -> None:
    review = make_review(texts, route=Route.AUTO_SEND, status=ReviewStatus.AUTO_SENT, decided_at=NOW)
    rating = (
        Decision(
            review_id="r1",
            stage="qa",
            ticket_id="1",
            interaction_type="order_status",
            confidence=0.9,
            route=Route.AUTO_SEND,
            tier="standard",
            reasons=[],
            customer_message="x",
            ai_draft="x",
            decision=DecisionKind.QA_DEFECT,
            actor_id="U0ALEX0001",
            decided_at=NOW,
            defect_category="other",
            defect_comment=texts["comment"],
        )
        if rated
        else None
    )
    message_ok(qa_text(review), qa_card(review, rating))


def test_a_qa_card_dense_in_ampersands_stays_within_a_section() -> None:
    review = make_review(
        {
            "customer": "&" * 5000,
            "draft": "<>" * 5000,
            "summary": "",
            "comment": "",
            "subject": "",
            "name": "",
            "ticket": "1",
        },
        route=Route.AUTO_SEND,
        status=ReviewStatus.AUTO_SENT,
    )
    blocks = [b.to_dict() for b in qa_card(review)]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(t) <= limits.SECTION_TEXT for t in sections)
    assert all(not t.endswith("&am…") and "&amp" in t for t in sections[:1])


@FAST
@given(why=adversarial, actor=short)
def test_ephemerals_and_fallbacks_are_bounded(why: str, actor: str) -> None:
    for text in (
        not_allowed_text(why),
        already_decided_text(decision="approve", actor_id=actor, decided_at=NOW, user_id="U1"),
        fallback_text(
            make_review(
                {
                    "customer": why,
                    "draft": "x",
                    "summary": "",
                    "comment": "",
                    "subject": "",
                    "name": actor,
                    "ticket": actor,
                }
            )
        ),
    ):
        assert len(text) <= limits.FALLBACK_TEXT
        no_surrogates(text)


@given(raw=adversarial, limit=st.integers(1, 3000))
@settings(max_examples=200, deadline=None)
def test_escaping_first_then_trimming_never_splits_an_entity(raw: str, limit: int) -> None:
    out = limits.mrkdwn(raw, limit)
    assert len(out) <= limit
    body = out.removesuffix(limits.ELLIPSIS)
    assert "<" not in body and ">" not in body
    for i, ch in enumerate(body):
        if ch == "&":
            assert body[i:].startswith(("&amp;", "&lt;", "&gt;"))
