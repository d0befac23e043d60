"""The review card and the moved card: pure functions of the review, the policy and `now`.

An open card says its state first: the header (route, type, ticket; a breach shows there), why a human is
needed and the SLA as an absolute due time Slack formats per reader (`<!date^…>`, never a countdown that
freezes between refreshes), who holds it, then the facts, the customer's message (quoted) and the draft,
and the buttons each person may use. A decided card collapses in place to two lines (outcome, who, when,
ticket, SLA met or missed, what the helpdesk made of it) and a Details button; a rejected one offers Take
over to own the ticket. Built from `slack_sdk.models.blocks` classes and validated as they are built, so
Slack's per-field limits hold; message-wide budgets (block count, total text) are kept here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
    UserSelectElement,
)

from bot.ai.tone import tone_flags
from bot.app.settings import HelpdeskKind, Settings
from bot.review.claims import owner_after_decision
from bot.review.decisions import supervisor_only
from bot.review.policy import Policy
from bot.slack.blocks import limits
from bot.slack.blocks.text import (
    DECISION_DONE,
    DECISION_ICON,
    DEFECT_LABELS,
    HEADER_MAX,
    SECTION_MAX,
    channel_ref,
    clip,
    clip_escaped,
    customer_text,
    decision_of,
    delivery_text,
    escape,
    link,
    masked,
    md,
    mention,
    money,
    quoted,
    slack_date,
    span,
    validated,
)
from bot.slack.ids import ActionId, BlockId, ReviewRef
from storage.models import DecisionKind, DefectCategory, Review, ReviewStatus, Route

# Budgets that keep a whole card far below Slack's ~12k characters of block text.
CUSTOMER_BUDGET = 1500
DRAFT_BUDGET = 2000
SUMMARY_BUDGET = 600
REASONS_BUDGET = 800
FALLBACK_SNIPPET = 200
REPLY_DECISIONS = {DecisionKind.APPROVE, DecisionKind.EDIT}


def tone_hits(draft: str, policy: Policy) -> list[str]:
    """Banned phrases from the policy's tone guardrail found in the draft (bot.ai.tone: whole words, any case)."""
    return tone_flags(draft, policy)


def currency_of(review: Review, policy: Policy) -> str:
    """The currency the review's money is in: the customer data's own, else the policy's."""
    customer = review.customer or {}
    named = customer.get("currency") or (review.extra or {}).get("currency")
    return str(named) if isinstance(named, str) and named.strip() else policy.pings.currency


def refund_over_limit(review: Review, policy: Policy) -> float | None:
    """The policy's refund limit when the review's refund is above it (None otherwise)."""
    trigger = policy.triggers.refund_amount
    if trigger is None or review.refund_amount is None or review.refund_amount <= trigger.over:
        return None
    return trigger.over


def breached(review: Review, now: datetime) -> bool:
    """A pending review past its SLA due time."""
    return (
        review.status == ReviewStatus.PENDING and review.sla_due_at is not None and now >= review.sla_due_at
    )


def sla_text(review: Review, now: datetime) -> str | None:
    """The SLA line: the absolute due time while pending (Slack formats it per reader), met or missed once decided."""
    due = review.sla_due_at
    if due is None:
        return None
    if review.status != ReviewStatus.PENDING and review.decided_at is not None:
        late = review.decided_at - due
        return "✅ SLA met" if late <= timedelta(0) else f"🔥 SLA missed by {span(late)}"
    if now >= due:
        return f"🔥 *SLA breached*: was due {slack_date(due)}"
    if review.sla_warn_at is not None and now >= review.sla_warn_at:
        return f"⚠️ *SLA due soon*: {slack_date(due)}"
    return f"⏱ SLA due {slack_date(due)}"


