"""`hitl feedback export`: OpenAI fine-tuning files that parse line by line, and the raw feedback rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.qa.rating import rate_auto_send
from bot.reporting.feedback import SYSTEM_PROMPT
from storage.db import make_engine, session_scope
from tests.helpdesk.conftest import add_decision
from tests.helpdesk.test_outage import hitl

NOW = datetime.now(UTC)


@pytest.fixture
def store(db_url: str) -> str:
    """One decision of each kind, a refund edited long ago, and QA ratings of two auto-sends."""
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        add_decision(s, NOW, "1", "approve", draft="Approved as written.", customer_message="Where is #1?")
        add_decision(
            s,
            NOW,
            "2",
            "edit",
            draft="AI wording.",
            final_text="Human wording.",
            customer_message="Where is #2?",
        )
        add_decision(
            s,
            NOW,
            "3",
            "edit",
            draft="Refund AI.",
            final_text="Refund human.",
            interaction_type="refund",
            customer_message="Refund please, mail me at maya@example.com",
            decided_at=NOW - timedelta(days=40),
        )
        add_decision(s, NOW, "4", "reject", reason="hallucination", comment="Invented a coupon.")
        add_decision(s, NOW, "5", "take_over")
        good = add_decision(s, NOW, "6", "auto_send", draft="Rated good auto-send.")
        bad = add_decision(s, NOW, "7", "auto_send", draft="Rated defect auto-send.")
        add_decision(s, NOW, "8", "auto_send", draft="Unrated auto-send.")
        s.flush()
        rate_auto_send(session=s, review_id=good, good=True, actor_id="U1", actor_name="qa", now=NOW)
        rate_auto_send(
            session=s,
            review_id=bad,
            good=False,
            actor_id="U1",
            actor_name="qa",
            now=NOW,
            category="tone_mismatch",
            comment="Too curt.",
        )
    engine.dispose()
    return db_url


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_sft_holds_the_replies_a_human_stood_behind(store: str, tmp_path: Path) -> None:
    out = hitl(
        "feedback", "export", "--format", "sft", "-o", str(tmp_path / "sft.jsonl"), db_url=store, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    records = lines((tmp_path / "sft.jsonl").read_text())
    assert [r["messages"][2]["content"] for r in records] == [  # type: ignore[index]
        "Refund human.",
        "Approved as written.",
        "Human wording.",
        "Rated good auto-send.",
    ]
    first = records[1]["messages"]
    assert first == [
        {"role": "system", "content": SYSTEM_PROMPT},  # type: ignore[comparison-overlap]
        {"role": "user", "content": "Where is #1?"},
        {"role": "assistant", "content": "Approved as written."},
    ]
    assert "4 sft lines written to" in out.stderr


def test_dpo_is_one_pair_per_edit_with_the_human_text_preferred(store: str, tmp_path: Path) -> None:
    out = hitl("feedback", "export", "--format", "dpo", "--since", "30d", db_url=store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = lines(out.stdout)
    assert records == [
        {
            "input": {
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": "Where is #2?"},
                ]
            },
            "preferred_output": [{"role": "assistant", "content": "Human wording."}],
            "non_preferred_output": [{"role": "assistant", "content": "AI wording."}],
        }
    ]


def test_type_filter_and_pii_masking(store: str, tmp_path: Path) -> None:
    out = hitl(
        "feedback", "export", "--format", "dpo", "--type", "refund", "--mask-pii", db_url=store, cwd=tmp_path
    )
    records = lines(out.stdout)
    assert len(records) == 1 and "maya@example.com" not in out.stdout
    assert records[0]["preferred_output"] == [{"role": "assistant", "content": "Refund human."}]


def test_jsonl_is_every_feedback_row_with_its_fields(store: str, tmp_path: Path) -> None:
    out = hitl("feedback", "export", "--format", "jsonl", db_url=store, cwd=tmp_path)
    rows = lines(out.stdout)
    assert len(rows) == 10  # 8 decisions + 2 QA ratings
    defect = next(r for r in rows if r["decision"] == "qa_defect")
    assert (defect["stage"], defect["defect_category"], defect["defect_comment"]) == (
        "qa",
        "tone_mismatch",
        "Too curt.",
    )
    reject = next(r for r in rows if r["decision"] == "reject")
    assert reject["defect_category"] == "hallucination" and reject["ai_draft"]
    assert {
        "ticket_id",
        "interaction_type",
        "confidence",
        "route",
        "tier",
        "reasons",
        "final_text",
        "actor_name",
        "seconds_to_decision",
        "edit_distance",
        "model",
        "prompt_version",
        "decided_at",
    } <= set(rows[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "csv"], "--format must be one of sft, dpo, jsonl (got 'csv')"),
        ([], "--format must be one of sft, dpo, jsonl"),
        (["--format", "sft", "--since", "yesterday"], "--since: 'yesterday' is not a duration"),
    ],
)
def test_bad_flags_get_one_clear_line_and_exit_2(
    sqlite_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    out = hitl("feedback", "export", *args, db_url=sqlite_url, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
