"""Decisions about oversight are recorded (issue 12 item 6): Accept on the review message, `hitl review
--apply TYPE`, the diff they produce, and the type's numbers before and after once the policy has it.

The month the verdicts rest on (order_status, in the bundled policy at auto_send_at 0.90):
20 approved and 20 rejected drafts a day before NOW. Error rate 20 of 40 = 50%, Wilson 35.2%–64.8%:
even the lower bound is above tighten_error_rate 20%, so "increase human involvement": auto-send at
0.95 (one whatif_step up) instead of 0.90. refund: 3 approvals, too few for anything: keep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import select

from bot.app.settings import BUNDLED_POLICY
from bot.reporting.oversight.accept import Acceptance, Accepted, accept, edited_policy
from bot.reporting.oversight.review import build_review
from bot.review.policy import load_policy, parse_policy
from bot.slack.blocks.reports import render_review_blocks
from bot.slack.ids import ActionId, BlockId
from sandbox.slack_sim import SlackSim, block_action_payload, slash_command_form, view_submission_payload
from storage.db import make_engine, session_scope
from storage.models import AuditEvent, OversightChange
from tests.conftest import SIGNING_SECRET, FakeClock, Service, wait_for
from tests.reporting.factory import NOW, Store

MANAGER = "U0MANAGER1"
AGENT = "U0AGENT001"
CHANNEL = "C0MANAGERS"
OLD_LINE = "  order_status:   {auto_send_at: 0.90, review_at: 0.60, tier: standard}"
MODAL_KEYS = ("type", "callback_id", "title", "submit", "close", "blocks", "private_metadata")
NEW_LINE = "  order_status:   {auto_send_at: 0.95, review_at: 0.60, tier: standard}"


def harmful_month(store: Store) -> None:
    for kind in ("approve", "reject"):
        for _ in range(20):
            store.decided("order_status", kind, seconds=120, defect="other" if kind == "reject" else None)
    for _ in range(3):
        store.decided("refund", "approve", seconds=60)


def policy_copy(tmp_path: Path) -> Path:
    """The bundled policy file as it is (comments and all), with one manager named."""
    text = BUNDLED_POLICY.read_text(encoding="utf-8").replace(
        "  users: []               # e.g. [U0HEADOFSUPPORT]", f"  users: [{MANAGER}]               # e.g."
    )
    path = tmp_path / "policy.yml"
    path.write_text(text, encoding="utf-8")
    assert load_policy(path).managers.users == [MANAGER]
    return path


def changes(engine: Any) -> list[OversightChange]:
    with session_scope(engine, readonly=True) as session:
        return list(session.execute(select(OversightChange).order_by(OversightChange.id)).scalars())


def audits(engine: Any, action: str) -> list[AuditEvent]:
    with session_scope(engine, readonly=True) as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


# ---------------------------------------------------------------- the diff itself


def test_the_diff_changes_only_the_types_threshold_and_keeps_comments() -> None:
    text = BUNDLED_POLICY.read_text(encoding="utf-8")
    policy = parse_policy(text)
    edited = edited_policy(text, policy, "order_status", 0.95)
    assert [line for line in edited.splitlines() if line not in text.splitlines()] == [NEW_LINE]
    assert parse_policy(edited).thresholds("order_status").auto_send_at == 0.95
    assert "# hitl routing policy" in edited  # comments survive
    # A type the policy does not list (it runs on the defaults) gets its own entry.
    added = edited_policy(text, policy, "warranty", 1.01)
    assert parse_policy(added).thresholds("warranty").auto_send_at == 1.01
    assert "  warranty: {auto_send_at: 1.01, review_at: 0.60, tier: standard}" in added.splitlines()
    # Block style and a file without the section are edited too.
    block = "defaults: {auto_send_at: 0.95, review_at: 0.6, tier: s}\ntiers: {s: {channel: '#c', sla: 1h}}\n"
    assert (
        parse_policy(edited_policy(block, parse_policy(block), "x", 0.9)).thresholds("x").auto_send_at == 0.9
    )
    nested = block + "interaction_types:\n  x:\n    auto_send_at: 0.99   # comment\n    review_at: 0.6\n"
    out = edited_policy(nested, parse_policy(nested), "x", 0.94)
    assert (
        "    auto_send_at: 0.94   # comment" in out and parse_policy(out).thresholds("x").auto_send_at == 0.94
    )


# ---------------------------------------------------------------- Accept in Slack


@pytest.fixture
def svc(
    tmp_path: Path,
    db_url: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
    slack_standin: Any,
) -> Service:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        harmful_month(Store(session))
    engine.dispose()
    settings = make_settings(
        SLACK_API_URL=slack_standin.base_url,
        HITL_DATABASE_URL=db_url,
        HITL_POLICY_FILE=str(policy_copy(tmp_path)),
        HITL_SCHEDULER=False,
    )
    return start_service(settings, clock=FakeClock(NOW))


def review_message(sim: SlackSim, standin: Any) -> dict[str, Any]:
    """`/hitl review 30d` as the manager: the ephemeral answer, with its Accept buttons."""
    sim.post_command(slash_command_form(text="review 30d", user_id=MANAGER, channel_id=CHANNEL))
    return wait_for(
        lambda: next(
            (e for e in standin.ephemerals(MANAGER) if ActionId.OVERSIGHT_ACCEPT in str(e["blocks"])), None
        ),
        timeout=20,
        what="the review with an Accept button",
    )


def click_accept(sim: SlackSim, standin: Any, message: dict[str, Any], user: str) -> None:
    payload = block_action_payload(
        message=message,
        channel=message["channel"],
        action_id=ActionId.OVERSIGHT_ACCEPT,
        user_id=user,
        trigger_id=standin.issue_trigger_id(),
    )
    assert sim.post_action(payload).status_code == 200


def reason(text: str) -> dict[str, Any]:
    return {
        BlockId.OVERSIGHT_REASON: {ActionId.OVERSIGHT_REASON: {"type": "plain_text_input", "value": text}}
    }


def test_a_manager_accepts_a_verdict_and_gets_the_diff_others_are_refused(
    svc: Service, slack_standin: Any
) -> None:
    engine, policy_file = svc.runtime.engine, Path(svc.runtime.settings.policy_file)
    original = policy_file.read_text(encoding="utf-8")
    with SlackSim(svc.url, SIGNING_SECRET) as sim:
        message = review_message(sim, slack_standin)
        button = json.loads(
            next(
                e["accessory"]["value"]
                for e in message["blocks"]
                if (e.get("accessory") or {}).get("action_id") == ActionId.OVERSIGHT_ACCEPT
            )
        )
        assert button == {"t": "order_status", "v": "increase", "c": 0.9, "p": 0.95, "d": 30}

        # Not a manager: refused ephemerally, audited, no modal.
        click_accept(sim, slack_standin, message, AGENT)
        refusal = wait_for(lambda: slack_standin.ephemerals(AGENT), what="the refusal")[0]
        assert (
            "Only the policy's managers may accept" in refusal["text"] and f"<@{MANAGER}>" in refusal["text"]
        )
        assert slack_standin.views() == []
        assert [a.actor for a in audits(engine, "report_refused")] == [AGENT]

        click_accept(sim, slack_standin, message, MANAGER)
        view = wait_for(lambda: slack_standin.views(), what="the accept modal")[-1]
        modal = View(**{k: v for k, v in view.items() if k in MODAL_KEYS})
        modal.validate_json()  # slack_sdk's limits (title, labels, blocks) hold
        assert "increase human involvement — auto_send_at 0.90 → 0.95" in str(view["blocks"])

        blank = sim.post_view_submission(
            view_submission_payload(view=view, user_id=MANAGER, values=reason("   "))
        )
        assert blank.json() == {
            "response_action": "errors",
            "errors": {
                BlockId.OVERSIGHT_REASON: "Say why you accept this verdict: it is recorded with the change in the audit log."
            },
        }
        assert changes(engine) == []

        ok = sim.post_view_submission(
            view_submission_payload(
                view=view, user_id=MANAGER, values=reason("Half the drafts were rejected <!channel>")
            )
        )
        assert ok.status_code == 200
        done = wait_for(
            lambda: next(
                (e for e in slack_standin.ephemerals(MANAGER) if "Recorded oversight change" in e["text"]),
                None,
            ),
            what="the recorded change",
        )
    [change] = changes(engine)
    assert (change.interaction_type, change.verdict, change.actor, change.source) == (
        "order_status",
        "increase",
        MANAGER,
        "slack",
    )
    assert change.before == {"auto_send_at": 0.9, "review_at": 0.6} and change.after == {
        "auto_send_at": 0.95,
        "review_at": 0.6,
    }
    assert change.reason == "Half the drafts were rejected <!channel>" and change.applied_at is None
    assert f"-{OLD_LINE}\n+{NEW_LINE}\n" in change.diff and change.diff.startswith(
        "--- a/policy.yml\n+++ b/policy.yml\n"
    )
    [audit] = audits(engine, "oversight_accepted")
    assert (
        audit.actor == MANAGER
        and audit.detail["change_id"] == change.id
        and audit.detail["diff"] == change.diff
    )
    assert any(e.startswith("error rate 50% (20 of 40") for e in audit.detail["evidence"])
    # The reply: the diff in a code block (escaped), how to apply it; the policy file itself untouched.
    for block in done["blocks"]:
        assert Block.parse(block) is not None
    shown = str(done["blocks"])
    assert f"+{NEW_LINE}" in shown and "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    assert "patch -p1 &lt; oversight-change-" in shown and "hitl policy check" in shown
    assert policy_file.read_text(encoding="utf-8") == original


def test_a_verdict_the_evidence_no_longer_supports_is_not_recorded(svc: Service, slack_standin: Any) -> None:
    """After the review was shown, 300 more approvals arrive: 20 rejects of 340 judged is 5.9%, Wilson lower
    bound 3.8%, no longer above 20%, so the verdict is keep; the Accept from the old message records nothing."""
    engine = svc.runtime.engine
    with SlackSim(svc.url, SIGNING_SECRET) as sim:
        message = review_message(sim, slack_standin)
        click_accept(sim, slack_standin, message, MANAGER)
        view = wait_for(lambda: slack_standin.views(), what="the accept modal")[-1]
        with session_scope(engine) as session:
            store = Store(session)
            for _ in range(300):  # decided in the last half hour: the review's own clock is NOW
                store.decided("order_status", "approve", seconds=120, created=NOW - timedelta(minutes=30))
        sim.post_view_submission(
            view_submission_payload(view=view, user_id=MANAGER, values=reason("Too many rejects"))
        )
        told = wait_for(
            lambda: next((e for e in slack_standin.ephemerals(MANAGER) if "Not recorded" in e["text"]), None),
            what="the refusal",
        )
    assert "The evidence changed since that review: order_status is now “keep as is”" in told["text"]
    assert changes(engine) == [] and audits(engine, "oversight_accepted") == []
    assert [a.detail["verdict"] for a in audits(engine, "oversight_not_recorded")] == ["increase"]


# ---------------------------------------------------------------- before and after


def test_once_the_policy_has_the_change_the_review_shows_the_type_before_and_after(
    svc: Service,
    tmp_path: Path,
    db_url: str,
    make_settings: Callable[..., Any],
    start_service: Callable[..., Service],
) -> None:
    """Applied a day after NOW (the restart with the patched file), reviewed 7 days later.
    The 7d before: 20 approved + 20 rejected → approved 50% (20 of 40; Wilson 35%–65%), error rate the
    same, 40 drafts. The 7d after: 10 approved → 100% (10 of 10;
    Wilson 72%–100%), error rate 0% (0 of 10; Wilson 0%–28%), 10 drafts."""
    accepted = accept(
        svc.runtime, Acceptance("order_status", "Half rejected", MANAGER, "slack", timedelta(days=30))
    )
    policy_file = Path(svc.runtime.settings.policy_file)
    patch_file = tmp_path / "change.diff"
    patch_file.write_text(accepted.diff, encoding="utf-8")
    applied = subprocess.run(
        ["patch", "-p1", "-i", str(patch_file)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert load_policy(policy_file).thresholds("order_status").auto_send_at == 0.95

    restarted_at = NOW + timedelta(days=1)
    later = start_service(
        make_settings(HITL_DATABASE_URL=db_url, HITL_POLICY_FILE=str(policy_file), HITL_SCHEDULER=False),
        clock=FakeClock(restarted_at),
    )
    engine = later.runtime.engine
    wait_for(lambda: audits(engine, "policy_changed")[1:], what="the new policy recorded at start-up")
    with session_scope(engine) as session:
        store = Store(session, now=restarted_at + timedelta(days=3))
        for _ in range(10):
            store.decided("order_status", "approve", seconds=120)
    with session_scope(engine, readonly=True) as session:
        review = build_review(
            session=session,
            policy=later.runtime.policy,
            now=restarted_at + timedelta(days=7),
            period=timedelta(days=7),
        )
    [section] = [s for s in review.sections if s.title == "Oversight changes"]
    lines = section.per_type["order_status"]
    assert lines[0].startswith(
        f"change #{accepted.change.id} (increase: auto_send_at 0.90 → 0.95), accepted 2026-11-16 by <@{MANAGER}>"
    )
    assert lines[0].endswith("applied 2026-11-17 10:00 UTC")
    assert lines[1] == (
        "the 7d before: approved without edit 50% (20 of 40; 95% Wilson 35%–65%) · error rate 50% (20 of 40; "
        "95% Wilson 35%–65%) · QA defects — (no QA ratings) · 40 drafts"
    )
    assert lines[2] == (
        "the 7d after: approved without edit 100% (10 of 10; 95% Wilson 72%–100%) · error rate 0% (0 of 10; "
        "95% Wilson 0%–28%) · QA defects — (no QA ratings) · 10 drafts"
    )
    [stored] = changes(engine)
    assert stored.applied_at == restarted_at
    # Slack shows the same lines under the type's verdict, the manager as a live mention.
    _, blocks = render_review_blocks(review)
    shown = str([b.to_dict() for b in blocks])
    assert "the 7d after: approved without edit 100% (10 of 10" in shown and f"<@{MANAGER}>" in shown


# ---------------------------------------------------------------- hitl review --apply


def hitl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "SLACK_", "ZENDESK_", "OPENAI_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
        check=False,
    )


def test_hitl_review_apply_prints_the_diff_and_records_who_and_why(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        harmful_month(Store(session, now=datetime.now(UTC)))
    policy_file = policy_copy(tmp_path)
    original = policy_file.read_text(encoding="utf-8")
    env = {"HITL_DATABASE_URL": db_url, "HITL_POLICY_FILE": str(policy_file)}
    try:
        for args, expect in (
            (("--apply", "nonsense", "--reason", "x"), "unknown interaction type 'nonsense'"),
            (("--apply", "refund", "--reason", "x"), "the verdict for refund is keep"),
            (
                ("--apply", "billing", "--reason", "x"),
                "no evidence: billing had no drafts or decisions in the last 30d",
            ),
            (("--apply", "order_status"), "--apply needs --reason TEXT"),
            (("--apply", "order_status", "--reason", "x", "--period", "7x"), "--period"),
        ):
            bad = hitl("review", *args, env=env)
            assert bad.returncode == 2 and expect in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
        assert changes(engine) == []

        out = hitl(
            "review", "--apply", "order_status", "--reason", "Half rejected", "--actor", "ana", env=env
        )
        assert out.returncode == 0, out.stderr
        assert (
            out.stdout.startswith("--- a/policy.yml\n+++ b/policy.yml\n")
            and f"-{OLD_LINE}\n+{NEW_LINE}\n" in out.stdout
        )
        assert (
            "recorded oversight change #" in out.stderr
            and "by ana" in out.stderr
            and "hitl policy check" in out.stderr
        )

        # The same change again, before it is applied: refused, and said which one is waiting.
        twice = hitl("review", "--apply", "order_status", "--reason", "Again", env=env)
        assert twice.returncode == 2 and "this change was accepted already: #" in twice.stderr, twice.stderr
        assert policy_file.read_text(encoding="utf-8") == original  # never edited by the tool

        # The diff applies as printed; with the file at 0.95 the rejects still call for more humans: 1.00,
        # written to a file this time, and recorded as the OS user.
        (tmp_path / "printed.diff").write_text(out.stdout, encoding="utf-8")
        patched = subprocess.run(
            ["patch", "-p1", "-i", "printed.diff"], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert patched.returncode == 0, patched.stdout + patched.stderr
        assert (
            yaml.safe_load(policy_file.read_text())["interaction_types"]["order_status"]["auto_send_at"]
            == 0.95
        )
        written = tmp_path / "out.diff"
        again = hitl(
            "review", "--apply", "order_status", "--reason", "Still", "--write-diff", str(written), env=env
        )
        assert again.returncode == 0 and again.stdout == "", again.stderr
        assert (
            "+  order_status:   {auto_send_at: 1.00, review_at: 0.60, tier: standard}" in written.read_text()
        )
        recorded = changes(engine)
        assert [(c.actor, c.source, c.reason, c.after["auto_send_at"]) for c in recorded] == [
            ("ana", "cli", "Half rejected", 0.95),
            (recorded[1].actor, "cli", "Still", 1.0),
        ]
        assert recorded[1].actor not in ("", "ana")  # the OS user
        assert [a.actor for a in audits(engine, "oversight_accepted")] == ["ana", recorded[1].actor]
    finally:
        engine.dispose()


def test_a_change_to_the_bundled_policy_says_to_copy_it_first(tmp_path: Path) -> None:
    change = OversightChange(
        id=7,
        interaction_type="order_status",
        verdict="increase",
        reason="r",
        actor="a",
        source="cli",
        period_days=30,
        accepted_at=NOW,
        diff="",
    )
    bundled = Accepted(change, "", BUNDLED_POLICY).instructions()
    assert "runs the bundled policy" in bundled and "point HITL_POLICY_FILE at it" in bundled
    own = Accepted(change, "", tmp_path / "policy.yml").instructions()
    assert f"Apply it in {tmp_path}" in own and "patch -p1 < oversight-change-7.diff" in own
