"""Versioned prompts, the knowledge base picker, and the tone guardrail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ai.kb import KbCache, KnowledgeBase, source_stem
from bot.ai.prompts import PromptError, _parse, load_prompt
from bot.ai.tone import tone_flags
from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import load_policy, parse_policy

from .conftest import SAMPLE_KB


@pytest.mark.parametrize("name", ["summarize", "classify", "regenerate", "draft"])
def test_every_prompt_is_versioned_and_names_its_task(name: str) -> None:
    prompt = load_prompt(name)
    assert prompt.version == f"{name}.v1" and prompt.text.startswith(f"Task: {name}\n")
    assert "JSON" in prompt.text  # json_object mode needs the word in the messages


def test_a_prompt_file_without_matching_front_matter_is_refused() -> None:
    with pytest.raises(PromptError):
        _parse("draft.v2.md", "---\nname: draft\nversion: draft.v1\n---\nTask: draft\n")
    with pytest.raises(PromptError):
        _parse("draft.v1.md", "Task: draft\n")
    with pytest.raises(PromptError):
        load_prompt("nonexistent")


def test_the_sample_kb_covers_every_source_the_sample_tickets_name() -> None:
    tickets = json.loads((SAMPLE_KB.parent / "sample_tickets.json").read_text())["tickets"]
    named = {source_stem(s) for t in tickets for s in t.get("kb_sources", [])}
    shipped = {p.stem for p in SAMPLE_KB.glob("*.md")}
    assert named <= shipped, named - shipped


@pytest.mark.parametrize(
    "question, expected",
    [
        ("My parcel says delivered but nothing is at my door", "kb/lost-packages.md"),
        ("The reset email never came, I checked spam", "kb/password-reset.md"),
        ("The courier wants customs fees for my order to Norway", "kb/international-shipping.md"),
        ("The zipper on my pack broke after 14 months, is it under warranty?", "kb/warranty.md"),
        ("Cancel my Trail Box please", "kb/trail-box.md"),
    ],
)
def test_keyword_scoring_finds_the_right_article(question: str, expected: str) -> None:
    kb = KnowledgeBase.from_dir(SAMPLE_KB)
    found = kb.search(question)
    assert len(found) == 3 and expected in [s.source for s in found]


def test_kb_sources_pick_files_directly_in_any_spelling() -> None:
    kb = KnowledgeBase.from_dir(SAMPLE_KB)
    for source in ("kb/warranty.md", "warranty", "https://help.example.com/hc/articles/warranty"):
        found = kb.search("completely unrelated words", sources=[source])
        assert found and {s.source for s in found} == {"kb/warranty.md"}


def test_an_empty_or_missing_kb_gives_no_snippets(tmp_path: Path) -> None:
    assert KnowledgeBase.from_dir(None).search("refund") == []
    assert KnowledgeBase.from_dir(tmp_path / "missing").search("refund") == []


def test_the_kb_reloads_when_a_file_changes(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## Kayaks\nKayak hulls are carbon.\n")
    cache = KbCache(tmp_path, check_every=0)
    assert cache.get().search("kayak")[0].title == "A: Kayaks"
    (tmp_path / "b.md").write_text("# B\n\n## Tents\nTents ship from Columbus.\n")
    assert cache.get().search("tents columbus")[0].source == "kb/b.md"


def test_tone_flags_find_banned_phrases_whatever_the_case_quotes_or_spacing() -> None:
    policy = load_policy(BUNDLED_POLICY)
    text = "We apologize for  any\nINCONVENIENCE. That’s not our problem, but delivery is guaranteed!"
    assert tone_flags(text, policy) == [
        "we apologize for any inconvenience",
        "that's not our problem",
        "guaranteed",
    ]
    assert tone_flags("Your order shipped today and should arrive Thursday.", policy) == []
    assert tone_flags("We can't guarantee a date", policy) == []  # whole words only


def test_the_default_list_covers_robotic_dismissive_and_over_promising_phrases() -> None:
    phrases = load_policy(BUNDLED_POLICY).tone.banned_phrases
    for p in ("as an ai", "calm down", "per my last email", "guaranteed", "i promise"):
        assert p in phrases


def test_tone_flags_follow_the_policy_file() -> None:
    text = (
        BUNDLED_POLICY.read_text().split("tone:")[0]
        + 'tone:\n  banned_phrases: ["no worries"]\n'
        + "oversight:"
        + BUNDLED_POLICY.read_text().split("oversight:")[1]
    )
    assert tone_flags("No worries at all!", parse_policy(text)) == ["no worries"]
