"""The demo's last act: what a manager sees of everything the demo just did (`/hitl stats`, the review)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.reporting.oversight import VERDICT_LABEL, build_review
from bot.reporting.stats import compute_stats, render_stats_text
from sandbox.demo.context import SIGNING_SECRET, DemoContext
from sandbox.slack_sim import SlackSim, slash_command_form
from storage.db import session_scope

if TYPE_CHECKING:
    from bot.reporting.oversight import OversightReview, Recommendation

MANAGER = "U0MANAGER"
CHANNEL = "#support-managers"
PERIOD = timedelta(hours=24)
# Types kept for the same plain reason are listed on one line.
GROUPS = {
    "few": "only ",
    "human_only": "the policy lists this type under human_only",
    "unknown": "not in the policy",
}
GROUP_LABEL = {
    "few": "too few decisions yet to judge (decisions so far)",
    "human_only": "human only by policy",
    "unknown": "not in the policy yet",
}


def act_stats(ctx: DemoContext) -> None:
    """`/hitl stats 24h` through Slack, then the numbers and the oversight review of what the demo did."""
    ctx.heading("Managers: /hitl stats and the oversight review of this demo")
    slack = ctx.standins.get("slack")
    if slack is not None:
        _ask_in_slack(ctx, slack)
    rt = ctx.runtime
    now = rt.clock.now()
    with session_scope(rt.engine, readonly=True) as session:
        stats = compute_stats(
            session=session, since=now - PERIOD, until=now, oversight=rt.policy.oversight, now=now
        )
        review = build_review(session=session, policy=rt.policy, now=now, period=PERIOD)
    ctx.say()
    for line in render_stats_text(stats).splitlines():
        ctx.say("  " + line)
    ctx.say()
    _show_review(ctx, review)


def _ask_in_slack(ctx: DemoContext, slack: Any) -> None:
    """A manager types `/hitl stats 24h`: the ack time, and when the ephemeral answer arrived."""
    with SlackSim(ctx.base_url, SIGNING_SECRET) as sim:
        t0 = time.monotonic()
        resp = sim.post_command(slash_command_form(text="stats 24h", user_id=MANAGER, channel_id=CHANNEL))
        acked = time.monotonic() - t0
        deadline = time.monotonic() + 15
        answer = None
        while answer is None and time.monotonic() < deadline:
            answer = next((e for e in slack.ephemerals(MANAGER) if "hitl stats" in e["text"]), None)
            time.sleep(0.05)
    ctx.say(
        f"  /hitl stats 24h → HTTP {resp.status_code} acked in {acked * 1000:.0f} ms; "
        + (
            f"the answer reached Slack as an ephemeral {time.monotonic() - t0:.1f} s after asking"
            if answer
            else "no answer arrived (see the log)"
        )
    )


def _show_review(ctx: DemoContext, review: OversightReview) -> None:
    """The oversight review: one line per recommendation, kept types grouped by their plain reason."""
    s = ctx.style
    ctx.say(
        "  "
        + s.bold("Oversight review")
        + s.dim(" (criteria: policy.oversight; same as /hitl review and the weekly digest)")
    )
    groups: dict[str, list[str]] = {}
    for rec in review.recommendations:
        if not _group_kept(review, rec, groups):
            _show_recommendation(ctx, rec)
    for group, types in groups.items():
        ctx.say(f"    keep as is, {GROUP_LABEL[group]}: " + s.dim(", ".join(types)))
    _show_whatif_example(ctx, review)
    _show_warnings(ctx, review)
    quiet = (
        "The weekly"
        if any(r.verdict == "expand" for r in review.recommendations)
        else "A day of traffic is too little to widen any type's autonomy; the weekly"
    )
    ctx.say(
        s.dim(
            f"  {quiet} digest posts this review to "
            f"{ctx.runtime.settings.managers_channel or 'HITL_MANAGERS_CHANNEL'}."
        )
    )


def _group_kept(review: OversightReview, rec: Recommendation, groups: dict[str, list[str]]) -> bool:
    """Add a type kept for one of the plain reasons in GROUPS to its group; False for any other."""
    why = rec.reasons[0] if rec.reasons else ""
    group = next((g for g, start in GROUPS.items() if rec.verdict == "keep" and why.startswith(start)), None)
    if group is None:
        return False
    decided = review.stats.by_type[rec.interaction_type].decided
    groups.setdefault(group, []).append(
        f"{rec.interaction_type} ({decided})" if group == "few" else rec.interaction_type
    )
    return True


def _show_recommendation(ctx: DemoContext, rec: Recommendation) -> None:
    s = ctx.style
    why = rec.reasons[0] if rec.reasons else ""
    ctx.say(f"    {rec.interaction_type:<20} {VERDICT_LABEL[rec.verdict]:<26} " + s.dim(why))
    if rec.whatif is not None and (rec.whatif.newly_auto_sent or rec.whatif.to_humans):
        ctx.say(f"    {'':<20} " + s.dim("what-if: " + rec.whatif.sentence()))


def _show_whatif_example(ctx: DemoContext, review: OversightReview) -> None:
    """The what-if of the first kept type that would auto-send more, as an example."""
    example = next(
        (
            r
            for r in review.recommendations
            if r.verdict == "keep" and r.whatif is not None and r.whatif.newly_auto_sent
        ),
        None,
    )
    if example is not None and example.whatif is not None:
        ctx.say(f"    what-if for {example.interaction_type}: " + ctx.style.dim(example.whatif.sentence()))


def _show_warnings(ctx: DemoContext, review: OversightReview) -> None:
    if review.warnings:
        ctx.say(
            f"  Warning signs ({len(review.warnings)}): "
            + "; ".join(f"{w.interaction_type}: {w.message}" for w in review.warnings[:3])
            + (" …" if len(review.warnings) > 3 else "")
        )