def review_message(
    review: Review, policy: Policy, now: datetime, *, settings: Settings | None = None
) -> tuple[str, list[Block]]:
    """The review card: open (state, then detail, then buttons) or, once decided, collapsed to two lines."""
    if review.status != ReviewStatus.PENDING and review.decision:
        return fallback_text(review, settings=settings), validated(
            collapsed_blocks(review, now, settings=settings)
        )
    return fallback_text(review, settings=settings), validated(
        open_blocks(review, policy, now, settings=settings)
    )


# ---------------------------------------------------------------- the open card


def open_blocks(review: Review, policy: Policy, now: datetime, *, settings: Settings | None) -> list[Block]:
    """A pending card: header, why + SLA, who holds it, facts, summary, customer, draft, tone, buttons."""
    ref = ReviewRef(review_id=review.id).model_dump_json()
    texts, trimmed = _text_blocks(review, settings)
    blocks: list[Block] = [_header(review, now), _reasons_block(review), _state_block(review, policy, now)]
    if review.claimed_by:
        blocks.append(_claim_block(review))
    blocks += [_facts(review, policy, settings), *texts, *_tone_blocks(review, policy)]
    blocks.append(_actions_block(review, policy, ref, trimmed=trimmed))
    blocks.append(_claim_actions(review, ref))
    return blocks


def _header(review: Review, now: datetime) -> HeaderBlock:
    kind = "Take over" if review.route == Route.TAKE_OVER else "Review"
    icon = "🔴" if review.route == Route.TAKE_OVER else "🟡"
    state = "🔥 SLA breached · " if breached(review, now) else f"{icon} "
    what = review.interaction_type.replace("_", " ")
    title = limits.plain(f"{state}{kind}: {what} · ticket {review.ticket_id}", HEADER_MAX)
    return HeaderBlock(block_id=BlockId.REVIEW_HEADER, text=title)


def _reasons_block(review: Review) -> SectionBlock:
    reasons = " · ".join(escape(str(r.get("message") or r.get("code") or "")) for r in review.reasons[:30])
    text = f"*Why a human is needed:* {reasons or '(none recorded)'}"
    return SectionBlock(block_id=BlockId.REVIEW_REASONS, text=md(clip(text, REASONS_BUDGET)[0]))


def _state_block(review: Review, policy: Policy, now: datetime) -> SectionBlock:
    """The SLA and who must decide: no @-mention here (the group is pinged only on a breach)."""
    lines = [line for line in (sla_text(review, now), _supervisor_note(review, policy)) if line]
    return SectionBlock(
        block_id=BlockId.REVIEW_SLA, text=md(clip("\n".join(lines) or "⏱ No SLA", SECTION_MAX)[0])
    )


def _supervisor_note(review: Review, policy: Policy) -> str | None:
    needs = sorted(supervisor_only(review, policy))
    if not needs:
        return None
    what = " and ".join(n.replace("_", " ") for n in needs)
    tier = policy.tiers.get(review.tier)
    if tier is None or tier.supervisors.anyone:
        return f"🔒 *{what.capitalize()}* need a supervisor, and tier {escape(review.tier)} names none"
    return f"🔒 *{what.capitalize()}* need a supervisor of tier {escape(review.tier)}"


def _claim_block(review: Review) -> SectionBlock:
    when = f" {slack_date(review.claimed_at, '{time}')}" if review.claimed_at else ""
    return SectionBlock(
        block_id=BlockId.REVIEW_CLAIM, text=md(f"🙋 Claimed by {mention(review.claimed_by)}{when}")
    )


