"""Kappa and agreement against numbers worked out by hand (pure functions, no service)."""

from __future__ import annotations

import pytest

from bot.qa.calibration import (
    NOT_DEFINED,
    Verdict,
    Vote,
    agreement,
    between_reviewers,
    cohen_kappa,
    fleiss_kappa,
    original_verdict,
    strength,
)

G, D = Verdict.GOOD, Verdict.DEFECT


def test_fleiss_kappa_matches_the_classic_worked_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters each, 5 categories.
    # p_j = 20/140, 28/140, 39/140, 21/140, 32/140 = .143 .200 .279 .150 .229 -> P_e = Σ p_j² = 0.2128
    # P_i = (Σ n_ij² - 14) / (14·13): 1.000 .253 .308 .440 .330 .462 .242 .176 .286 .286 -> P̄ = 0.3780
    # κ = (0.3780 - 0.2128) / (1 - 0.2128) = 0.2099
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    kappa = fleiss_kappa([dict(enumerate(row)) for row in table])
    assert kappa.method == "fleiss" and kappa.items == 10 and kappa.raters == 14
    assert kappa.observed == pytest.approx(0.3780, abs=5e-5)
    assert kappa.expected == pytest.approx(0.2128, abs=5e-5)
    assert kappa.value == pytest.approx(0.2099, abs=5e-5)
    assert strength(kappa.value) == "fair"
    assert kappa.low is None  # no interval for Fleiss' kappa: only its null-hypothesis SE is textbook


def test_cohen_kappa_of_a_two_by_two_table_with_its_interval() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.70; A says yes 25/50, B 30/50 -> p_e = .5·.6 + .5·.4 = 0.50; κ = (.7-.5)/(1-.5) = 0.40
    # SE = √(p_o(1-p_o) / (n(1-p_e)²)) = √(.21 / 12.5) = 0.12961; 1.96·SE = 0.25404 -> [0.1460, 0.6540]
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    kappa = cohen_kappa(pairs)
    assert (kappa.method, kappa.items, kappa.raters) == ("cohen", 50, 2)
    assert kappa.observed == pytest.approx(0.70)
    assert kappa.expected == pytest.approx(0.50)
    assert kappa.value == pytest.approx(0.40)
    assert kappa.low == pytest.approx(0.1460, abs=1e-4)
    assert kappa.high == pytest.approx(0.6540, abs=1e-4)
    assert strength(kappa.value) == "fair"


def test_everyone_giving_the_same_verdict_is_not_defined_rather_than_a_division_by_zero() -> None:
    same = cohen_kappa([(G, G)] * 4)
    assert same.value is None and same.why == NOT_DEFINED and same.observed == 1.0
    fleiss = fleiss_kappa([{D: 3}, {D: 3}])
    assert fleiss.value is None and fleiss.why == NOT_DEFINED
    assert cohen_kappa([]).value is None and "no review in common" in (cohen_kappa([]).why or "")
    lonely = fleiss_kappa([{G: 1}, {D: 1}])
    assert lonely.value is None and lonely.items == 0 and "two or more" in (lonely.why or "")


def test_two_voters_get_cohen_three_get_fleiss_one_gets_none() -> None:
    # Two voters, 4 reviews: A = G G D D, B = G D D D. Agree on 3 of 4: p_o = .75.
    # A good 2/4, B good 1/4: p_e = .5·.25 + .5·.75 = .5 -> κ = (.75-.5)/.5 = 0.5
    a = [Vote(f"r{i}", "A", v) for i, v in enumerate([G, G, D, D])]
    b = [Vote(f"r{i}", "B", v) for i, v in enumerate([G, D, D, D])]
    two = between_reviewers(a + b)
    assert two is not None and two.method == "cohen" and two.value == pytest.approx(0.5)
    # A third voter C = G G D G. Per review counts: r0 {G:3}, r1 {G:2,D:1}, r2 {D:3}, r3 {D:2,G:1}
    # P_i = 1, 1/3, 1, 1/3 -> P̄ = 2/3; p_G = 6/12, p_D = 6/12 -> P_e = .5; κ = (2/3-.5)/.5 = 1/3
    c = [Vote(f"r{i}", "C", v) for i, v in enumerate([G, G, D, G])]
    three = between_reviewers(a + b + c)
    assert three is not None and three.method == "fleiss" and three.raters == 3
    assert three.value == pytest.approx(1 / 3)
    assert between_reviewers(a) is None


def test_agreement_with_the_original_decision_per_voter() -> None:
    originals = {"r0": G, "r1": G, "r2": D, "r3": G}
    votes = [Vote(f"r{i}", "A", v) for i, v in enumerate([G, G, D, D])]
    votes += [Vote("r0", "B", D), Vote("r1", "B", G)]
    result = agreement(votes, originals)
    assert result.voters == ("A", "B")
    assert (result.with_original["A"].k, result.with_original["A"].n) == (3, 4)
    assert (result.with_original["B"].k, result.with_original["B"].n) == (1, 2)
    assert (result.overall.k, result.overall.n) == (4, 6)


@pytest.mark.parametrize(
    ("decision", "distance", "verdict"),
    [
        ("approve", 0.0, G),
        ("edit", 0.1, G),  # a light edit: the draft was essentially right
        ("edit", 0.3, D),  # at the heavy-edit bar
        ("edit", None, D),
        ("reject", None, D),
        ("take_over", None, D),
        ("qa_good", 0.0, G),
        ("qa_defect", 0.0, D),
    ],
)
def test_original_decisions_map_to_good_or_defect(
    decision: str, distance: float | None, verdict: Verdict
) -> None:
    assert original_verdict(decision, edit_distance=distance, heavy_edit_distance=0.3) == verdict


def test_an_undecided_or_auto_sent_unrated_review_has_no_verdict() -> None:
    with pytest.raises(ValueError, match="auto_send"):
        original_verdict("auto_send", edit_distance=None, heavy_edit_distance=0.3)
