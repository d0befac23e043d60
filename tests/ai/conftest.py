"""Fixtures for AI assist: the OpenAI-compatible stand-in over real HTTP, and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app.settings import Settings
from sandbox.openai_standin import OpenAIStandin
from storage.db import session_scope
from storage.models import OutboxItem, Review

SAMPLE_KB = Path(__file__).resolve().parents[2] / "sandbox" / "kb"
OPENAI_KEY = "sk-test"


@pytest.fixture
def openai_standin() -> Iterator[OpenAIStandin]:
    standin = OpenAIStandin(api_key=OPENAI_KEY).start()
    yield standin
    standin.stop()


@pytest.fixture
def ai_settings(
    make_settings: Callable[..., Settings], sqlite_url: str, openai_standin: OpenAIStandin
) -> Callable[..., Settings]:
    """Settings with AI assist on, pointed at the stand-in, no background delivery (override any env name)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "HITL_DATABASE_URL": sqlite_url,
            "HITL_SCHEDULER": False,
            "HITL_OUTBOX_WORKER": False,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_standin.base_url,
            "HITL_OPENAI_TIMEOUT": 2.0,
            "HITL_OPENAI_CLASSIFY_TIMEOUT": 1.0,
            "HITL_KB_DIR": str(SAMPLE_KB),
            "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing leaves the machine (these tests need no Slack)
        }
        values.update(overrides)
        return make_settings(**values)

    return build


def load_review(engine: Any, review_id: str) -> Review:
    with session_scope(engine, readonly=True) as session:
        review = session.get(Review, review_id)
        assert review is not None
        session.expunge(review)
        return review


def outbox_rows(engine: Any, kind: str) -> list[OutboxItem]:
    from sqlalchemy import select

    with session_scope(engine, readonly=True) as session:
        rows = list(session.execute(select(OutboxItem).where(OutboxItem.kind == kind)).scalars())
        for r in rows:
            session.expunge(r)
        return rows
