"""`hitl policy check FILE`: validate a policy and print its routing table."""

from __future__ import annotations

import argparse

from bot.common.durations import format_duration


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
    rows = routing_table(policy)
    cols = ["type", "auto_send", "review", "take_over", "tier", "channel", "sla"]
    cells = [[r[c] if c != "sla" else format_duration(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(str(row[i])) for row in cells)) for i, c in enumerate(cols)]
    print(f"{path}: valid policy (version {policy.version})\n")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
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
    return 0
