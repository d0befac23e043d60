"""The managers' `/hitl` command as a service: parse the words, compute, render (no Slack calls here).

`/hitl stats [period] [type] [chart]`, `/hitl queue [tier]`, `/hitl review [period] [type] [type=0.85]`,
`/hitl digest`, `/hitl help`. Anything else is answered with the usage, never an error trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from sqlalchemy import func, select

from bot.app.runtime import Runtime
from bot.common.durations import format_duration
from bot.reporting.digest import scheduled_this_week, week_key
from bot.reporting.format import span_label
from bot.reporting.oversight.review import build_review
from bot.reporting.stats.model import BadPeriod, is_period, parse_period
from bot.reporting.stats.query import columns, compute_stats
from bot.slack.blocks.reports import render_review_blocks, render_stats_blocks
from storage.db import session_scope
from storage.models import Review, ReviewStatus, SchedulerState

Action = Literal["help", "stats", "queue", "review", "digest"]
DEFAULT_PERIOD = {"stats": timedelta(days=7), "review": timedelta(days=30)}
_TYPE = re.compile(r"^[a-z0-9_.-]{1,64}$")
_THRESHOLD = re.compile(r"^([a-z0-9_.-]{1,64})=(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$")
QUEUE_PER_TIER = 8

USAGE = (
    "*`/hitl`* — how the AI and its reviewers are doing\n"
    "• `/hitl stats [period] [type] [chart]` — volume by route and tier, approve/edit/take-over/reject rates, "
    "time to decision, SLA, AI error rate by type, top defects, QA of auto-sent replies "
    "(`/hitl stats 7d refund`, `/hitl stats 30d chart`)\n"
    "• `/hitl queue [tier]` — pending reviews by tier, oldest first, with their SLA state\n"
    "• `/hitl review [period] [type] [type=threshold]` — oversight review: expand AI autonomy, keep, or increase "
    "human involvement per type, with evidence, a what-if, calibration and warning signs "
    "(`/hitl review 30d`, `/hitl review 30d refund=0.90`)\n"
    "• `/hitl digest` — where and when the weekly oversight digest is posted\n"
    "Periods look like `24h`, `7d`, `4w`, `30d` (stats default to 7d, the review to 30d)."
)


class UsageError(ValueError):
    """Words the command does not understand; the message says which and how to write them."""


@dataclass(frozen=True)
class Command:
    action: Action
    period: timedelta | None = None
    interaction_type: str | None = None
    tier: str | None = None
    chart: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def span(self) -> timedelta:
        return self.period or DEFAULT_PERIOD.get(self.action, timedelta(days=7))


@dataclass(frozen=True)
class Reply:
    text: str
    blocks: list[Block]
    chart: bytes | None = None
    chart_name: str = ""
    chart_title: str = ""


def parse_command(text: str) -> Command:
    """Words of `/hitl ...` → Command; UsageError naming the first word that does not fit."""
    words = text.strip().lower().split()
    if not words or words[0] in ("help", "?", "-h", "--help", "usage"):
        return Command("help")
    action, rest = words[0], words[1:]
    if action not in ("stats", "queue", "review", "digest"):
        raise UsageError(f"I don't know `{_safe(action)}`.")
    period: timedelta | None = None
    itype: str | None = None
    tier: str | None = None
    chart = False
    thresholds: dict[str, float] = {}
    for word in rest:
        if action in ("stats", "review") and is_period(word) and period is None:
            try:
                period = parse_period(word)
            except BadPeriod as exc:
                raise UsageError(str(exc)) from None
        elif action == "stats" and word == "chart" and not chart:
            chart = True
        elif action == "review" and (m := _THRESHOLD.match(word)):
            thresholds[m.group(1)] = float(m.group(2))
        elif action in ("stats", "review") and word[0].isdigit() and period is None:
            raise UsageError(f"`{_safe(word)}` is not a period; write it like 24h, 7d, 4w or 30d.")
        elif action in ("stats", "review") and _TYPE.match(word) and itype is None and not word[0].isdigit():
            itype = word
        elif action == "queue" and _TYPE.match(word) and tier is None:
            tier = word
        else:
            raise UsageError(f"`/hitl {action}` does not take `{_safe(word)}`.")
    return Command(
        cast(Action, action),
        period=period,
        interaction_type=itype,
        tier=tier,
        chart=chart,
        thresholds=thresholds,
    )


def _safe(word: str) -> str:
    return word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")[:80]


def usage_reply(problem: str | None = None) -> Reply:
    text = (problem + "\n" if problem else "") + USAGE
    return Reply(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def answer(runtime: Runtime, cmd: Command, *, now: datetime | None = None) -> Reply:
    """Compute and render the answer to one command."""
    now = now or runtime.clock.now()
    if cmd.action == "help":
        return usage_reply()
    if cmd.action == "stats":
        return stats_reply(runtime, cmd, now)
    if cmd.action == "queue":
        return queue_reply(runtime, cmd.tier, now)
    if cmd.action == "review":
        return review_reply(runtime, cmd, now)
    return digest_reply(runtime, now)


def _type_hint(runtime: Runtime, itype: str | None) -> str | None:
    known = list(runtime.policy.interaction_types) + list(runtime.policy.human_only)
    if itype and itype not in known:
        return f"`{_safe(itype)}` is not an interaction type in the policy. Types: " + ", ".join(
            f"`{k}`" for k in known
        )
    return None


def stats_reply(runtime: Runtime, cmd: Command, now: datetime) -> Reply:
    with session_scope(runtime.engine, readonly=True) as session:
        stats = compute_stats(
            session=session,
            since=now - cmd.span,
            until=now,
            interaction_type=cmd.interaction_type,
            oversight=runtime.policy.oversight,
            now=now,
        )
    text, blocks = render_stats_blocks(stats)
    hint = _type_hint(runtime, cmd.interaction_type) if not stats.by_type else None
    if hint:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=hint)]))
    if not cmd.chart:
        return Reply(text, blocks)
    from bot.reporting.charts import stats_chart_png

    span = span_label(cmd.span)
    name = f"hitl-stats-{span}{'-' + cmd.interaction_type if cmd.interaction_type else ''}.png"
    return Reply(
        text,
        blocks,
        chart=stats_chart_png(stats),
        chart_name=name,
        chart_title=f"hitl stats · last {span} · {cmd.interaction_type or 'all types'}",
    )


def review_reply(runtime: Runtime, cmd: Command, now: datetime) -> Reply:
    with session_scope(runtime.engine, readonly=True) as session:
        review = build_review(
            session=session,
            policy=runtime.policy,
            now=now,
            period=cmd.span,
            interaction_type=cmd.interaction_type,
            thresholds=cmd.thresholds,
        )
    text, blocks = render_review_blocks(review)
    hint = _type_hint(runtime, cmd.interaction_type) if not review.recommendations else None
    if hint:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=hint)]))
    return Reply(text, blocks)


# ---------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueItem:
    ticket_id: str
    interaction_type: str
    tier: str
    route: str
    created_at: datetime
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    ticket_url: str | None


def sla_state(item: QueueItem, now: datetime) -> str:
    """`:red_circle: 12m past SLA`, `:large_orange_circle: due in 4m`, `:white_circle: due in 25m`."""
    if item.sla_due_at is None:
        return "no SLA"
    if now >= item.sla_due_at:
        return f":red_circle: {format_duration(now - item.sla_due_at)} past SLA"
    left = format_duration(item.sla_due_at - now)
    if item.sla_warn_at is not None and now >= item.sla_warn_at:
        return f":large_orange_circle: due in {left}"
    return f":white_circle: due in {left}"


def queue_reply(runtime: Runtime, tier: str | None, now: datetime) -> Reply:
    """Pending reviews per tier, oldest first, with SLA state (ix_reviews_pending / ix_reviews_status_due)."""
    r = columns(Review)
    pending = r.status == ReviewStatus.PENDING
    with session_scope(runtime.engine, readonly=True) as session:
        counts_q = select(r.tier, func.count(), func.count().filter(r.sla_due_at < now)).where(pending)
        rows_q = (
            select(
                r.ticket_id,
                r.interaction_type,
                r.tier,
                r.route,
                r.created_at,
                r.sla_warn_at,
                r.sla_due_at,
                r.ticket_url,
            )
            .where(pending)
            .order_by(r.created_at, r.id)
        )
        if tier:
            counts_q, rows_q = counts_q.where(r.tier == tier), rows_q.where(r.tier == tier)
        counts = {t: (int(n), int(od)) for t, n, od in session.execute(counts_q.group_by(r.tier))}
        items: dict[str, list[QueueItem]] = {}
        for t in counts:
            for row in session.execute(rows_q.where(r.tier == t).limit(QUEUE_PER_TIER)):
                items.setdefault(t, []).append(QueueItem(*row))
    total = sum(n for n, _ in counts.values())
    overdue = sum(od for _, od in counts.values())
    title = f"Queue · {total} pending" + (f" in {tier}" if tier else "")
    blocks: list[Block] = [
        HeaderBlock(text=title[:150]),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{overdue} past their SLA · as of {now:%Y-%m-%d %H:%M} UTC · oldest first"
                )
            ]
        ),
    ]
    order = list(runtime.policy.tiers)
    for t in sorted(counts, key=lambda x: (-(order.index(x) if x in order else -1), x)):
        n, od = counts[t]
        channel = runtime.policy.tiers[t].channel if t in runtime.policy.tiers else "?"
        lines = [f"*{t}* ({channel}) — {n} pending, {od} past SLA"]
        for it in items.get(t, []):
            ticket = f"#{_safe(it.ticket_id)}"
            if it.ticket_url and not any(ch in it.ticket_url for ch in "|<> "):
                ticket = f"<{it.ticket_url}|{ticket}>"
            lines.append(
                f"• {ticket} {it.interaction_type} · {it.route.replace('_', ' ')} · waiting "
                f"{format_duration(now - it.created_at)} · {sla_state(it, now)}"
            )
        if n > len(items.get(t, [])):
            lines.append(f"_… and {n - len(items.get(t, []))} more_")
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(lines)[:2900])))
    if not counts:
        known = ", ".join(runtime.policy.tiers)
        note = "Nothing is waiting for a human." + (
            f" (Tiers: {known}.)" if tier and tier not in runtime.policy.tiers else ""
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=note)))
    text = f"{title}, {overdue} past their SLA"
    return Reply(text, blocks[:50])


# ---------------------------------------------------------------- digest


def digest_reply(runtime: Runtime, now: datetime) -> Reply:
    """Where and when the weekly digest goes, and whether this week's went out."""
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    o = runtime.policy.oversight
    channel = runtime.settings.managers_channel
    nxt = CronTrigger.from_crontab(o.digest_cron, timezone="UTC").get_next_fire_time(None, now)
    key = week_key(now)
    with session_scope(runtime.engine, readonly=True) as session:
        sent = session.get(SchedulerState, key)
    due = scheduled_this_week(now, o.digest_cron)
    span = span_label(o.digest_period)
    lines = [
        (
            f"*Weekly oversight digest* — the oversight review of the last {span}, "
            f"to {channel or '_nowhere: HITL_MANAGERS_CHANNEL is not set_'}"
        ),
        f"• schedule: `{o.digest_cron}` (UTC, `policy.oversight.digest_cron`); next "
        + (f"{nxt:%a %Y-%m-%d %H:%M} UTC" if nxt else "never"),
        "• this week ({}): {}".format(
            key.split(":", 1)[1],
            f"sent {sent.updated_at:%a %H:%M} UTC" if sent else "due, not sent yet" if due else "not due yet",
        ),
        "• see it now: `/hitl review`; post it now: `hitl review --post` on the server",
    ]
    text = "\n".join(lines)
    return Reply(text, [SectionBlock(text=MarkdownTextObject(text=text))])