def _facts(review: Review, policy: Policy, settings: Settings | None) -> SectionBlock:
    customer = review.customer or {}
    currency = currency_of(review, policy)
    name = str(customer.get("name") or customer.get("email") or "unknown customer")
    who = [escape(masked(name, settings))]
    if customer.get("tier"):
        who.append(escape(str(customer["tier"])))
    if isinstance(customer.get("account_value"), (int, float)):
        who.append(f"value {money(float(customer['account_value']), currency)}")
    tier = policy.tiers.get(review.tier)
    fields = [
        md(f"*Ticket*\n{clip(_ticket_ref(review), 1900)[0]}"),
        md(f"*Confidence*\n{review.confidence:.2f}"),
        md(f"*Customer*\n{clip(' · '.join(who), 1900)[0]}"),
        md(f"*Tier*\n{escape(review.tier)}" + (f" ({channel_ref(tier.channel)})" if tier else "")),
    ]
    if review.refund_amount is not None:
        limit = refund_over_limit(review, policy)
        over = f" (over the {money(limit, currency)} limit)" if limit is not None else ""
        fields.append(md(f"*Refund*\n{money(review.refund_amount, currency)}{over}"))
    return SectionBlock(block_id=BlockId.REVIEW_FACTS, fields=fields)


def _ticket_ref(review: Review) -> str:
    if review.ticket_url:
        return link(review.ticket_url, f"#{review.ticket_id}")
    return escape(f"#{review.ticket_id}")


def _text_blocks(review: Review, settings: Settings | None) -> tuple[list[Block], bool]:
    """The AI summary (when there is one), the customer's message (quoted) and the draft; whether any was trimmed."""
    blocks: list[Block] = []
    trimmed = False
    summary = (review.extra or {}).get("summary")
    if summary:
        body, cut = clip_escaped(masked(str(summary), settings), SUMMARY_BUDGET)
        blocks.append(SectionBlock(block_id=BlockId.REVIEW_SUMMARY, text=md(f"*Summary* (AI)\n{body}")))
        trimmed |= cut
    subject = f" — _{clip_escaped(masked(review.subject, settings), 200)[0]}_" if review.subject else ""
    body, cut = clip_escaped(customer_text(review, settings), CUSTOMER_BUDGET)
    text, quote_cut = clip(f"*Customer wrote*{subject}\n{quoted(body)}", SECTION_MAX)
    blocks.append(SectionBlock(block_id=BlockId.REVIEW_CUSTOMER, text=md(text)))
    trimmed |= cut or quote_cut
    body, cut = clip_escaped(masked(review.draft, settings), DRAFT_BUDGET)
    blocks.append(SectionBlock(block_id=BlockId.REVIEW_DRAFT, text=md(f"*AI draft*\n{body}")))
    return blocks, trimmed or cut


def _tone_blocks(review: Review, policy: Policy) -> list[Block]:
    hits = tone_hits(review.draft, policy)
    if not hits:
        return []
    phrases = ", ".join(f"“{escape(h)}”" for h in hits[:20])
    return [
        ContextBlock(
            block_id=BlockId.REVIEW_TONE,
            elements=[md(clip(f"⚠️ Tone guardrail: the draft says {phrases}", limits.CONTEXT_TEXT)[0])],
        )
    ]


def _confirm(title: str, text: str, confirm: str, *, danger: bool = False) -> ConfirmObject:
    return ConfirmObject(
        title=limits.plain(title, 100),
        text=md(limits.fit(text, 300)),
        confirm=confirm,
        deny="Cancel",
        style="danger" if danger else "primary",
    )


def _approve_button(review: Review, policy: Policy, ref: str, *, supervisor: bool) -> ButtonElement:
    """Approve: primary only when anyone allowed may press it and the route is a review."""
    limit = refund_over_limit(review, policy)
    confirm = None
    if limit is not None and review.refund_amount is not None:
        currency = currency_of(review, policy)
        confirm = _confirm(
            "Approve this refund?",
            f"The draft grants a refund of *{money(review.refund_amount, currency)}*, over the "
            f"{money(limit, currency)} limit. It goes to the customer as written.",
            "Approve and send",
        )
    primary = review.route != Route.TAKE_OVER and not supervisor
    return ButtonElement(
        text="Approve (supervisor)" if supervisor else "Approve",
        action_id=ActionId.APPROVE,
        value=ref,
        style="primary" if primary else None,
        confirm=confirm,
    )


