"""Accepting an oversight verdict: the manager's decision recorded, the policy change written as a diff.

`accept_verdict` (the Slack button's modal and `hitl review --apply TYPE`) recomputes the type's verdict,
refuses when it is keep, missing or no longer the one the manager saw, writes the new threshold into
the policy file's text as a unified diff (never into the file itself: it is under review, and deploying
it is a person's call), and records an `oversight_change` row plus an `oversight_accepted` audit entry.
`bot.reporting.oversight.changes` then follows the change into the running policy and the reviews.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from bot.app.runtime import Runtime
from bot.app.settings import BUNDLED_POLICY
from bot.reporting.format import span_label
from bot.reporting.oversight.changes import same_threshold
from bot.reporting.oversight.recommend import Recommendation
from bot.reporting.oversight.review import build_review
from bot.review.people import MembershipUnknown
from bot.review.policy import Policy, PolicyError, parse_policy
from storage import repo
from storage.db import session_scope
from storage.models import OversightChange


class ChangeRefused(Exception):
    """A verdict that cannot be accepted (unknown type, keep, no evidence, evidence changed, file trouble)."""


class EvidenceChanged(ChangeRefused):
    """The verdict the manager saw no longer stands on today's numbers: nothing is recorded."""


class VerdictRef(BaseModel):
    """The Accept button's value: {"t": type, "v": verdict, "c": current, "p": proposed, "d": days}."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    t: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    v: Literal["expand", "increase", "keep"]
    c: float | None = None
    p: float | None = None
    d: float = Field(gt=0, le=731, allow_inf_nan=False)  # 30 for 30d, 0.5 for 12h


@dataclass(frozen=True)
class Accepted:
    """A recorded change and what to tell the person who accepted it."""

    change: OversightChange
    diff: str
    policy_path: Path

    def instructions(self) -> str:
        """How to apply the diff: the tool never edits the policy file itself."""
        folder, name = self.policy_path.parent, self.policy_path.name
        if self.policy_path.resolve() == BUNDLED_POLICY.resolve():
            return (
                f"The service runs the bundled policy ({self.policy_path}): copy it, apply the diff to the copy "
                f"(`patch -p1 < oversight-change-{self.change.id}.diff` beside it, or edit it by hand), point "
                "HITL_POLICY_FILE at it, run `hitl policy check` on it and restart the service."
            )
        return (
            f"Apply it in {folder}: save the diff as oversight-change-{self.change.id}.diff and run "
            f"`patch -p1 < oversight-change-{self.change.id}.diff` (or edit {name} by hand), then "
            f"`hitl policy check {self.policy_path}` and restart the service. The next review marks the "
            "change applied and shows the type before and after it."
        )


# ---------------------------------------------------------------- the verdict, checked again


def verdict_now(
    *, session: Session, policy: Policy, now: datetime, interaction_type: str, period: timedelta
) -> Recommendation:
    """Today's verdict for one type over `period`, or ChangeRefused when the type is unknown or has no data."""
    known = set(policy.interaction_types) | set(policy.human_only)
    review = build_review(
        session=session, policy=policy, now=now, period=period, interaction_type=interaction_type
    )
    rec = next((r for r in review.recommendations if r.interaction_type == interaction_type), None)
    if rec is None and interaction_type not in known:
        raise ChangeRefused(
            f"unknown interaction type {interaction_type!r}: not in the policy and no decisions in the last "
            f"{span_label(period)} (types: {', '.join(sorted(known))})"
        )
    if rec is None:
        raise ChangeRefused(
            f"no evidence: {interaction_type} had no drafts or decisions in the last {span_label(period)}"
        )
    return rec


def check_still_stands(ref: VerdictRef, rec: Recommendation) -> None:
    """EvidenceChanged unless today's verdict and thresholds are the ones on the button."""
    if (
        rec.verdict != ref.v
        or not same_threshold(rec.current, ref.c)
        or not same_threshold(rec.proposed, ref.p)
    ):
        raise EvidenceChanged(
            f"The evidence changed since that review: {ref.t} is now “{rec.label}” ({rec.headline}). "
            "Nothing was recorded; run `/hitl review` again and accept from the new message."
        )


