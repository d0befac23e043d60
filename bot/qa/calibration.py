"""Agreement in calibration sessions: pure functions over verdicts (no database, no Slack).

- Between reviewers: Cohen's kappa when exactly two people voted (on the reviews both rated), Fleiss'
  kappa when three or more did (on the reviews at least two rated; Fleiss' P_i allows a different
  number of raters per review). When the chance agreement is 1 (everyone gave the same verdict) kappa
  is 0/0: it is reported as not defined, never divided.
- With the original decision: each reviewer's share of votes that match the verdict the original
  decision implies (`original_verdict`), with its 95% Wilson interval.
- Cohen's kappa carries an approximate 95% interval, κ ± 1.96·√(p_o(1−p_o)/(n(1−p_e)²)) (Cohen 1960),
  clipped to [−1, 1]. Fleiss' kappa has none here: its textbook standard error is the one under
  "no agreement beyond chance", a test, not an interval around the estimate.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from bot.reporting.oversight.interval import Z95, Rate
from storage.enums import DecisionKind

NOT_DEFINED = "not defined: everyone gave the same verdict"


class Verdict(StrEnum):
    GOOD = "good"
    DEFECT = "defect"


def original_verdict(decision: str, *, edit_distance: float | None, heavy_edit_distance: float) -> Verdict:
    """The verdict an original decision implies.

    good: approved, edited lightly (edit distance below the policy's `heavy_edit_distance`), auto-sent
    and rated Good in QA. defect: edited heavily (or with no distance recorded), rejected, taken over,
    auto-sent and rated Defect in QA.
    """
    if decision in (DecisionKind.APPROVE, DecisionKind.QA_GOOD):
        return Verdict.GOOD
    if decision == DecisionKind.EDIT:
        light = edit_distance is not None and edit_distance < heavy_edit_distance
        return Verdict.GOOD if light else Verdict.DEFECT
    if decision in (DecisionKind.REJECT, DecisionKind.TAKE_OVER, DecisionKind.QA_DEFECT):
        return Verdict.DEFECT
    raise ValueError(f"{decision!r} is not a decision a calibration session can show")


# ---------------------------------------------------------------- kappa


@dataclass(frozen=True)
class Kappa:
    """One agreement coefficient: its value (None when not defined, with `why`), and what it rests on."""

    method: Literal["cohen", "fleiss"]
    value: float | None
    observed: float | None  # p_o (Cohen) or P̄ (Fleiss)
    expected: float | None  # p_e or P̄_e: agreement by chance
    items: int  # reviews it was computed over
    raters: int
    why: str | None = None
    low: float | None = None  # 95% interval (Cohen only)
    high: float | None = None

    @property
    def name(self) -> str:
        return "Cohen's kappa" if self.method == "cohen" else "Fleiss' kappa"


def _undefined(
    method: Literal["cohen", "fleiss"], items: int, raters: int, why: str, observed: float | None = None
) -> Kappa:
    return Kappa(method, None, observed, None, items, raters, why=why)


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> Kappa:
    """Cohen's kappa of two raters over the items both rated: (rater A's category, rater B's) per item."""
    rows = list(pairs)
    n = len(rows)
    if n == 0:
        return _undefined("cohen", 0, 2, "not defined: the two reviewers rated no review in common")
    observed = sum(1 for a, b in rows if a == b) / n
    first, second = Counter(a for a, _ in rows), Counter(b for _, b in rows)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if math.isclose(expected, 1.0):
        return _undefined("cohen", n, 2, NOT_DEFINED, observed)
    value = (observed - expected) / (1 - expected)
    half = Z95 * math.sqrt(observed * (1 - observed) / (n * (1 - expected) ** 2))
    return Kappa(
        "cohen",
        value,
        observed,
        expected,
        n,
        2,
        low=max(-1.0, value - half),
        high=min(1.0, value + half),
    )


def fleiss_kappa(counts: Iterable[Mapping[Hashable, int]], *, raters: int | None = None) -> Kappa:
    """Fleiss' kappa over items, each given as {category: how many raters chose it} (2+ ratings each).

    P_i = (Σ_j n_ij² − n_i) / (n_i(n_i − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / Σ_i n_i, P̄_e = Σ_j p_j².
    Items with fewer than two ratings carry no agreement and are left out.
    """
    items = _rated_twice(counts)
    seen = raters if raters is not None else max((sum(i.values()) for i in items), default=0)
    if not items:
        return _undefined("fleiss", 0, seen, "not defined: no review was rated by two or more reviewers")
    observed, expected = _fleiss_terms(items)
    if math.isclose(expected, 1.0):
        return _undefined("fleiss", len(items), seen, NOT_DEFINED, observed)
    return Kappa("fleiss", (observed - expected) / (1 - expected), observed, expected, len(items), seen)


def _rated_twice(counts: Iterable[Mapping[Hashable, int]]) -> list[dict[Hashable, int]]:
    """The items with at least two ratings, without empty categories."""
    items = [{c: k for c, k in item.items() if k > 0} for item in counts]
    return [item for item in items if sum(item.values()) >= 2]


def _fleiss_terms(items: list[dict[Hashable, int]]) -> tuple[float, float]:
    """(P̄, P̄_e) of Fleiss' kappa."""
    per_item = []
    totals: Counter[Hashable] = Counter()
    for item in items:
        n_i = sum(item.values())
        per_item.append((sum(k * k for k in item.values()) - n_i) / (n_i * (n_i - 1)))
        totals.update(item)
    ratings = sum(totals.values())
    return sum(per_item) / len(per_item), sum((k / ratings) ** 2 for k in totals.values())


def strength(value: float | None) -> str:
    """Landis & Koch's (1977) words for a kappa."""
    if value is None:
        return "not defined"
    if value < 0:
        return "poor"
    for bound, word in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if value <= bound:
            return word
    return "almost perfect"


# ---------------------------------------------------------------- a session's agreement


@dataclass(frozen=True)
class Vote:
    review_id: str
    voter: str
    verdict: Verdict


@dataclass(frozen=True)
class Agreement:
    """What a closed session says: agreement between reviewers, and with the original decisions."""

    between: Kappa | None  # None when fewer than two people voted
    with_original: dict[str, Rate] = field(default_factory=dict)  # per voter: votes matching the original
    overall: Rate = Rate(0, 0)  # every vote against its review's original verdict
    voters: tuple[str, ...] = ()


def between_reviewers(votes: Iterable[Vote]) -> Kappa | None:
    """Cohen's kappa for exactly two voters, Fleiss' for three or more; None for fewer than two."""
    by_review: dict[str, dict[str, Verdict]] = defaultdict(dict)
    for vote in votes:
        by_review[vote.review_id][vote.voter] = vote.verdict
    voters = sorted({voter for verdicts in by_review.values() for voter in verdicts})
    if len(voters) < 2:
        return None
    if len(voters) == 2:
        a, b = voters
        return cohen_kappa((v[a], v[b]) for v in by_review.values() if a in v and b in v)
    return fleiss_kappa((Counter(v.values()) for v in by_review.values()), raters=len(voters))


def agreement(votes: Iterable[Vote], originals: Mapping[str, Verdict]) -> Agreement:
    """Kappa between the voters, and each voter's agreement with the original verdicts."""
    rows = [v for v in votes if v.review_id in originals]
    matched: Counter[str] = Counter()
    cast_by: Counter[str] = Counter()
    for vote in rows:
        cast_by[vote.voter] += 1
        matched[vote.voter] += vote.verdict == originals[vote.review_id]
    voters = tuple(sorted(cast_by))
    return Agreement(
        between=between_reviewers(rows),
        with_original={v: Rate(matched[v], cast_by[v]) for v in voters},
        overall=Rate(sum(matched.values()), sum(cast_by.values())),
        voters=voters,
    )


# ---------------------------------------------------------------- words (plain text, shared by Slack and the terminal)


def kappa_text(kappa: Kappa | None, voters: int) -> str:
    """`Fleiss' kappa 0.33 (fair; 3 reviewers, 4 reviews rated by 2+; observed 67%, by chance 50%)`."""
    if kappa is None:
        return f"agreement between reviewers needs two or more voters ({voters} voted)"
    over = (
        f"{kappa.items} review{'s' if kappa.items != 1 else ''} both rated"
        if kappa.method == "cohen"
        else f"{kappa.items} review{'s' if kappa.items != 1 else ''} rated by 2+"
    )
    who = f"{kappa.raters} reviewers, {over}"
    if kappa.value is None:
        return f"{kappa.name}: {kappa.why} ({who})"
    chance = f"observed {kappa.observed:.0%}, by chance {kappa.expected:.0%}"
    interval = f"; 95% CI {kappa.low:.2f} to {kappa.high:.2f}" if kappa.low is not None else ""
    return f"{kappa.name} {kappa.value:.2f} ({strength(kappa.value)}; {who}; {chance}{interval})"
