"""`hitl policy check FILE`: validate a policy and print its routing table."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bot.common.durations import format_duration

if TYPE_CHECKING:
    from bot.review.policy import People, Policy

NO_MANAGERS_WARNING = (
    "{path}: warning: `managers` names nobody, so /hitl stats, queue, review and digest answer anyone in "
    "the workspace; list the managers' user groups or users under `managers:` (docs/policy.md)"
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("policy", help="routing policy: check a file")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    chk = psub.add_parser("check", help="validate a policy file and print its routing table")
    chk.add_argument("file", nargs="?", help="policy YAML (default: HITL_POLICY_FILE or the bundled policy)")
    chk.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    from bot.app.settings import load_settings
    from bot.review.policy import load_policy, routing_table

    path = args.file or load_settings().policy_file
    policy = load_policy(path)
    print(f"{path}: valid policy (version {policy.version})\n")
    _print_table(routing_table(policy))
    _print_other_rules(policy)
    _print_managers(policy.managers, str(path))
    return 0


def _print_managers(managers: People, path: str) -> None:
    """Who may see the reports; a warning on stderr when that is anyone."""
    named = [f"user group {g}" for g in managers.usergroups] + [f"user {u}" for u in managers.users]
    print(f"managers (who may see the /hitl reports): {', '.join(named) or 'anyone'}")
    if managers.anyone:
        print(NO_MANAGERS_WARNING.format(path=path), file=sys.stderr)


def _print_table(rows: list[dict[str, Any]]) -> None:
    """The routing table, one row per interaction type."""
    cols = ["type", "auto_send", "review", "take_over", "tier", "channel", "sla"]
    cells = [[r[c] if c != "sla" else format_duration(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(str(row[i])) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def _print_other_rules(policy: Policy) -> None:
    """Defaults for unlisted types, the triggers that are on, the QA sample."""
    d = policy.defaults
    print(
        f"\nother types: auto-send ≥ {d.auto_send_at:.2f}, review ≥ {d.review_at:.2f}, tier {d.tier}, "
        "and the unknown_type trigger applies"
    )
    t = policy.triggers
    trig = [name for name in type(t).model_fields if getattr(t, name) is not None]
    print(f"triggers (only ever toward more human involvement): {', '.join(trig)}")
    print(
        f"QA sample of auto-sent replies: {policy.qa.sample_rate:.0%}"
        + (f" in {policy.qa.channel}" if policy.qa.channel else "")
    )
    print(f"QA sample of approved and edited replies, once delivered: {policy.qa.human_sample_rate:.0%}")
