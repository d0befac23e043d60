"""The App Home tab: a pure function of `HomeData` (bot.reporting.home) and `now`, built from slack_sdk models.

Order: a header with the queue's size and Refresh; "My claims"; "Waiting longest"; "Breached now"; and for
managers the week's stats with a button that sends them the oversight review. Each line is a section (type,
customer, age, SLA state, a link to the card) and, when the reader may act, an actions block whose buttons
carry the same `ReviewRef` value as the card's. Block ids name the section and the review, so they stay
unique however the lists overlap. A Home view holds at most 100 blocks; the lists are cut well below that.
"""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.reporting.format import pct
from bot.reporting.home import HomeData, HomeLine, Snapshot
from bot.slack.blocks.text import channel_ref, escape, link, md, mention, slack_date, span
from bot.slack.ids import ActionId, BlockId, ReviewRef

MAX_HOME_BLOCKS = 100
LINE_TEXT_MAX = 2_000

# Button labels and styles of the actions a Home line may offer, in the order they are shown.
BUTTONS: dict[str, tuple[str, str | None]] = {
    ActionId.CLAIM: ("Claim", None),
    ActionId.UNCLAIM: ("Unclaim", None),
    ActionId.APPROVE: ("Approve", "primary"),
    ActionId.EDIT: ("Edit", None),
    ActionId.TAKE_OVER: ("Take over", None),
    ActionId.REJECT: ("Reject…", "danger"),
}
EMPTY = {
    BlockId.HOME_MY_CLAIMS: "Nothing claimed. *Claim* a review below to tell the others you are on it.",
    BlockId.HOME_WAITING: "Nothing else is waiting for you within its SLA.",
    BlockId.HOME_BREACHED: "Nothing is past its SLA. :tada:",
}
TITLES = {
    BlockId.HOME_MY_CLAIMS: ":raising_hand: My claims",
    BlockId.HOME_WAITING: ":hourglass_flowing_sand: Waiting longest",
    BlockId.HOME_BREACHED: ":fire: Breached now",
}


def sla_state(line: HomeLine, now: datetime) -> str:
    """ "🔥 breached 12m ago", "⚠️ due in 4m", "⏱ due in 25m" or "no SLA"."""
    due = line.sla_due_at
    if due is None:
        return "no SLA"
    if now >= due:
        return f"🔥 *breached {span(now - due)} ago*"
    if line.sla_warn_at is not None and now >= line.sla_warn_at:
        return f"⚠️ *due in {span(due - now)}* ({slack_date(due, '{time}')})"
    return f"⏱ due in {span(due - now)}"


def _customer(line: HomeLine) -> str:
    parts = [escape(line.customer_tier)] if line.customer_tier else []
    if line.account_value is not None:
        parts.append(f"value {line.account_value:,.0f}")
    return "customer " + (", ".join(parts) or "tier unknown")


def _card_link(line: HomeLine) -> str:
    if line.permalink:
        return link(line.permalink, "open the card")
    if line.channel:
        return f"card in {channel_ref(line.channel)}"
    return "card not posted yet"


def line_text(line: HomeLine, now: datetime, *, reader: str) -> str:
    """A Home line's mrkdwn: ticket and type, customer, age and SLA, the card, and who claimed it."""
    ticket = link(line.ticket_url, f"#{line.ticket_id}") if line.ticket_url else escape(f"#{line.ticket_id}")
    head = f"*{escape(line.interaction_type)}* · {ticket} · {_customer(line)} · {escape(line.tier)} tier"
    facts = [f"waiting {span(now - line.created_at)}", sla_state(line, now), _card_link(line)]
    if line.claimed_by and line.claimed_by != reader:
        facts.append(f"claimed by {mention(line.claimed_by)}")
    text = head + "\n" + " · ".join(facts)
    return text if len(text) <= LINE_TEXT_MAX else text[: LINE_TEXT_MAX - 1] + "…"


def _buttons(line: HomeLine) -> list[ButtonElement]:
    ref = ReviewRef(review_id=line.review_id).model_dump_json()
    return [
        ButtonElement(text=BUTTONS[a][0], action_id=a, value=ref, style=BUTTONS[a][1])
        for a in BUTTONS
        if a in line.actions
    ]