def acceptable(rec: Recommendation) -> tuple[float, float]:
    """(current, proposed) auto-send thresholds of a verdict that changes something, else ChangeRefused."""
    if rec.verdict == "keep" or rec.current is None or rec.proposed is None:
        why = "; ".join(rec.reasons[:3]) or "nothing to change"
        raise ChangeRefused(f"the verdict for {rec.interaction_type} is keep ({why}): nothing to apply")
    return rec.current, rec.proposed


# ---------------------------------------------------------------- the policy change as a diff


def threshold_text(value: float) -> str:
    """0.9 → `0.90`, as the bundled policy writes thresholds."""
    return f"{value:.2f}"


def _types_node(root: yaml.Node) -> yaml.MappingNode | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value == "interaction_types":
            return value if isinstance(value, yaml.MappingNode) else None
    return None


def _auto_send_node(types: yaml.MappingNode, itype: str) -> yaml.ScalarNode | None:
    for key, value in types.value:
        if key.value == itype and isinstance(value, yaml.MappingNode):
            for k, v in value.value:
                if k.value == "auto_send_at" and isinstance(v, yaml.ScalarNode):
                    return v
    return None


def _new_entry(policy: Policy, itype: str, proposed: float) -> str:
    d = policy.defaults
    return (
        f"{itype}: {{auto_send_at: {threshold_text(proposed)}, review_at: {threshold_text(d.review_at)}, "
        f"tier: {d.tier}}}"
    )


def _add_type(text: str, types: yaml.MappingNode | None, entry: str) -> str:
    """The policy text with a new `interaction_types` entry (block or flow style, or a new section)."""
    if types is None:
        return text.rstrip("\n") + f"\n\ninteraction_types:\n  {entry}\n"
    if types.flow_style:
        end = types.end_mark.index - 1  # the closing brace
        sep = ", " if types.value else ""
        return text[:end] + sep + entry + text[end:]
    indent = " " * types.value[0][0].start_mark.column
    last_line = types.value[-1][1].end_mark.line  # end of the last entry (the next line, for a block)
    lines = text.splitlines(keepends=True)
    at = last_line if types.value[-1][1].end_mark.column == 0 else last_line + 1
    return "".join(lines[:at] + [f"{indent}{entry}\n"] + lines[at:])


def edited_policy(text: str, policy: Policy, itype: str, proposed: float) -> str:
    """The policy file's text with the type's auto-send threshold changed (comments and layout kept)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    types = _types_node(root) if root is not None else None
    node = _auto_send_node(types, itype) if types is not None else None
    if node is not None:
        return text[: node.start_mark.index] + threshold_text(proposed) + text[node.end_mark.index :]
    return _add_type(text, types, _new_entry(policy, itype, proposed))


def policy_diff(path: Path, policy: Policy, itype: str, proposed: float) -> str:
    """A unified diff of the policy file for the new threshold, checked to parse and to say what it should."""
    try:
        before = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChangeRefused(f"cannot read the policy file {path} ({exc.strerror})") from None
    try:
        after = edited_policy(before, policy, itype, proposed)
        changed = parse_policy(after, str(path)).thresholds(itype).auto_send_at
    except (yaml.YAMLError, PolicyError) as exc:
        raise ChangeRefused(f"the change could not be written into {path} safely: {exc}") from None
    if not same_threshold(changed, round(proposed, 2)):
        raise ChangeRefused(f"the change could not be written into {path} safely (it would read {changed})")
    if before == after:
        raise ChangeRefused(f"{path} already has auto_send_at {threshold_text(proposed)} for {itype}")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path.name}",
        tofile=f"b/{path.name}",
    )
    return "".join(lines)


# ---------------------------------------------------------------- recording


@dataclass(frozen=True)
class Acceptance:
    """Who accepts which type's verdict, why, over which period, and from where."""

    interaction_type: str
    reason: str
    actor: str
    source: Literal["slack", "cli"]
    period: timedelta
    ref: VerdictRef | None = None  # the verdict the manager saw (Slack); None: today's (CLI)


