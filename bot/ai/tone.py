"""The tone guardrail: which of the policy's banned phrases (robotic, dismissive, over-promising) a text uses."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.review.policy import Policy

_QUOTES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "“": '"', "”": '"'})


def _normalise(text: str) -> str:
    return " ".join(text.translate(_QUOTES).lower().split())


@lru_cache(maxsize=512)
def _pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in _normalise(phrase).split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


def tone_flags(text: str, policy: Policy) -> list[str]:
    """The banned phrases `text` contains, in the policy's order; case, curly quotes and spacing are ignored."""
    norm = _normalise(text)
    return [p for p in dict.fromkeys(policy.tone.banned_phrases) if p.strip() and _pattern(p).search(norm)]