def line_blocks(section: BlockId, line: HomeLine, now: datetime, *, reader: str) -> list[Block]:
    """The line's section, and its buttons when the reader may act on it."""
    blocks: list[Block] = [
        SectionBlock(
            block_id=f"{BlockId.HOME_LINE}:{section}:{line.review_id}",
            text=md(line_text(line, now, reader=reader)),
        )
    ]
    buttons = _buttons(line)
    if buttons:
        blocks.append(
            ActionsBlock(block_id=f"{BlockId.HOME_LINE_ACTIONS}:{section}:{line.review_id}", elements=buttons)
        )
    return blocks


def _section(
    section: BlockId, lines: list[HomeLine], now: datetime, *, reader: str, total: int | None
) -> list[Block]:
    count = total if total is not None else len(lines)
    title = f"*{TITLES[section]}* ({count})"
    if total is not None and total > len(lines):
        title += f" · the first {len(lines)} shown"
    blocks: list[Block] = [SectionBlock(block_id=section, text=md(title))]
    if not lines:
        blocks.append(ContextBlock(block_id=f"{section}:empty", elements=[md(EMPTY[section])]))
    for line in lines:
        blocks.extend(line_blocks(section, line, now, reader=reader))
    return blocks


def _header(data: HomeData) -> list[Block]:
    as_of = slack_date(
        data.now.replace(second=0, microsecond=0)
    )  # to the minute: an unchanged Home is not resent
    overview = f"{data.pending_total} pending · {data.breached_total} past their SLA · as of {as_of}"
    if not data.decides_anywhere:
        overview += " · you are not an approver of any tier, so there are no decision buttons here"
    elements = [ButtonElement(text="Refresh", action_id=ActionId.HOME_REFRESH, value="refresh")]
    if data.snapshot is not None:
        elements.append(
            ButtonElement(
                text="Send me the oversight review", action_id=ActionId.HOME_OPEN_REVIEW, value="review"
            )
        )
    blocks: list[Block] = [
        HeaderBlock(block_id=BlockId.HOME_HEADER, text="Your review desk"),
        ContextBlock(block_id=f"{BlockId.HOME_HEADER}:overview", elements=[md(overview)]),
        ActionsBlock(block_id=BlockId.HOME_ACTIONS, elements=elements),
    ]
    blocks += [
        ContextBlock(block_id=f"{BlockId.HOME_HEADER}:note:{i}", elements=[md(n)])
        for i, n in enumerate(data.notes[:3])
    ]
    return blocks


def snapshot_blocks(snap: Snapshot) -> list[Block]:
    """The managers' week: volume, auto-sent share, approve rate, SLA breaches, and the queue now."""
    fields = [
        md(f"*Drafts*\n{snap.volume}"),
        md(f"*Auto-sent*\n{pct(snap.auto_share)}"),
        md(f"*Approved as written*\n{pct(snap.approve_rate)}"),
        md(f"*SLA breaches*\n{snap.sla_breached}"),
        md(f"*Pending now*\n{snap.pending} ({snap.pending_overdue} past SLA)"),
    ]
    return [
        DividerBlock(),
        SectionBlock(
            block_id=BlockId.HOME_STATS, text=md("*:bar_chart: Last 7 days* (managers)"), fields=fields
        ),
        ContextBlock(
            block_id=f"{BlockId.HOME_STATS}:hint",
            elements=[
                md(
                    "The oversight review (widen or narrow AI autonomy per type): the button above, or `/hitl review`."
                )
            ],
        ),
    ]


def home_blocks(data: HomeData) -> list[Block]:
    """Every block of one reader's Home, in order."""
    now, reader = data.now, data.user_id
    blocks = _header(data)
    blocks += _section(BlockId.HOME_MY_CLAIMS, data.my_claims, now, reader=reader, total=None)
    blocks += _section(BlockId.HOME_WAITING, data.waiting, now, reader=reader, total=None)
    blocks += _section(BlockId.HOME_BREACHED, data.breached, now, reader=reader, total=data.breached_total)
    if data.snapshot is not None:
        blocks += snapshot_blocks(data.snapshot)
    return blocks[:MAX_HOME_BLOCKS]


def home_view(data: HomeData) -> View:
    """The Home tab view (type "home"), checked against Slack's limits by slack_sdk as it is built."""
    view = View(type="home", blocks=home_blocks(data))
    view.to_dict()  # slack_sdk validates every block and the view's own limits here
    return view


def home_fallback(data: HomeData) -> str:
    """A one-line summary of the Home (for the log and the demo)."""
    return f"{len(data.my_claims)} claimed, {len(data.waiting)} waiting, {data.breached_total} breached" + (
        f", {data.snapshot.volume} drafts in 7 days" if data.snapshot else ""
    )