def _take_over_confirm(review: Review) -> ConfirmObject:
    return _confirm(
        "Take this ticket over?",
        f"You become the owner of ticket #{escape(review.ticket_id)}. The AI draft is not sent; it is "
        "posted in the thread as a starting point.",
        "Take over",
    )


def _label(text: str, kind: DecisionKind, needs: set[str]) -> str:
    """A decision's button label, saying so when only a supervisor may press it: "Reject (supervisor)…"."""
    if kind not in needs:
        return text
    return f"{text[:-1]} (supervisor)…" if text.endswith("…") else f"{text} (supervisor)"


def _decision_buttons(review: Review, policy: Policy, ref: str) -> list[ButtonElement]:
    needs = supervisor_only(review, policy)
    take_over_first = review.route == Route.TAKE_OVER
    return [
        _approve_button(review, policy, ref, supervisor=DecisionKind.APPROVE in needs),
        ButtonElement(text=_label("Edit", DecisionKind.EDIT, needs), action_id=ActionId.EDIT, value=ref),
        ButtonElement(
            text=_label("Take over", DecisionKind.TAKE_OVER, needs),
            action_id=ActionId.TAKE_OVER,
            value=ref,
            style="primary" if take_over_first and DecisionKind.TAKE_OVER not in needs else None,
            confirm=_take_over_confirm(review),
        ),
        ButtonElement(
            text=_label("Reject…", DecisionKind.REJECT, needs),
            action_id=ActionId.REJECT,
            value=ref,
            style="danger",
        ),
    ]


def _show_full_button(ref: str) -> ButtonElement:
    return ButtonElement(text="Show full message", action_id=ActionId.SHOW_FULL, value=ref)


def _actions_block(review: Review, policy: Policy, ref: str, *, trimmed: bool) -> ActionsBlock:
    buttons = _decision_buttons(review, policy, ref)
    if trimmed:
        buttons.append(_show_full_button(ref))
    return ActionsBlock(block_id=BlockId.REVIEW_ACTIONS, elements=buttons)


def claim_actions_block_id(review_id: str) -> str:
    """The block id of Claim / Unclaim / Reassign: a users_select carries no value, so the review rides here."""
    return f"{BlockId.REVIEW_CLAIM_ACTIONS}:{review_id}"


def _claim_actions(review: Review, ref: str) -> ActionsBlock:
    """Claim (or Unclaim) for whoever may decide; Reassign to someone for the tier's supervisors."""
    if review.claimed_by:
        hold = ButtonElement(text="Unclaim", action_id=ActionId.UNCLAIM, value=ref)
    else:
        hold = ButtonElement(text="Claim", action_id=ActionId.CLAIM, value=ref)
    reassign = UserSelectElement(action_id=ActionId.REASSIGN, placeholder="Reassign to… (supervisor)")
    return ActionsBlock(block_id=claim_actions_block_id(review.id), elements=[hold, reassign])


# ---------------------------------------------------------------- the decided card


def outcome_line(review: Review) -> str:
    """Line one of a decided card: outcome, who, when, and the ticket, e.g. "✅ *Approved* by <@U1> · …"."""
    kind = decision_of(review)
    if kind is None:
        return ""
    extra = review.extra or {}
    detail = ""
    if kind == DecisionKind.EDIT and isinstance(extra.get("edit_distance"), (int, float)):
        detail = f" ({extra['edit_distance']:.0%} changed)"
    elif kind == DecisionKind.REJECT:
        category = DefectCategory(extra.get("reject_category") or DefectCategory.OTHER)
        detail = f" ({DEFECT_LABELS[category].lower()})"
    when = f" · {slack_date(review.decided_at)}" if review.decided_at else ""
    what = escape(review.interaction_type.replace("_", " "))
    done = DECISION_DONE[kind].capitalize()
    return f"{DECISION_ICON[kind]} *{done}*{detail} by {mention(review.decided_by)}{when} · {_ticket_ref(review)} · {what}"


