"""The review card and the moved card: pure functions of the review, the policy and `now`.

Built from `slack_sdk.models.blocks` classes and validated as they are built, so Slack's per-field limits
hold; message-wide budgets (block count, total text) are kept here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
)

from bot.ai.tone import tone_flags
from bot.app.settings import Settings
from bot.review.policy import Policy
from bot.slack.blocks import limits
from bot.slack.blocks.text import (
    DECISION_DONE,
    HEADER_MAX,
    SECTION_MAX,
    channel_ref,
    clip,
    clip_escaped,
    customer_text,
    decision_line,
    escape,
    link,
    masked,
    md,
    reject_reason,
    slack_date,
    span,
    validated,
)
from bot.slack.ids import ActionId, BlockId, ReviewRef
from storage.models import DecisionKind, Review, ReviewStatus, Route

# Budgets that keep a whole card far below Slack's ~12k characters of block text.
CUSTOMER_BUDGET = 1500
DRAFT_BUDGET = 2000
FINAL_BUDGET = 1200
SUMMARY_BUDGET = 600
REASONS_BUDGET = 800
FALLBACK_SNIPPET = 200


def _money(value: float) -> str:
    return f"{value:,.2f}"


def tone_hits(draft: str, policy: Policy) -> list[str]:
    """Banned phrases from the policy's tone guardrail found in the draft (bot.ai.tone: whole words, any case)."""
    return tone_flags(draft, policy)


def sla_text(review: Review, now: datetime) -> str | None:
    """The SLA line: due time and countdown while pending, met or breached once decided."""
    due = review.sla_due_at
    if due is None:
        return None
    if review.status != ReviewStatus.PENDING and review.decided_at is not None:
        late = review.decided_at - due
        return "✅ SLA met" if late <= timedelta(0) else f"🔥 SLA breached by {span(late)}"
    if now >= due:
        return f"🔥 *SLA breached {span(now - due)} ago* (was due {slack_date(due)})"
    if review.sla_warn_at is not None and now >= review.sla_warn_at:
        return f"⚠️ *due in {span(due - now)}* ({slack_date(due)})"
    return f"⏱ SLA due {slack_date(due)} (in {span(due - now)})"


def _facts(review: Review, policy: Policy, settings: Settings | None) -> SectionBlock:
    customer = review.customer or {}
    name = str(customer.get("name") or customer.get("email") or "unknown customer")
    who = [escape(masked(name, settings))]
    if customer.get("tier"):
        who.append(escape(str(customer["tier"])))
    if customer.get("account_value") is not None:
        who.append(f"value {_money(float(customer['account_value']))}")
    tier = policy.tiers.get(review.tier)
    ticket = (
        link(review.ticket_url, f"#{review.ticket_id}")
        if review.ticket_url
        else escape(f"#{review.ticket_id}")
    )
    fields = [
        md(f"*Ticket*\n{clip(ticket, 1900)[0]}"),
        md(f"*Confidence*\n{review.confidence:.2f}"),
        md(f"*Customer*\n{clip(' · '.join(who), 1900)[0]}"),
        md(f"*Tier*\n{escape(review.tier)}" + (f" ({channel_ref(tier.channel)})" if tier else "")),
    ]
    if review.refund_amount is not None:
        fields.append(md(f"*Refund*\n{_money(review.refund_amount)}"))
    return SectionBlock(block_id=BlockId.REVIEW_FACTS, fields=fields)


def _supervisor_note(review: Review, policy: Policy) -> str | None:
    tier = policy.tiers.get(review.tier)
    needs = sorted(set(review.supervisor_decisions) | set(tier.supervisor_decisions if tier else []))
    if not needs:
        return None
    who = tier.supervisors.mention() if tier and not tier.supervisors.anyone else "a supervisor"
    return "🔒 Supervisor decision: " + ", ".join(n.replace("_", " ") for n in needs) + f" — {who}"


def _decision_buttons(review: Review, ref: str) -> list[ButtonElement]:
    take_over_first = review.route == Route.TAKE_OVER
    return [
        ButtonElement(
            text="Approve",
            action_id=ActionId.APPROVE,
            value=ref,
            style=None if take_over_first else "primary",
        ),
        ButtonElement(text="Edit", action_id=ActionId.EDIT, value=ref),
        ButtonElement(
            text="Take over",
            action_id=ActionId.TAKE_OVER,
            value=ref,
            style="primary" if take_over_first else None,
        ),
        ButtonElement(text="Reject…", action_id=ActionId.REJECT, value=ref, style="danger"),
    ]


