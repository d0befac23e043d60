"""The managers' `/hitl` command as a service: parse the words, compute, render (no posting here).

`/hitl stats [period] [type] [chart]`, `/hitl queue [tier]`, `/hitl review [period] [type] [type=0.85]`,
`/hitl digest`, `/hitl help`. Anything else is answered with the usage, never an error trace.
Everything but `help` answers only the policy's `managers` (`refusal`); an empty list leaves it open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

from slack_sdk.models.blocks import Block

from bot.app.runtime import Runtime
from bot.qa import calibration_service as calibration
from bot.reporting.digest import scheduled_this_week, week_key
from bot.reporting.format import span_label
from bot.reporting.oversight.review import build_review
from bot.reporting.queue import pending_queue
from bot.reporting.stats.model import BadPeriod, is_period, parse_period
from bot.reporting.stats.rollup import cached_stats
from bot.review.people import MembershipUnknown
from bot.review.policy import People
from bot.slack.blocks.reports import (
    hint_block,
    mrkdwn_word,
    render_queue_blocks,
    render_review_blocks,
    render_stats_blocks,
    text_blocks,
)
from bot.slack.permalinks import workspace_url
from storage import repo
from storage.db import session_scope
from storage.models import SchedulerState

Action = Literal["help", "stats", "queue", "review", "digest", "calibrate"]
DEFAULT_PERIOD = {"stats": timedelta(days=7), "review": timedelta(days=30)}
_TYPE = re.compile(r"^[a-z0-9_.-]{1,64}$")
_THRESHOLD = re.compile(r"^([a-z0-9_.-]{1,64})=(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$")

USAGE = (
    "*`/hitl`* — how the AI and its reviewers are doing\n"
    "• `/hitl stats [period] [type] [chart]` — volume by route and tier, approve/edit/take-over/reject rates, "
    "time to decision, SLA, AI error rate by type, top defects, QA of auto-sent replies "
    "(`/hitl stats 7d refund`, `/hitl stats 30d chart`)\n"
    "• `/hitl queue [tier]` — pending reviews soonest to breach first (breached on top), each linked to its "
    "card, with tier, customer and SLA state\n"
    "• `/hitl review [period] [type] [type=threshold]` — oversight review: expand AI autonomy, keep, or increase "
    "human involvement per type, with evidence, a what-if, calibration and warning signs "
    "(`/hitl review 30d`, `/hitl review 30d refund=0.90`)\n"
    "• `/hitl digest` — where and when the weekly oversight digest is posted\n"
    "• `/hitl calibrate [type] [n]` — a calibration session: n past decided reviews (default 10, at most 25), decision "
    "hidden, for reviewers to vote Good / Defect; `/hitl calibrate report [session]` closes it with kappa and agreement\n"
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
    calibrate: calibration.CalibrateArgs | None = None

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


@dataclass
class _Words:
    """What the words of one command said so far."""

    action: str
    period: timedelta | None = None
    itype: str | None = None
    tier: str | None = None
    chart: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)

    def take(self, word: str) -> None:
        """Read one word after the action; UsageError when it fits nowhere."""
        if not (self._report_word(word) or self._queue_word(word)):
            raise UsageError(f"`/hitl {self.action}` does not take `{mrkdwn_word(word)}`.")

    def _report_word(self, word: str) -> bool:
        """A period, `chart`, `type=threshold` or an interaction type of `stats` / `review`."""
        if self.action not in ("stats", "review"):
            return False
        if is_period(word) and self.period is None:
            try:
                self.period = parse_period(word)
            except BadPeriod as exc:
                raise UsageError(str(exc)) from None
            return True
        if self.action == "stats" and word == "chart" and not self.chart:
            self.chart = True
            return True
        return self._threshold_word(word) or self._type_word(word)

    def _threshold_word(self, word: str) -> bool:
        m = _THRESHOLD.match(word) if self.action == "review" else None
        if m is None:
            return False
        self.thresholds[m.group(1)] = float(m.group(2))
        return True

    def _type_word(self, word: str) -> bool:
        if word[0].isdigit() and self.period is None:
            raise UsageError(f"`{mrkdwn_word(word)}` is not a period; write it like 24h, 7d, 4w or 30d.")
        if _TYPE.match(word) and self.itype is None and not word[0].isdigit():
            self.itype = word
            return True
        return False

    def _queue_word(self, word: str) -> bool:
        if self.action == "queue" and _TYPE.match(word) and self.tier is None:
            self.tier = word
            return True
        return False

    def command(self) -> Command:
        return Command(
            cast(Action, self.action),
            period=self.period,
            interaction_type=self.itype,
            tier=self.tier,
            chart=self.chart,
            thresholds=self.thresholds,
        )


def parse_command(text: str) -> Command:
    """Words of `/hitl ...` → Command; UsageError naming the first word that does not fit."""
    words = text.strip().lower().split()
    if not words or words[0] in ("help", "?", "-h", "--help", "usage"):
        return Command("help")
    action, rest = words[0], words[1:]
    if action == "calibrate":
        try:
            return Command("calibrate", calibrate=calibration.parse_calibrate(rest))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if action not in ("stats", "queue", "review", "digest"):
        raise UsageError(f"I don't know `{mrkdwn_word(action)}`.")
    parsed = _Words(action)
    for word in rest:
        parsed.take(word)
    return parsed.command()


def usage_reply(problem: str | None = None) -> Reply:
    text = (problem + "\n" if problem else "") + USAGE
    return Reply(text=text, blocks=text_blocks(text))


# ---------------------------------------------------------------- who may ask

OPEN_ACTIONS: frozenset[str] = frozenset({"help"})  # every other answer is for the policy's managers


@dataclass(frozen=True)
class Asker:
    """Who typed the command, and where."""

    user_id: str
    channel_id: str | None = None
    text: str = ""


def refusal(runtime: Runtime, cmd: Command, asker: Asker, *, now: datetime | None = None) -> Reply | None:
    """None when the asker may have this answer; otherwise the refusal to show them, audited.

    Only `help` is open. The policy's `managers` may have everything else; when it names nobody the
    reports stay open to anyone (and `hitl policy check` warns about that).
    """
    if cmd.action == "calibrate":  # managers and tier supervisors
        why = calibration.run_refusal(
            runtime,
            user_id=asker.user_id,
            channel=asker.channel_id,
            text=asker.text,
            now=now or runtime.clock.now(),
        )
        return None if why is None else Reply(text=why, blocks=text_blocks(why))
    managers = runtime.policy.managers
    if cmd.action in OPEN_ACTIONS or managers.anyone:
        return None
    why = _not_a_manager(runtime, managers, asker.user_id)
    if why is None:
        return None
    with session_scope(runtime.engine) as session:
        repo.audit(
            session=session,
            at=now or runtime.clock.now(),
            actor=asker.user_id,
            action="report_refused",
            command=f"/hitl {asker.text.strip()[:200]}".strip(),
            channel=asker.channel_id,
            reason=why,
        )
    return _refusal_reply(cmd, managers, why)


def _not_a_manager(runtime: Runtime, managers: People, user_id: str) -> str | None:
    """None for a manager; `not_a_manager` or `membership_unknown` (fail closed) for anyone else."""
    if user_id in managers.users:
        return None
    directory = runtime.services.people
    if directory is None:
        return "membership_unknown" if managers.usergroups else "not_a_manager"
    try:
        return None if directory.includes(managers, user_id) else "not_a_manager"
    except MembershipUnknown:
        return "membership_unknown"


def _refusal_reply(cmd: Command, managers: People, why: str) -> Reply:
    what = f"`/hitl {cmd.action}` is for managers (policy: `managers`)."
    if why == "membership_unknown":
        text = (
            f":lock: {what} Your membership could not be checked with Slack just now; try again in a minute."
        )
    else:
        text = (
            f":lock: {what} Ask one of them ({managers.mention()}) or whoever maintains the policy file "
            "to add you. `/hitl help` is open to everyone."
        )
    return Reply(text=text, blocks=text_blocks(text))


def answer(
    runtime: Runtime, cmd: Command, *, now: datetime | None = None, asker: Asker | None = None
) -> Reply:
    """Compute and render the answer to one command."""
    now = now or runtime.clock.now()
    if cmd.action == "help":
        return usage_reply()
    if cmd.action == "calibrate":
        if cmd.calibrate is None or asker is None or not asker.channel_id:
            return usage_reply("`/hitl calibrate` runs in Slack, where the cards are posted.")
        said = calibration.answer(
            runtime, cmd.calibrate, user_id=asker.user_id, channel=asker.channel_id, now=now
        )
        return Reply(text=said, blocks=text_blocks(said))
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
        return f"`{mrkdwn_word(itype)}` is not an interaction type in the policy. Types: " + ", ".join(
            f"`{k}`" for k in known
        )
    return None


def stats_reply(runtime: Runtime, cmd: Command, now: datetime) -> Reply:
    with session_scope(runtime.engine, readonly=True) as session:
        stats = cached_stats(
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
        blocks.append(hint_block(hint))
    if not cmd.chart:
        return Reply(text, blocks)
    from bot.reporting.charts import NO_CHART, stats_chart_png

    png = stats_chart_png(stats)
    if png is None:  # a period without data: no empty axes, a sentence
        blocks.append(hint_block(NO_CHART))
        return Reply(text, blocks)
    span = span_label(cmd.span)
    name = f"hitl-stats-{span}{'-' + cmd.interaction_type if cmd.interaction_type else ''}.png"
    return Reply(
        text,
        blocks,
        chart=png,
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
            cached=True,
        )
    text, blocks = render_review_blocks(review)
    hint = _type_hint(runtime, cmd.interaction_type) if not review.recommendations else None
    if hint:
        blocks.append(hint_block(hint))
    return Reply(text, blocks)


# ---------------------------------------------------------------- queue


def queue_reply(runtime: Runtime, tier: str | None, now: datetime) -> Reply:
    """Pending reviews soonest to breach first, each linked to its card, with SLA state."""
    with session_scope(runtime.engine, readonly=True) as session:
        queue = pending_queue(session=session, now=now, tier=tier)
    channels = {name: t.channel for name, t in runtime.policy.tiers.items()}
    # The workspace URL is stored once auth.test answered; asked of Slack only if it never has.
    url = workspace_url(runtime) if queue.items else None
    text, blocks = render_queue_blocks(queue, channels, workspace_url=url)
    return Reply(text, blocks)


# ---------------------------------------------------------------- digest


def digest_reply(runtime: Runtime, now: datetime) -> Reply:
    """Where and when the weekly digest goes, and whether this week's went out."""
    from apscheduler.triggers.cron import CronTrigger

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
    return Reply(text, text_blocks(text))
