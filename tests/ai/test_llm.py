"""The model wrapper against a local OpenAI-compatible server, over real HTTP with the real openai client."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bot.ai.kb import KnowledgeBase
from bot.ai.llm import LLM, LLMUnavailable, TicketText, llm_from_settings
from bot.app.settings import Settings
from sandbox.openai_standin import OpenAIStandin

from .conftest import SAMPLE_KB

TYPES = ["order_status", "password_reset", "refund", "billing", "cancellation", "privacy", "safety"]
LOST = (
    "My order NW-317950 says delivered yesterday but nothing is at my door. My card 4242 4242 4242 4242 was "
    "charged. Call me on 614-555-0183 or mail brianna.cole@example.com. SSN 123-45-6789, IBAN "
    "DE89 3704 0044 0532 0130 00."
)


@pytest.fixture
def llm(ai_settings: Callable[..., Settings]) -> LLM:
    built = llm_from_settings(
        ai_settings(HITL_OPENAI_TIMEOUT=0.6), banned_phrases=["calm down", "guaranteed"]
    )
    assert built is not None
    return built


@pytest.fixture
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_dir(SAMPLE_KB)


def test_no_api_key_means_no_model(make_settings: Callable[..., Settings]) -> None:
    assert llm_from_settings(make_settings(OPENAI_API_KEY="")) is None


def test_summary_is_short_and_made_from_masked_text(llm: LLM, openai_standin: OpenAIStandin) -> None:
    summary = llm.summarize(LOST)
    assert summary and len(summary) < 300 and "NW-317950" in summary
    sent = openai_standin.requests("summarize")[0]
    assert "Task: summarize" in sent["system"] and sent["body"]["response_format"] == {"type": "json_object"}


def test_what_the_model_receives_has_personal_data_masked(
    llm: LLM, openai_standin: OpenAIStandin, kb: KnowledgeBase
) -> None:
    llm.summarize(LOST)
    llm.classify(LOST, interaction_types=TYPES, subject="Lost parcel, call 614-555-0183")
    llm.draft_reply(
        TicketText(message=LOST, subject="Where is it?", customer_name="Brianna Cole"), kb.search(LOST)
    )
    llm.regenerate(
        draft="Hi Brianna, we will email brianna.cole@example.com.",
        instruction="shorter",
        kb_snippets=[],
        customer_message=LOST,
    )
    sent = openai_standin.requests()
    assert len(sent) == 4
    for req in sent:
        everything = req["system"] + req["user"]
        for secret in (
            "4242 4242 4242 4242",
            "614-555-0183",
            "brianna.cole@example.com",
            "123-45-6789",
            "0532 0130",
            "Cole",
        ):
            assert secret not in everything, (req["task"], secret)
        assert "NW-317950" in req["user"]  # order numbers stay: the model needs them
    assert (
        "[card ••••4242]" in sent[0]["user"] and "[phone]" in sent[0]["user"] and "[email]" in sent[0]["user"]
    )


def test_masking_off_sends_the_text_as_written(
    ai_settings: Callable[..., Settings], openai_standin: OpenAIStandin
) -> None:
    llm = llm_from_settings(ai_settings(HITL_MASK_PII=False))
    assert llm is not None
    llm.summarize("mail me at brianna.cole@example.com")
    assert "brianna.cole@example.com" in openai_standin.requests("summarize")[0]["user"]


def test_classify_picks_a_policy_type_and_a_sentiment(llm: LLM) -> None:
    angry = llm.classify("This is the third time! Unacceptable. Where is my order?", interaction_types=TYPES)
    assert angry.interaction_type == "order_status" and angry.sentiment < -0.5
    calm = llm.classify("Thanks so much, how do I reset my password?", interaction_types=TYPES)
    assert calm.interaction_type == "password_reset" and calm.sentiment >= 0
    assert (
        llm.classify("We'd love to stock your tents wholesale", interaction_types=TYPES).interaction_type
        == "other"
    )


def test_a_type_outside_the_policy_is_malformed(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.script("classify", {"interaction_type": "world_domination", "sentiment": 0.1})
    with pytest.raises(LLMUnavailable) as err:
        llm.classify("hello", interaction_types=TYPES)
    assert err.value.reason == "malformed"


def test_regenerate_follows_the_instruction_grounded_in_kb(
    llm: LLM, openai_standin: OpenAIStandin, kb: KnowledgeBase
) -> None:
    draft = "Hi Maya,\n\nYour order shipped.\n\nIt should arrive Thursday.\n\nTrack it in Account > Orders.\n\nBest,\nSupport"
    snippets = kb.search("label created tracking", sources=["kb/order-tracking.md"])
    new = llm.regenerate(draft=draft, instruction="shorter, apologise for the delay", kb_snippets=snippets)
    assert "sorry for the delay" in new and new.count("\n\n") < draft.count("\n\n") + 1
    user = openai_standin.requests("regenerate")[0]["user"]
    assert "shorter, apologise for the delay" in user and "Order tracking" in user
    system = openai_standin.requests("regenerate")[0]["system"]
    assert '"calm down"' in system and "$banned_phrases" not in system


def test_draft_reply_is_grounded_and_has_a_confidence(llm: LLM, kb: KnowledgeBase) -> None:
    text, confidence = llm.draft_reply(
        TicketText(
            message="I forgot my password and the reset email never came", customer_name="Kenji Watanabe"
        ),
        kb.search("password reset email"),
    )
    assert text.startswith("Hi Kenji,") and 0 <= confidence <= 1
    _, low = llm.draft_reply(TicketText(message="Do you sell gift cards in Peru?"), [])
    assert low < confidence


def test_a_timeout_is_unavailable_quickly(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.set_delay(5)
    t = time.monotonic()
    with pytest.raises(LLMUnavailable) as err:
        llm.summarize("hello")
    elapsed = time.monotonic() - t
    assert err.value.reason == "timeout"
    assert elapsed < 3.0  # 0.6 s timeout, one retry after a short backoff
    assert len(openai_standin.requests("summarize")) == 2


def test_a_429_is_retried_once_by_the_client_then_succeeds(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.force_status(429, times=1, retry_after=0.2)
    assert llm.summarize("Where is my order?")
    assert [r["status"] for r in openai_standin.requests()] == [429, 200]


def test_two_429s_are_unavailable_not_retried_forever(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.force_status(429, times=5, retry_after=0.1)
    with pytest.raises(LLMUnavailable) as err:
        llm.summarize("Where is my order?")
    assert err.value.reason == "rate_limited" and len(openai_standin.requests()) == 2


def test_a_500_is_unavailable(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.force_status(500, times=2)
    with pytest.raises(LLMUnavailable) as err:
        llm.summarize("hello")
    assert err.value.reason == "server_error"


def test_a_wrong_key_is_unavailable(ai_settings: Callable[..., Settings]) -> None:
    llm = llm_from_settings(ai_settings(OPENAI_API_KEY="sk-wrong"))
    assert llm is not None
    with pytest.raises(LLMUnavailable) as err:
        llm.summarize("hello")
    assert err.value.reason == "http_401"


@pytest.mark.parametrize("kind", ["not_json", "schema", "empty"])
def test_malformed_output_is_unavailable(llm: LLM, openai_standin: OpenAIStandin, kind: str) -> None:
    openai_standin.set_malformed(times=1, kind=kind)
    with pytest.raises(LLMUnavailable) as err:
        llm.classify("Where is my order?", interaction_types=TYPES)
    assert err.value.reason == "malformed"
    assert llm.classify("Where is my order?", interaction_types=TYPES).interaction_type == "order_status"


def test_json_in_a_code_fence_is_accepted(llm: LLM, openai_standin: OpenAIStandin) -> None:
    openai_standin.script("summarize", '```json\n{"summary": "Asks where order NW-1 is."}\n```')
    assert llm.summarize("Where is NW-1?") == "Asks where order NW-1 is."


def test_regenerate_puts_back_the_drafts_own_details_but_never_the_customers(
    llm: LLM, openai_standin: OpenAIStandin
) -> None:
    draft = "Hi Isabella,\n\nWe sent a reset link to isabella.moreau@example.net.\n\nBest,\nSupport"
    new = llm.regenerate(
        draft=draft,
        instruction="apologise",
        kb_snippets=[],
        customer_message="I am isabella@home.example, call 614-555-0183",
    )
    assert "isabella.moreau@example.net" in new and "sorry" in new
    sent = openai_standin.requests("regenerate")[0]["user"]
    assert "isabella.moreau@example.net" not in sent and "isabella@home.example" not in sent
    openai_standin.script("regenerate", {"reply": "Hi, we will call you on [phone]."})
    assert (
        llm.regenerate(draft=draft, instruction="", kb_snippets=[], customer_message="call 614-555-0183")
        == "Hi, we will call you on [phone]."
    )