def review_message(
    review: Review, policy: Policy, now: datetime, *, settings: Settings | None = None
) -> tuple[str, list[Block]]:
    """The review card: what the customer wrote, the draft, why it is here, SLA, and the decision buttons."""
    pending = review.status == ReviewStatus.PENDING
    ref = ReviewRef(review_id=review.id).model_dump_json()
    texts, trimmed = _text_blocks(review, settings)
    blocks: list[Block] = [_header(review), _facts(review, policy, settings), *texts]
    blocks += _tone_blocks(review, policy)
    blocks.append(_reasons_block(review))
    blocks += _context_blocks(review, policy, now, pending=pending)
    if pending:
        blocks.append(_actions_block(review, ref, trimmed=trimmed))
    else:
        blocks += _decided_blocks(review, settings)
        if trimmed or review.decision == DecisionKind.EDIT:
            blocks.append(ActionsBlock(block_id=BlockId.REVIEW_MORE, elements=[_show_full_button(ref)]))
    return fallback_text(review, settings=settings), validated(blocks)


def _header(review: Review) -> HeaderBlock:
    kind = "Take over" if review.route == Route.TAKE_OVER else "Review"
    icon = "🔴" if review.route == Route.TAKE_OVER else "🟡"
    title = limits.plain(
        f"{icon} {kind}: {review.interaction_type.replace('_', ' ')} · ticket {review.ticket_id}", HEADER_MAX
    )
    return HeaderBlock(block_id=BlockId.REVIEW_HEADER, text=title)


def _text_blocks(review: Review, settings: Settings | None) -> tuple[list[Block], bool]:
    """The AI summary (when there is one), the customer's message and the draft; whether any was trimmed."""
    blocks: list[Block] = []
    trimmed = False
    summary = (review.extra or {}).get("summary")
    if summary:
        body, cut = clip_escaped(masked(str(summary), settings), SUMMARY_BUDGET)
        blocks.append(SectionBlock(block_id=BlockId.REVIEW_SUMMARY, text=md(f"*Summary* (AI)\n{body}")))
        trimmed |= cut
    subject = f" — _{clip_escaped(masked(review.subject, settings), 200)[0]}_" if review.subject else ""
    body, cut = clip_escaped(customer_text(review, settings), CUSTOMER_BUDGET)
    blocks.append(
        SectionBlock(block_id=BlockId.REVIEW_CUSTOMER, text=md(f"*Customer wrote*{subject}\n{body}"))
    )
    trimmed |= cut
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


def _reasons_block(review: Review) -> SectionBlock:
    reasons = (
        "\n".join(f"• {escape(str(r.get('message', r.get('code', ''))))}" for r in review.reasons[:30])
        or "• (none recorded)"
    )
    return SectionBlock(
        block_id=BlockId.REVIEW_REASONS,
        text=md(f"*Why a human is needed*\n{clip(reasons, REASONS_BUDGET)[0]}"),
    )


def _context_blocks(review: Review, policy: Policy, now: datetime, *, pending: bool) -> list[Block]:
    """The SLA line and, while pending, who must decide."""
    context = [
        line
        for line in (sla_text(review, now), _supervisor_note(review, policy) if pending else None)
        if line
    ]
    if not context:
        return []
    return [
        ContextBlock(
            block_id=BlockId.REVIEW_SLA, elements=[md(clip(c, limits.CONTEXT_TEXT)[0]) for c in context]
        )
    ]


def _show_full_button(ref: str) -> ButtonElement:
    return ButtonElement(text="Show full message", action_id=ActionId.SHOW_FULL, value=ref)


def _actions_block(review: Review, ref: str, *, trimmed: bool) -> ActionsBlock:
    buttons = _decision_buttons(review, ref)
    if trimmed:
        buttons.append(_show_full_button(ref))
    return ActionsBlock(block_id=BlockId.REVIEW_ACTIONS, elements=buttons)


def _decided_blocks(review: Review, settings: Settings | None) -> list[Block]:
    blocks: list[Block] = []
    line = decision_line(review)
    if review.decision == DecisionKind.REJECT:
        line += f"\nReason: {reject_reason(review, 1000, settings)}"
    if line:
        blocks.append(SectionBlock(block_id=BlockId.REVIEW_DECISION, text=md(clip(line, SECTION_MAX)[0])))
    if review.decision == DecisionKind.EDIT and review.final_text:
        body, _ = clip_escaped(masked(review.final_text, settings), FINAL_BUDGET)
        size = (review.extra or {}).get("edit_distance")
        changed = f", {size:.0%} changed" if isinstance(size, (int, float)) else ""
        blocks.append(
            SectionBlock(block_id=BlockId.REVIEW_FINAL, text=md(f"*Sent (edited{changed})*\n{body}"))
        )
    return blocks


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
