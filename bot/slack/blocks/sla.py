"""The SLA engine's Slack messages: the warning, breach and escalation pings, and the timeout notes.

Pure text builders (mrkdwn); the engine (bot/sla/engine.py) decides when each is sent and to whom.
Ticket ids and channel names are escaped; `mention` is already Slack mention syntax.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.common.durations import format_duration
from bot.slack.blocks.text import escape, link

ASK = "please approve, edit, take over or reject it."


def sla_date(at: datetime) -> str:
    """A date and time to the second in each reader's time zone, with a UTC fallback."""
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def mention_of(target: str) -> str:
    """A user or user-group id (`U…`, `S…`) as a mention; text already in `<…>` as it is."""
    if target.startswith(("S", "s")) and not target.startswith("<"):
        return f"<!subteam^{target}>"
    return target if target.startswith("<") else f"<@{target}>"


def warning_text(*, ticket_id: str, due: datetime, now: datetime, mention: str) -> str:
    """The thread reply when a review's SLA is about to run out."""
    return (
        f":hourglass_flowing_sand: *SLA warning*: {format_duration(due - now)} left to decide on "
        f"ticket #{escape(ticket_id)} (due {sla_date(due)}). {mention}"
    ).strip()


def breach_headline(*, ticket_id: str, due: datetime, now: datetime, level: int, repeat: int) -> str:
    """The first line of a breach ping: the breach itself, an escalation to `level`, or a reminder."""
    ticket = f"ticket #{escape(ticket_id)}"
    over = format_duration(max(now - due, timedelta(0)))
    if level == 1 and repeat == 0:
        return f":rotating_light: *SLA breached*: {ticket} was due {sla_date(due)} and is still waiting"
    if repeat == 0:
        return f":sos: *SLA escalation, level {level}*: {ticket} breached its SLA {over} ago and is still waiting"
    return (
        f":rotating_light: *SLA breached {over} ago* (level {level}, reminder {repeat}): "
        f"{ticket} is still waiting"
    )


def breach_thread_text(headline: str, mention: str) -> str:
    """A breach ping in the card's thread: the headline, who is asked, and what to do."""
    return f"{headline}. {mention} {ASK}".replace("  ", " ")


def breach_outside_text(headline: str, *, channel: str, ticket_url: str | None, mention: str) -> str:
    """A breach ping outside the card (an escalation channel, a DM): where the card is and the ticket."""
    ticket = f" {link(ticket_url, 'open ticket')}" if ticket_url else ""
    return f"{headline} in {escape(channel)}.{ticket} {mention}".strip()


def reassigned_thread_text(*, ticket_id: str, waited: timedelta, to: str) -> str:
    """The thread note when a timeout hands the review to someone."""
    return (
        f":bust_in_silhouette: *No decision {format_duration(waited)} after the SLA breach*: "
        f"ticket #{escape(ticket_id)} is reassigned to {mention_of(to)}."
    )


def reassigned_dm_text(*, ticket_id: str, channel: str) -> str:
    """The DM to the person a timeout hands the review to."""
    return (
        f":bust_in_silhouette: Ticket #{escape(ticket_id)} is now yours: nobody "
        f"decided on its AI draft within its SLA. It is waiting in {escape(channel)}."
    )


def moved_thread_text(*, waited: timedelta, channel: str, tier: str, sla: timedelta) -> str:
    """The note under the old card when a timeout moves the review to another tier."""
    return (
        f":arrow_right: *No decision {format_duration(waited)} after the SLA breach*: moved to "
        f"{escape(channel)} ({escape(tier)}, SLA {format_duration(sla)})."
    )