@dataclass(frozen=True)
class Prepared:
    """A change checked against today's evidence and written as a diff, not recorded yet."""

    change: OversightChange
    evidence: tuple[str, ...]


def prepare_change(
    *, session: Session, policy: Policy, policy_path: Path, now: datetime, acceptance: Acceptance
) -> Prepared:
    """Recompute the verdict (refusing keep, no evidence, or a verdict that changed) and write the diff."""
    a = acceptance
    reason = a.reason.strip()
    if not reason:
        raise ChangeRefused("say why the change is accepted (a reason is required)")
    rec = verdict_now(
        session=session, policy=policy, now=now, interaction_type=a.interaction_type, period=a.period
    )
    if a.ref is not None:
        check_still_stands(a.ref, rec)
    current, proposed = acceptable(rec)
    refuse_duplicate(session, a.interaction_type, proposed)
    review_at = policy.thresholds(a.interaction_type).review_at
    change = OversightChange(
        interaction_type=a.interaction_type,
        verdict=rec.verdict,
        before={"auto_send_at": current, "review_at": review_at},
        after={"auto_send_at": round(proposed, 2), "review_at": review_at},
        reason=reason,
        actor=a.actor,
        source=a.source,
        period_days=max(1, round(a.period / timedelta(days=1))),
        accepted_at=now,
        diff=policy_diff(policy_path, policy, a.interaction_type, proposed),
    )
    return Prepared(change, rec.evidence)


def refuse_duplicate(session: Session, interaction_type: str, proposed: float) -> None:
    """ChangeRefused when the same change was accepted already and is still waiting to be applied."""
    q = select(OversightChange).where(
        col(OversightChange.interaction_type) == interaction_type, col(OversightChange.applied_at).is_(None)
    )
    for earlier in session.execute(q).scalars():
        if same_threshold(earlier.after.get("auto_send_at"), round(proposed, 2)):
            raise ChangeRefused(
                f"this change was accepted already: #{earlier.id} by {earlier.actor} on "
                f"{earlier.accepted_at:%Y-%m-%d %H:%M} UTC, waiting to be applied to the policy file"
            )


def record_change(*, session: Session, prepared: Prepared, policy_path: Path) -> Accepted:
    """Store the change and its `oversight_accepted` audit entry (who, what, why, the evidence, the diff)."""
    change = prepared.change
    refuse_duplicate(session, change.interaction_type, float(change.after["auto_send_at"]))
    session.add(change)
    session.flush()
    repo.audit(
        session=session,
        at=change.accepted_at,
        actor=change.actor,
        action="oversight_accepted",
        change_id=change.id,
        interaction_type=change.interaction_type,
        verdict=change.verdict,
        before=change.before,
        after=change.after,
        reason=change.reason[:2000],
        source=change.source,
        evidence=list(prepared.evidence),
        policy_file=str(policy_path),
        diff=change.diff[:20_000],
    )
    return Accepted(change, change.diff, policy_path)


def accept(runtime: Runtime, acceptance: Acceptance) -> Accepted:
    """Check and write the change reading only, then record it in one short write transaction."""
    now = runtime.clock.now()
    path = Path(runtime.settings.policy_file)
    with session_scope(runtime.engine, readonly=True) as session:
        prepared = prepare_change(
            session=session, policy=runtime.policy, policy_path=path, now=now, acceptance=acceptance
        )
    with session_scope(runtime.engine) as session:
        return record_change(session=session, prepared=prepared, policy_path=path)


def not_a_manager(runtime: Runtime, user_id: str) -> str | None:
    """Why this user may not accept a verdict (None: a manager, or the policy names nobody)."""
    managers = runtime.policy.managers
    if managers.anyone or user_id in managers.users:
        return None
    directory = runtime.services.people
    if directory is None:
        return "not_a_manager"
    try:
        return None if directory.includes(managers, user_id) else "not_a_manager"
    except MembershipUnknown:
        return "membership_unknown"


def ref_of(value: str) -> VerdictRef:
    """The Accept button's value parsed (ValueError, or pydantic's ValidationError, when it is not ours)."""
    return VerdictRef.model_validate(json.loads(value))
