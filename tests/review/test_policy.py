"""Routing policy: the bundled file, validation messages, and properties that must always hold."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app.cli import main
from bot.app.settings import BUNDLED_POLICY
from bot.review.policy import (
    ROUTE_ORDER,
    DraftFacts,
    History,
    PolicyError,
    load_policy,
    parse_policy,
    route_draft,
)

POLICY = load_policy(BUNDLED_POLICY)
TEXT = BUNDLED_POLICY.read_text()

types = st.sampled_from(
    [
        "order_status",
        "password_reset",
        "refund",
        "billing",
        "cancellation",
        "privacy",
        "safety",
        "legal",
        "warranty_claim",
        "something_new",
    ]
)
confidences = st.floats(min_value=0, max_value=1, allow_nan=False)
words = st.sampled_from(
    [
        "where is my parcel",
        "refund please",
        "I will call my lawyer",
        "fraud on my card",
        "thanks!",
        "cancel my plan",
        "the charger caught fire",
        "",
    ]
)


@st.composite
def drafts(draw: st.DrawFn) -> DraftFacts:
    return DraftFacts(
        interaction_type=draw(types),
        confidence=draw(confidences),
        customer_message=draw(words),
        customer_tier=draw(st.sampled_from([None, "standard", "plus", "vip"])),
        account_value=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=50_000, allow_nan=False))),
        refund_amount=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=5_000, allow_nan=False))),
        sentiment=draw(st.one_of(st.none(), st.floats(min_value=-1, max_value=1, allow_nan=False))),
        policy_exception=draw(st.booleans()),
    )


def test_bundled_policy_is_valid_and_covers_the_three_levels() -> None:
    assert route_draft(DraftFacts("order_status", 0.97, "where is my order?"), POLICY).route == "auto_send"
    assert route_draft(DraftFacts("order_status", 0.75, "where is my order?"), POLICY).route == "review"
    assert route_draft(DraftFacts("order_status", 0.30, "where is my order?"), POLICY).route == "take_over"


@given(confidences, st.sampled_from(["privacy", "safety", "legal"]))
def test_human_only_type_is_never_auto_sent_at_any_confidence(conf: float, kind: str) -> None:
    decision = route_draft(DraftFacts(kind, conf, "please help"), POLICY)
    assert decision.route == "take_over"
    assert "human_only" in [r.code for r in decision.reasons]


@given(drafts())
def test_a_trigger_never_moves_a_draft_toward_less_human_involvement(draft: DraftFacts) -> None:
    """Routing with every trigger input blanked gives the confidence-only route; triggers only add."""
    bare = dataclasses.replace(
        draft,
        customer_message="",
        customer_tier=None,
        account_value=None,
        refund_amount=None,
        sentiment=None,
        policy_exception=False,
    )
    with_triggers = route_draft(draft, POLICY, History(prior_contacts=3))
    without = route_draft(bare, POLICY, History())
    assert ROUTE_ORDER[with_triggers.route] >= ROUTE_ORDER[without.route]
    assert POLICY.tier_rank(with_triggers.tier) >= POLICY.tier_rank(without.tier)


@given(drafts(), st.integers(min_value=0, max_value=5))
def test_more_history_never_means_less_human_involvement(draft: DraftFacts, prior: int) -> None:
    fewer = route_draft(draft, POLICY, History(prior_contacts=prior))
    more = route_draft(draft, POLICY, History(prior_contacts=prior + 1))
    assert ROUTE_ORDER[more.route] >= ROUTE_ORDER[fewer.route]


@given(drafts())
def test_every_route_carries_its_reasons_and_is_deterministic(draft: DraftFacts) -> None:
    first = route_draft(draft, POLICY)
    assert first.reasons and first == route_draft(draft, POLICY)
    assert first.tier in POLICY.tiers


def test_refund_over_the_limit_needs_a_supervisor_to_approve() -> None:
    d = route_draft(DraftFacts("refund", 0.99, "refund", refund_amount=250.0), POLICY)
    assert d.route == "review"
    assert {"approve", "edit"} <= d.supervisor_decisions
    assert any(r.code == "refund_over_limit" for r in d.reasons)


def test_vip_goes_to_the_vip_tier_and_repeat_contact_escalates() -> None:
    assert route_draft(DraftFacts("order_status", 0.99, "hi", customer_tier="vip"), POLICY).tier == "vip"
    third = route_draft(DraftFacts("order_status", 0.99, "hi"), POLICY, History(prior_contacts=2))
    assert third.route == "take_over"


def test_unknown_type_goes_to_humans() -> None:
    d = route_draft(DraftFacts("warranty_claim", 0.99, "my tent ripped"), POLICY)
    assert d.route == "review" and d.reasons[-1].code == "unknown_type"


def test_keyword_exempt_for_its_own_type_but_not_others() -> None:
    assert route_draft(DraftFacts("refund", 0.99, "refund my $20 please"), POLICY).route == "auto_send"
    assert route_draft(DraftFacts("order_status", 0.99, "or refund me"), POLICY).route == "review"


def test_unknown_key_is_named_with_its_line() -> None:
    bad = TEXT.replace("    warn_at: 0.6\n", "    warn_after: 0.6\n")
    line = bad.splitlines().index("    warn_after: 0.6") + 1
    with pytest.raises(PolicyError) as err:
        parse_policy(bad, "p.yml")
    assert f"p.yml:{line}: tiers.vip.warn_after: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("sla: 15m\n    warn_at: 0.6", "sla: fifteen\n    warn_at: 0.6"),
            "tiers.vip.sla: 'fifteen' is not a duration",
        ),
        (
            ("  tier: standard\n\ninteraction_types", "  tier: nowhere\n\ninteraction_types"),
            "defaults.tier names tier 'nowhere'",
        ),
        (
            (
                "order_status:   {auto_send_at: 0.90, review_at: 0.60",
                "order_status:   {auto_send_at: 0.50, review_at: 0.60",
            ),
            "review_at must not be above auto_send_at",
        ),
        (("sample_rate: 0.10", "sample_rate: 2"), "qa.sample_rate: Input should be less than or equal to 1"),
    ],
)
def test_bad_values_get_clear_messages(change: tuple[str, str], expected: str) -> None:
    assert change[0] in TEXT
    with pytest.raises(PolicyError) as err:
        parse_policy(TEXT.replace(change[0], change[1]), "p.yml")
    assert expected in str(err.value)


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(PolicyError, match=r"p.yml:\d+: not valid YAML"):
        parse_policy("defaults:\n  tier: [unclosed\n", "p.yml")


def test_missing_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.yml")


def test_durations_parse_like_people_write_them() -> None:
    assert POLICY.tiers["billing"].sla == timedelta(hours=1)
    assert POLICY.triggers.repeat_contact is not None
    assert POLICY.triggers.repeat_contact.window == timedelta(hours=48)


MANAGERS_BLOCK = "managers:"


def _with_managers(block: str) -> str:
    """The bundled policy with its `managers:` section replaced by `block`."""
    head = TEXT[: TEXT.index(MANAGERS_BLOCK)]
    return head + block


def test_bundled_policy_names_no_managers_so_reports_stay_open() -> None:
    assert POLICY.managers.anyone


def test_managers_are_user_groups_and_users() -> None:
    policy = parse_policy(_with_managers("managers: {usergroups: [S0LEADS], users: [U0HEAD]}\n"))
    assert policy.managers.usergroups == ["S0LEADS"] and policy.managers.users == ["U0HEAD"]
    assert not policy.managers.anyone and policy.managers.mention() == "<!subteam^S0LEADS> <@U0HEAD>"


def test_a_misspelled_managers_key_is_named_with_its_line() -> None:
    bad = _with_managers("managers:\n  groups: [S0LEADS]\n")
    line = bad.splitlines().index("  groups: [S0LEADS]") + 1
    with pytest.raises(PolicyError) as err:
        parse_policy(bad, "p.yml")
    assert f"p.yml:{line}: managers.groups: unknown key" in str(err.value)


def test_policy_check_warns_on_stderr_when_no_managers_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", str(BUNDLED_POLICY)]) == 0
    out, err = capsys.readouterr()
    assert "valid policy" in out and "managers (who may see the /hitl reports): anyone" in out
    assert err.count("\n") == 1 and "warning: `managers` names nobody" in err
    assert "/hitl stats, queue, review and digest answer anyone" in err

    named = tmp_path / "p.yml"
    named.write_text(_with_managers("managers: {usergroups: [S0LEADS]}\n"))
    assert main(["policy", "check", str(named)]) == 0
    out, err = capsys.readouterr()
    assert "managers (who may see the /hitl reports): user group S0LEADS" in out and err == ""
