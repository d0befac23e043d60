"""The SLA engine's Slack messages: warning and breach pings people act from, timeout notes, dead-letter alerts.

Pure builders of the review (or the dead outbox row), `now` and what delivery learnt (the card's
permalink); the engine (bot/sla/engine.py) decides when each ping is sent and to whom, and
bot/sla/messages.py delivers them. A ping leads with its SLA state (time left, or time over), then the
customer (tier and value, money with its currency), then its buttons: Claim, Reassign, Snooze (breach
pings with a later step of their level), Open card, and the decisions. Once the review is decided the
same message is re-rendered as handled: who decided what, and no buttons. Outside text is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    SectionBlock,
    UserSelectElement,
)

from bot.app.settings import Settings
from bot.common.durations import format_duration
from bot.slack.blocks import limits
from bot.slack.blocks.text import (
    DECISION_DONE,
    DECISION_ICON,
    channel_ref,
    clip,
    clip_escaped,
    decision_of,
    escape,
    link,
    masked,
    md,
    mention,
    validated,
)
from bot.slack.ids import ActionId, BlockId, DeadLetterRef, ReviewRef, SnoozeRef
from storage.models import Review, ReviewStatus, Route

ASK = "please approve, edit, take over or reject it."
DRAFT_SNIPPET = 400
ERROR_BUDGET = 600


def sla_date(at: datetime) -> str:
    """A date and time to the second in each reader's time zone, with a UTC fallback."""
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def mention_of(target: str) -> str:
    """A user or user-group id (`U…`, `S…`) as a mention; text already in `<…>` as it is."""
    if target.startswith(("S", "s")) and not target.startswith("<"):
        return f"<!subteam^{target}>"
    return target if target.startswith("<") else f"<@{target}>"


def money(value: float, currency: str) -> str:
    """An amount with its currency code: `12,500.00 EUR`."""
    return f"{value:,.2f} {escape(currency)}"


def _what(review: Review) -> str:
    return f"ticket #{escape(review.ticket_id)} ({escape(review.interaction_type.replace('_', ' '))})"


# ---------------------------------------------------------------- pings


@dataclass(frozen=True)
class PingView:
    """What a ping shows besides the review: where it is, its step, and what delivery learnt."""

    place: str  # thread | channel | dm
    level: int = 0  # 0: the warning
    repeat: int = 0
    round: int = 0
    mention: str = ""  # breach pings only: whom the level @-mentions
    permalink: str | None = None
    currency: str = "USD"
    card_channel: str = ""  # the card's channel (an id or a name): named in pings outside its thread
    can_snooze: bool = False  # a breach ping whose level has a later step, not yet snoozed
    snoozed_by: str | None = None
    snoozed_at: datetime | None = None
    next_at: datetime | None = None  # the level's next step, when snoozed
    snooze_for: timedelta = timedelta(minutes=15)

    @property
    def is_warning(self) -> bool:
        return self.level == 0


def breach_headline(*, ticket_id: str, due: datetime, now: datetime, level: int, repeat: int) -> str:
    """The first line of a breach ping: the breach itself, an escalation to `level`, or a reminder."""
    ticket = f"ticket #{escape(ticket_id)}"
    over = format_duration(max(now - due, timedelta(0)))
    if level == 1 and repeat == 0:
        return f":rotating_light: *SLA breached*: {ticket} is {over} over (was due {sla_date(due)})"
    if repeat == 0:
        return f":sos: *SLA escalation, level {level}*: {ticket} breached its SLA {over} ago and is still waiting"
    return (
        f":rotating_light: *SLA breached {over} ago* (level {level}, reminder {repeat}): "
        f"{ticket} is still waiting"
    )


def warning_headline(*, ticket_id: str, due: datetime, now: datetime) -> str:
    """The first line of a warning: how long is left, and when it is due."""
    left = format_duration(max(due - now, timedelta(0)))
    return (
        f":hourglass_flowing_sand: *SLA warning*: {left} left to decide on ticket #{escape(ticket_id)} "
        f"(due {sla_date(due)})"
    )


def _headline(review: Review, view: PingView, now: datetime) -> str:
    due = review.sla_due_at or now
    if view.is_warning:
        line = warning_headline(ticket_id=review.ticket_id, due=due, now=now)
    else:
        line = breach_headline(
            ticket_id=review.ticket_id, due=due, now=now, level=view.level, repeat=view.repeat
        )
    where = f" in {channel_ref(view.card_channel)}" if view.place != "thread" and view.card_channel else ""
    ask = f" {view.mention} {ASK}" if view.mention and not view.is_warning else f" {ASK[0].upper()}{ASK[1:]}"
    claimer = f" Claimed by {mention(review.claimed_by)}." if review.claimed_by else ""
    return f"{line}{where}.{ask}{claimer}".replace("  ", " ")


