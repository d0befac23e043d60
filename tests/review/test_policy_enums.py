"""Routes and decisions in a policy file are the store's enums: the same names, the same order, clear refusals."""

from __future__ import annotations

import pytest

from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import ROUTE_ORDER, DraftFacts, PolicyError, load_policy, parse_policy, route_draft
from storage.enums import HUMAN_DECISION_KINDS, DecisionKind, Route
from storage.models import HUMAN_DECISIONS

POLICY = load_policy(BUNDLED_POLICY)
TEXT = BUNDLED_POLICY.read_text()


def test_routes_rank_from_auto_send_to_take_over() -> None:
    assert set(ROUTE_ORDER) == set(Route)
    assert ROUTE_ORDER[Route.AUTO_SEND] < ROUTE_ORDER[Route.REVIEW] < ROUTE_ORDER[Route.TAKE_OVER]


def test_a_routed_draft_carries_the_store_enums() -> None:
    d = route_draft(DraftFacts("refund", 0.99, "refund", refund_amount=250.0), POLICY)
    assert d.route is Route.REVIEW
    assert all(isinstance(k, DecisionKind) for k in d.supervisor_decisions)


def test_a_trigger_cannot_send_a_draft_straight_out() -> None:
    with pytest.raises(PolicyError, match="Input should be 'review' or 'take_over'"):
        parse_policy(TEXT.replace("route: review", "route: auto_send", 1), "p.yml")


def test_a_supervisor_signs_off_only_on_what_a_person_decides() -> None:
    bad = TEXT.replace("supervisor_for: [approve, edit]", "supervisor_for: [approve, qa_good]", 1)
    with pytest.raises(PolicyError, match="Input should be 'approve', 'edit', 'take_over' or 'reject'"):
        parse_policy(bad, "p.yml")


def test_the_human_decisions_index_predicate_is_the_one_migrated() -> None:
    assert [str(k) for k in HUMAN_DECISION_KINDS] == ["approve", "edit", "take_over", "reject"]
    assert HUMAN_DECISIONS == "stage = 'review' AND decision IN ('approve', 'edit', 'take_over', 'reject')"
