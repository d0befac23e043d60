"""How much a human changed an AI draft: normalised Levenshtein distance from 0 (same) to 1 (all new)."""

from __future__ import annotations

from difflib import SequenceMatcher

# Above this many DP cells (after trimming the shared prefix and suffix) pure-Python Levenshtein gets slow;
# difflib's ratio, a close stand-in, is used instead.
MAX_CELLS = 1_000_000


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions needed to turn `a` into `b`."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_distance(draft: str, final: str) -> float:
    """Normalised edit distance between the draft and what was sent (0..1, rounded to 6 places)."""
    longest = max(len(draft), len(final))
    if longest == 0:
        return 0.0
    start = 0
    while start < min(len(draft), len(final)) and draft[start] == final[start]:
        start += 1
    end = 0
    while end < min(len(draft), len(final)) - start and draft[-1 - end] == final[-1 - end]:
        end += 1
    a, b = draft[start : len(draft) - end], final[start : len(final) - end]
    if len(a) * len(b) <= MAX_CELLS:
        changed = float(levenshtein(a, b))
    else:
        changed = (1 - SequenceMatcher(None, a, b, autojunk=False).ratio()) * max(len(a), len(b))
    return round(min(1.0, changed / longest), 6)