def customer_line(review: Review, currency: str, settings: Settings | None) -> str:
    """The customer as a ping shows them: name, tier and account value with its currency."""
    customer = review.customer or {}
    name = str(customer.get("name") or customer.get("email") or "unknown customer")
    parts = [escape(masked(name, settings))]
    if customer.get("tier"):
        parts.append(f"*{escape(str(customer['tier']))}*")
    value = customer.get("account_value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parts.append(f"value {money(float(value), str(customer.get('currency') or currency))}")
    return clip(" · ".join(parts), 1900)[0]


def _facts(review: Review, view: PingView, settings: Settings | None, *, with_draft: bool) -> SectionBlock:
    ticket = (
        link(review.ticket_url, f"#{review.ticket_id}")
        if review.ticket_url
        else escape(f"#{review.ticket_id}")
    )
    fields = [
        md(f"*Customer*\n{customer_line(review, view.currency, settings)}"),
        md(f"*Ticket*\n{clip(ticket, 1900)[0]} · tier {escape(review.tier)}"),
    ]
    if review.refund_amount is not None:
        fields.append(md(f"*Refund*\n{money(review.refund_amount, view.currency)}"))
    fields.append(
        md("*Card*\n" + (link(view.permalink, "Open the card") if view.permalink else "in its tier channel"))
    )
    text = None
    if with_draft:
        body = clip_escaped(" ".join(masked(review.draft, settings).split()), DRAFT_SNIPPET)[0]
        kind = "Take over needed" if review.route == Route.TAKE_OVER else "AI draft"
        text = md(f"*{kind}*: “{body}”")
    return SectionBlock(block_id=BlockId.SLA_PING_FACTS, text=text, fields=fields)


def _snooze_note(view: PingView) -> ContextBlock | None:
    if view.snoozed_at is None:
        return None
    later = (
        f": the next level-{view.level} ping comes {sla_date(view.next_at)}"
        if view.next_at
        else f": no more level-{view.level} pings"
    )
    text = f":zzz: Snoozed by {mention(view.snoozed_by)} {sla_date(view.snoozed_at)}{later}."
    return ContextBlock(block_id=BlockId.SLA_PING_NOTE, elements=[md(clip(text, limits.CONTEXT_TEXT)[0])])


def _act_buttons(review: Review, view: PingView, ref: str) -> ActionsBlock:
    elements: list[ButtonElement | UserSelectElement] = []
    if not review.claimed_by:
        elements.append(ButtonElement(text="Claim", action_id=ActionId.CLAIM, value=ref, style="primary"))
    elements.append(UserSelectElement(action_id=ActionId.REASSIGN, placeholder="Reassign to…"))
    if view.can_snooze and view.snoozed_at is None:
        snooze = SnoozeRef(review_id=review.id, level=view.level, round=view.round).model_dump_json()
        elements.append(
            ButtonElement(
                text=f"Snooze {format_duration(view.snooze_for)}", action_id=ActionId.SNOOZE, value=snooze
            )
        )
    if view.permalink:
        elements.append(ButtonElement(text="Open card", action_id=ActionId.OPEN_CARD, url=view.permalink))
    # The review id rides in the block id too: a users_select carries no value of its own.
    return ActionsBlock(block_id=f"{BlockId.SLA_PING_ACTIONS}:{review.id}", elements=elements)


def _decision_buttons(review: Review, ref: str) -> ActionsBlock:
    take_over_first = review.route == Route.TAKE_OVER
    return ActionsBlock(
        block_id=BlockId.SLA_PING_DECISIONS,
        elements=[
            ButtonElement(
                text="Approve",
                action_id=ActionId.APPROVE,
                value=ref,
                style=None if take_over_first else "primary",
            ),
            ButtonElement(
                text="Take over",
                action_id=ActionId.TAKE_OVER,
                value=ref,
                style="primary" if take_over_first else None,
            ),
            ButtonElement(text="Reject…", action_id=ActionId.REJECT, value=ref, style="danger"),
        ],
    )


def ping_fallback(review: Review, view: PingView, now: datetime) -> str:
    """The notification text of a ping (what a push notification or screen reader says)."""
    due = review.sla_due_at or now
    if review.status != ReviewStatus.PENDING:
        state = handled_line(review, plain=True)
    elif view.is_warning:
        state = f"SLA warning: {format_duration(max(due - now, timedelta(0)))} left"
    else:
        state = f"SLA breached: {format_duration(max(now - due, timedelta(0)))} over"
    customer = review.customer or {}
    who = f" · {customer['tier']}" if customer.get("tier") else ""
    return limits.mrkdwn(
        f"{state} — ticket #{review.ticket_id} ({review.interaction_type}){who}", limits.FALLBACK_TEXT
    )


def sla_ping_message(
    review: Review, view: PingView, now: datetime, *, settings: Settings | None = None
) -> tuple[str, list[Block]]:
    """A warning or breach ping (pending), or the same message once the review is handled."""
    if review.status != ReviewStatus.PENDING:
        return ping_fallback(review, view, now), handled_blocks(review, view, settings)
    ref = ReviewRef(review_id=review.id).model_dump_json()
    headline = SectionBlock(
        block_id=BlockId.SLA_PING_HEADLINE, text=md(clip(_headline(review, view, now), 3000)[0])
    )
    blocks: list[Block] = [headline, _facts(review, view, settings, with_draft=True)]
    note = _snooze_note(view)
    if note is not None:
        blocks.append(note)
    blocks += [_act_buttons(review, view, ref), _decision_buttons(review, ref)]
    return ping_fallback(review, view, now), validated(blocks)


def _sla_outcome(review: Review) -> str:
    """ " (SLA met)" or " (SLA breached by 12m)" once decided; "" without an SLA."""
    due, decided = review.sla_due_at, review.decided_at
    if due is None or decided is None:
        return ""
    return " (SLA met)" if decided <= due else f" (SLA breached by {format_duration(decided - due)})"


def handled_line(review: Review, *, plain: bool = False) -> str:
    """Who handled the review and how, and whether its SLA held: "✅ Approved by <@U1> · <date> (SLA met)"."""
    kind = decision_of(review)
    done = DECISION_DONE[kind].capitalize() if kind else str(review.status).replace("_", " ").capitalize()
    if plain:
        return f"{done} by {review.decided_by_name or review.decided_by or 'hitl'}{_sla_outcome(review)}"
    when = f" · {sla_date(review.decided_at)}" if review.decided_at else ""
    icon = DECISION_ICON[kind] if kind else ":white_check_mark:"
    return f"{icon} *{done}* by {mention(review.decided_by)}{when}{_sla_outcome(review)}"


def handled_blocks(review: Review, view: PingView, settings: Settings | None) -> list[Block]:
    """A ping once its review is decided: who handled it and how; no buttons left to press."""
    what = "SLA warning" if view.is_warning else "SLA ping"
    text = f"{handled_line(review)} — {_what(review)}. This {what} needs nothing more."
    return validated(
        [
            SectionBlock(block_id=BlockId.SLA_PING_HEADLINE, text=md(clip(text, 3000)[0])),
            _facts(review, view, settings, with_draft=False),
        ]
    )


# ---------------------------------------------------------------- timeout notes


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


# ---------------------------------------------------------------- dead-letter alerts


@dataclass(frozen=True)
class DeadLetterView:
    """A dead-lettered outbox row as its alert shows it."""

    outbox_id: int
    kind: str
    error: str
    impact: str
    review: Review | None = None
    permalink: str | None = None
    retried_by: str | None = None
    retried_at: datetime | None = None
    currency: str = "USD"


def _dead_letter_summary(view: DeadLetterView, settings: Settings | None) -> str:
    head = f":rotating_light: *Outbox #{view.outbox_id} ({escape(view.kind)}) was dead-lettered*"
    review = view.review
    if review is None:
        return f"{head}. {escape(view.impact)}"
    customer = customer_line(review, view.currency, settings)
    return f"{head}: {_what(review)}, customer {customer}.\n*Impact*: {escape(view.impact)}"


def dead_letter_message(view: DeadLetterView, *, settings: Settings | None = None) -> tuple[str, list[Block]]:
    """The ops channel's alert: what failed, for which review and customer, the impact; Retry and Open card."""
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.DEAD_LETTER_SUMMARY, text=md(clip(_dead_letter_summary(view, settings), 3000)[0])
        ),
        ContextBlock(
            block_id=BlockId.DEAD_LETTER_ERROR,
            elements=[
                md("Last error: " + clip_escaped(view.error, ERROR_BUDGET)[0]),
                md(f"CLI: `hitl outbox list --dead`, `hitl outbox retry {view.outbox_id}`"),
            ],
        ),
    ]
    if view.retried_at is not None:
        note = f":repeat: Retried by {mention(view.retried_by)} {sla_date(view.retried_at)}: back in line."
        blocks.append(ContextBlock(block_id=BlockId.DEAD_LETTER_NOTE, elements=[md(note)]))
    buttons: list[ButtonElement] = []
    if view.retried_at is None:
        ref = DeadLetterRef(outbox_id=view.outbox_id).model_dump_json()
        buttons.append(
            ButtonElement(text="Retry", action_id=ActionId.DEAD_LETTER_RETRY, value=ref, style="primary")
        )
    if view.permalink:
        buttons.append(ButtonElement(text="Open card", action_id=ActionId.OPEN_CARD, url=view.permalink))
    if buttons:
        blocks.append(ActionsBlock(block_id=BlockId.DEAD_LETTER_ACTIONS, elements=buttons))
    what = f" ({view.review.interaction_type} ticket {view.review.ticket_id})" if view.review else ""
    text = (
        f"Outbox #{view.outbox_id} ({view.kind}) dead-lettered{what}: {view.impact}. "
        f"Retry here or with `hitl outbox retry {view.outbox_id}`."
    )
    return limits.mrkdwn(text, limits.FALLBACK_TEXT), validated(blocks)