def status_line(review: Review, now: datetime, *, settings: Settings | None) -> str:
    """Line two of a decided card: SLA met or missed, what the helpdesk made of it, who owns the ticket."""
    kind = decision_of(review)
    helpdesk = settings is None or settings.helpdesk is not HelpdeskKind.NONE
    parts = [
        sla_text(review, now),
        delivery_text(review.helpdesk_state, reply=kind in REPLY_DECISIONS, helpdesk=helpdesk),
    ]
    owner = owner_after_decision(review)
    if kind == DecisionKind.TAKE_OVER:
        parts.append(f"owned by {mention(review.decided_by)}")
    elif owner:
        when = f" since {slack_date(review.claimed_at, '{time}')}" if review.claimed_at else ""
        parts.append(f"🙋 owned by {mention(owner)}{when}")
    elif kind == DecisionKind.REJECT:
        parts.append("nobody owns the ticket yet")
    return " · ".join(p for p in parts if p)


def collapsed_blocks(review: Review, now: datetime, *, settings: Settings | None = None) -> list[Block]:
    """A decided card: two lines and Details (and, after a Reject nobody has taken, Take over)."""
    ref = ReviewRef(review_id=review.id).model_dump_json()
    line = clip(f"{outcome_line(review)}\n{status_line(review, now, settings=settings)}", SECTION_MAX)[0]
    buttons = [ButtonElement(text="Details", action_id=ActionId.SHOW_DETAILS, value=ref)]
    if review.decision == DecisionKind.REJECT and owner_after_decision(review) is None:
        buttons.append(
            ButtonElement(
                text="Take over",
                action_id=ActionId.TAKE_OWNERSHIP,
                value=ref,
                style="primary",
                confirm=_confirm(
                    "Own this ticket?",
                    f"You become the owner of ticket #{escape(review.ticket_id)} and answer the customer "
                    "in the helpdesk. The review stays rejected; nothing is sent.",
                    "Take over",
                ),
            )
        )
    return [
        SectionBlock(block_id=BlockId.REVIEW_DECISION, text=md(line)),
        ActionsBlock(block_id=BlockId.REVIEW_MORE, elements=buttons),
    ]


def fallback_text(review: Review, *, settings: Settings | None = None) -> str:
    """The notification / screen-reader text sent with the blocks (masked, escaped, then trimmed)."""
    what = f"{review.interaction_type} ticket {review.ticket_id}"
    if review.status != ReviewStatus.PENDING and review.decision:
        who = review.decided_by_name or review.decided_by or "hitl"
        done = DECISION_DONE[DecisionKind(review.decision)].capitalize()
        return limits.mrkdwn(f"{done} by {who}: {what}", limits.FALLBACK_TEXT)
    kind = "Take over needed" if review.route == Route.TAKE_OVER else "Review needed"
    # A push notification shows the first words only.
    snippet = limits.plain(" ".join(masked(review.customer_message, settings).split()), FALLBACK_SNIPPET)
    line = f"{kind}: {what} ({review.tier}, confidence {review.confidence:.2f}) — {snippet}"
    return limits.mrkdwn(line, limits.FALLBACK_TEXT)


def moved_message(review: Review, to_channel: str) -> tuple[str, list[Block]]:
    """What an old card says once the review was re-posted in another tier's channel."""
    text = limits.fit(f"Moved to {channel_ref(to_channel)} (tier {escape(review.tier)}): decide there.", 2000)
    title = limits.plain(
        f"↪️ Moved: {review.interaction_type.replace('_', ' ')} · ticket {review.ticket_id}", HEADER_MAX
    )
    return text, validated(
        [
            HeaderBlock(block_id=BlockId.REVIEW_HEADER, text=title),
            SectionBlock(block_id=BlockId.REVIEW_DECISION, text=md(text)),
        ]
    )
