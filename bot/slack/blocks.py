"""Block Kit builders for review cards, modals and thread replies: pure functions of the review and `now`.

Built from `slack_sdk.models.blocks` classes and validated as they are built, so Slack's per-field limits
hold; message-wide budgets (block count, total text) are kept here. Text from outside (customer, AI
draft, names, links) is escaped, so it can never mention `@channel` or fake a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ai.pii import mask_pii
from bot.ai.tone import tone_flags
from bot.app.settings import Settings, secret
from bot.review.policy import Policy
from bot.slack.ids import ActionId, BlockId, CallbackId, ModalMeta, ReviewRef
from storage.models import DecisionKind, DefectCategory, Review, ReviewStatus, Route

SECTION_MAX = 3000
HEADER_MAX = 150
INPUT_MAX = 3000
VIEW_MAX_BLOCKS = 100
# Budgets that keep a whole card far below Slack's ~12k characters of block text.
CUSTOMER_BUDGET = 1500
DRAFT_BUDGET = 2000
FINAL_BUDGET = 1200
SUMMARY_BUDGET = 600
REASONS_BUDGET = 800
FALLBACK_SNIPPET = 200
THREAD_DRAFT_BUDGET = 3500

ELLIPSIS = "…"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

DECISION_DONE = {
    DecisionKind.APPROVE: "approved",
    DecisionKind.EDIT: "edited",
    DecisionKind.TAKE_OVER: "taken over",
    DecisionKind.REJECT: "rejected",
    DecisionKind.AUTO_SEND: "auto-sent",
}
DECISION_ICON = {
    DecisionKind.APPROVE: "✅",
    DecisionKind.EDIT: "✏️",
    DecisionKind.TAKE_OVER: "🙋",
    DecisionKind.REJECT: "⛔",
    DecisionKind.AUTO_SEND: "🤖",
}
DEFECT_LABELS = {
    DefectCategory.HALLUCINATION: "Hallucination",
    DefectCategory.TONE_MISMATCH: "Tone mismatch",
    DefectCategory.POLICY_MISAPPLICATION: "Policy misapplication",
    DefectCategory.INCOMPLETE_RESOLUTION: "Incomplete resolution",
    DefectCategory.OTHER: "Other",
}


# ---------------------------------------------------------------- text helpers


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` (all Slack asks), making mentions and links in the text inert."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def clip(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters with "…" when trimmed; (text, trimmed)."""
    if len(text) <= limit:
        return text, False
    return text[: limit - 1].rstrip() + ELLIPSIS, True


def clip_escaped(raw: str, limit: int) -> tuple[str, bool]:
    """Escape `raw` and trim it to `limit` characters without splitting an entity; (text, trimmed)."""
    escaped = escape(raw)
    if len(escaped) <= limit:
        return escaped, False
    out: list[str] = []
    size = 0
    for ch in raw:
        piece = _ESCAPES.get(ch, ch)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + ELLIPSIS, True


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A date Slack shows in each reader's time zone, with a UTC fallback."""
    return f"<!date^{int(at.timestamp())}^{fmt}|{at:%Y-%m-%d %H:%M} UTC>"


def span(delta: timedelta) -> str:
    """A short duration: "<1m", "12m", "1h 5m", "2d 3h"."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def link(url: str, label: str) -> str:
    """A mrkdwn link whose URL and label cannot break out of the `<url|label>` syntax."""
    safe_url = escape(url).replace("|", "%7C")
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"


def channel_ref(channel: str) -> str:
    """A channel as Slack shows it: `<#C123>` for ids, the escaped name otherwise."""
    if channel[:1] in ("C", "G") and channel.isalnum():
        return f"<#{channel}>"
    return escape(channel)


def tone_hits(draft: str, policy: Policy) -> list[str]:
    """Banned phrases from the policy's tone guardrail found in the draft (bot.ai.tone: whole words, any case)."""
    return tone_flags(draft, policy)


def _customer_text(review: Review, settings: Settings | None) -> str:
    masked = settings is None or settings.mask_pii
    return mask_pii(review.customer_message) if masked else review.customer_message


def _decision(review: Review) -> DecisionKind | None:
    return DecisionKind(review.decision) if review.decision else None


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _validated(blocks: Sequence[Block]) -> list[Block]:
    for block in blocks:
        block.to_dict()  # slack_sdk checks its limits here and raises SlackObjectFormationError
    return list(blocks)


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


# ---------------------------------------------------------------- review card


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


def decision_line(review: Review) -> str:
    """Who decided what and when, e.g. "✅ *Approved* by <@U1> · <date>"."""
    kind = _decision(review)
    if kind is None or review.decided_at is None:
        return ""
    who = f"<@{review.decided_by}>" if review.decided_by and review.decided_by != "hitl" else "hitl"
    line = f"{DECISION_ICON[kind]} *{DECISION_DONE[kind].capitalize()}* by {who} · {slack_date(review.decided_at)}"
    if kind == DecisionKind.TAKE_OVER:
        line += " — the ticket is assigned to them"
    return line


def _facts(review: Review, policy: Policy) -> SectionBlock:
    customer = review.customer or {}
    who = [escape(str(customer.get("name") or customer.get("email") or "unknown customer"))]
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
        _md(f"*Ticket*\n{clip(ticket, 1900)[0]}"),
        _md(f"*Confidence*\n{review.confidence:.2f}"),
        _md(f"*Customer*\n{clip(' · '.join(who), 1900)[0]}"),
        _md(f"*Tier*\n{escape(review.tier)}" + (f" ({channel_ref(tier.channel)})" if tier else "")),
    ]
    if review.refund_amount is not None:
        fields.append(_md(f"*Refund*\n{_money(review.refund_amount)}"))
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
    kind = "Take over" if review.route == Route.TAKE_OVER else "Review"
    icon = "🔴" if review.route == Route.TAKE_OVER else "🟡"
    title = clip(
        f"{icon} {kind}: {review.interaction_type.replace('_', ' ')} · ticket {review.ticket_id}", HEADER_MAX
    )[0]
    blocks: list[Block] = [HeaderBlock(block_id=BlockId.REVIEW_HEADER, text=title), _facts(review, policy)]
    trimmed = False

    summary = (review.extra or {}).get("summary")
    if summary:
        body, cut = clip_escaped(str(summary), SUMMARY_BUDGET)
        blocks.append(SectionBlock(block_id=BlockId.REVIEW_SUMMARY, text=_md(f"*Summary* (AI)\n{body}")))
        trimmed |= cut
    subject = f" — _{clip_escaped(review.subject, 200)[0]}_" if review.subject else ""
    body, cut = clip_escaped(_customer_text(review, settings), CUSTOMER_BUDGET)
    blocks.append(
        SectionBlock(block_id=BlockId.REVIEW_CUSTOMER, text=_md(f"*Customer wrote*{subject}\n{body}"))
    )
    trimmed |= cut
    body, cut = clip_escaped(review.draft, DRAFT_BUDGET)
    blocks.append(SectionBlock(block_id=BlockId.REVIEW_DRAFT, text=_md(f"*AI draft*\n{body}")))
    trimmed |= cut
    hits = tone_hits(review.draft, policy)
    if hits:
        phrases = ", ".join(f"“{escape(h)}”" for h in hits)
        blocks.append(
            ContextBlock(
                block_id=BlockId.REVIEW_TONE,
                elements=[_md(clip(f"⚠️ Tone guardrail: the draft says {phrases}", 2000)[0])],
            )
        )
    reasons = (
        "\n".join(f"• {escape(r.get('message', r.get('code', '')))}" for r in review.reasons)
        or "• (none recorded)"
    )
    blocks.append(
        SectionBlock(
            block_id=BlockId.REVIEW_REASONS,
            text=_md(f"*Why a human is needed*\n{clip(reasons, REASONS_BUDGET)[0]}"),
        )
    )
    context = [
        line
        for line in (sla_text(review, now), _supervisor_note(review, policy) if pending else None)
        if line
    ]
    if context:
        blocks.append(
            ContextBlock(block_id=BlockId.REVIEW_SLA, elements=[_md(clip(c, 2000)[0]) for c in context])
        )

    if pending:
        buttons = _decision_buttons(review, ref)
        if trimmed:
            buttons.append(ButtonElement(text="Show full message", action_id=ActionId.SHOW_FULL, value=ref))
        blocks.append(ActionsBlock(block_id=BlockId.REVIEW_ACTIONS, elements=buttons))
    else:
        blocks += _decided_blocks(review)
        if trimmed or review.decision == DecisionKind.EDIT:
            blocks.append(
                ActionsBlock(
                    block_id=BlockId.REVIEW_MORE,
                    elements=[
                        ButtonElement(text="Show full message", action_id=ActionId.SHOW_FULL, value=ref)
                    ],
                )
            )
    return fallback_text(review), _validated(blocks)


def _decided_blocks(review: Review) -> list[Block]:
    blocks: list[Block] = []
    line = decision_line(review)
    if review.decision == DecisionKind.REJECT:
        line += f"\nReason: {reject_reason(review, 1000)}"
    if line:
        blocks.append(SectionBlock(block_id=BlockId.REVIEW_DECISION, text=_md(clip(line, SECTION_MAX)[0])))
    if review.decision == DecisionKind.EDIT and review.final_text:
        body, _ = clip_escaped(review.final_text, FINAL_BUDGET)
        size = (review.extra or {}).get("edit_distance")
        changed = f", {size:.0%} changed" if isinstance(size, (int, float)) else ""
        blocks.append(
            SectionBlock(block_id=BlockId.REVIEW_FINAL, text=_md(f"*Sent (edited{changed})*\n{body}"))
        )
    return blocks


def reject_reason(review: Review, comment_budget: int) -> str:
    """A rejected review's defect category and comment, escaped."""
    extra = review.extra or {}
    label = DEFECT_LABELS.get(DefectCategory(extra.get("reject_category") or "other"), "Other")
    comment = extra.get("reject_comment")
    return label + (f": “{clip_escaped(str(comment), comment_budget)[0]}”" if comment else "")


def fallback_text(review: Review) -> str:
    """The notification / screen-reader text sent with the blocks."""
    what = f"{review.interaction_type} ticket {review.ticket_id}"
    if review.status != ReviewStatus.PENDING and review.decision:
        who = review.decided_by_name or review.decided_by or "hitl"
        return escape(f"{DECISION_DONE[DecisionKind(review.decision)].capitalize()} by {who}: {what}")
    kind = "Take over needed" if review.route == Route.TAKE_OVER else "Review needed"
    snippet = clip(" ".join(mask_pii(review.customer_message).split()), FALLBACK_SNIPPET)[
        0
    ]  # push notifications
    return escape(f"{kind}: {what} ({review.tier}, confidence {review.confidence:.2f}) — {snippet}")


def moved_message(review: Review, to_channel: str) -> tuple[str, list[Block]]:
    """What an old card says once the review was re-posted in another tier's channel."""
    text = f"Moved to {channel_ref(to_channel)} (tier {escape(review.tier)}): decide there."
    title = clip(
        f"↪️ Moved: {review.interaction_type.replace('_', ' ')} · ticket {review.ticket_id}", HEADER_MAX
    )[0]
    return text, _validated(
        [
            HeaderBlock(block_id=BlockId.REVIEW_HEADER, text=title),
            SectionBlock(block_id=BlockId.REVIEW_DECISION, text=_md(text)),
        ]
    )


# ---------------------------------------------------------------- thread replies and ephemerals


def decision_thread_text(review: Review) -> str:
    """The thread reply recording a decision (a take over also gets the draft and context to start from)."""
    line = decision_line(review)
    kind = _decision(review)
    if kind == DecisionKind.APPROVE:
        return f"{line}. The draft goes to the customer as written."
    if kind == DecisionKind.EDIT:
        size = (review.extra or {}).get("edit_distance")
        changed = f" ({size:.0%} of the draft changed)" if isinstance(size, (int, float)) else ""
        return f"{line}{changed}. The edited reply goes to the customer."
    if kind == DecisionKind.REJECT:
        return f"{line} — {reject_reason(review, 1000)}. Nothing was sent to the customer."
    if kind == DecisionKind.TAKE_OVER:
        return take_over_text(review, line)
    return line


def take_over_text(review: Review, line: str) -> str:
    """A take over's thread reply: the AI draft and the context, as a starting point."""
    draft, _ = clip_escaped(review.draft, THREAD_DRAFT_BUDGET)
    parts = [f"{line}.", "*Starting point — the AI draft:*", f"```{draft}```"]
    reasons = "; ".join(escape(r.get("message", "")) for r in review.reasons)
    if reasons:
        parts.append(f"*Why it needed a human:* {clip(reasons, 1000)[0]}")
    if review.kb_sources:
        parts.append(
            "*Sources the AI used:* " + clip(", ".join(escape(s) for s in review.kb_sources), 1000)[0]
        )
    if review.ticket_url:
        parts.append(f"*Ticket:* {link(review.ticket_url, '#' + review.ticket_id)}")
    return "\n".join(parts)


def already_decided_text(
    *, decision: str, actor_id: str | None, decided_at: datetime | None, user_id: str
) -> str:
    """The ephemeral for a click on a decided review: who decided what, and when."""
    kind = DecisionKind(decision)
    when = f" ({slack_date(decided_at)})" if decided_at else ""
    if actor_id == user_id:
        return f"{DECISION_ICON[kind]} You already {DECISION_DONE[kind]} this{when}. Nothing changed."
    who = f"<@{actor_id}>" if actor_id and actor_id != "hitl" else "hitl"
    return f"{DECISION_ICON[kind]} Already {DECISION_DONE[kind]} by {who}{when}. Nothing changed."


def not_allowed_text(why: str) -> str:
    """The ephemeral for a click by someone the policy does not let decide."""
    return f"🚫 {why} Nothing changed, and the attempt is in the audit log."


# ---------------------------------------------------------------- modals


def _parts(text: str, size: int = INPUT_MAX) -> list[str]:
    """`text` in pieces of at most `size` characters, cut after whitespace where possible ("".join restores it)."""
    parts: list[str] = []
    while len(text) > size:
        cut = max(text.rfind("\n", size // 2, size), text.rfind(" ", size // 2, size))
        cut = cut + 1 if cut > 0 else size
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


def edit_modal(
    review: Review,
    meta: ModalMeta,
    *,
    settings: Settings | None = None,
    text: str | None = None,
    revision: int = 0,
    ai_note: str | None = None,
) -> View:
    """The Edit modal, prefilled with the draft (in 3,000-character parts when it is longer).

    With a model configured it also offers AI Regenerate (handlers/slack/ai.py), which rebuilds the modal
    with `text` under new block ids (`revision`), since Slack keeps typed input over a new initial_value.
    """
    customer, _ = clip(" ".join(_customer_text(review, settings).split()), 600)
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.REVIEW_CUSTOMER,
            text=PlainTextObject(text=f"The customer wrote: {customer}", emoji=False),
        )
    ]
    parts = _parts(review.draft if text is None else text)
    for i, part in enumerate(parts[: VIEW_MAX_BLOCKS - 4]):
        label = "Reply to the customer" if len(parts) == 1 else f"Reply, part {i + 1} of {len(parts)}"
        blocks.append(
            InputBlock(
                block_id=f"{BlockId.EDIT_TEXT}:{i}" + (f":r{revision}" if revision else ""),
                label=label,
                optional=i > 0,
                element=PlainTextInputElement(
                    action_id=ActionId.EDIT_TEXT, multiline=True, max_length=INPUT_MAX, initial_value=part
                ),
            )
        )
    if settings is not None and secret(settings.openai_api_key):
        blocks += _ai_blocks(review, ai_note)
    return View(
        type="modal",
        callback_id=CallbackId.EDIT_MODAL,
        title="Edit reply",
        submit="Send reply",
        close="Cancel",
        private_metadata=meta.model_dump_json(),
        blocks=_validated(blocks),
    )


def _ai_blocks(review: Review, note: str | None) -> list[Block]:
    """AI Regenerate in the Edit modal: an optional instruction and the button (and a quiet note after a try)."""
    blocks: list[Block] = [
        InputBlock(
            block_id=BlockId.AI_INSTRUCTION,
            label="Instruction for AI",
            optional=True,
            hint="Regenerate rewrites the reply above from the knowledge base; you still review it.",
            element=PlainTextInputElement(
                action_id=ActionId.AI_INSTRUCTION,
                max_length=500,
                placeholder="e.g. shorter, apologise for the delay",
            ),
        ),
        ActionsBlock(
            block_id=BlockId.AI_ACTIONS,
            elements=[
                ButtonElement(
                    text="Regenerate with AI",
                    action_id=ActionId.AI_REGENERATE,
                    value=ReviewRef(review_id=review.id).model_dump_json(),
                )
            ],
        ),
    ]
    if note:
        blocks.append(ContextBlock(block_id=BlockId.AI_NOTE, elements=[_md(clip(escape(note), 2000)[0])]))
    return blocks


def edited_text(values: dict[str, dict[str, dict[str, str | None]]]) -> str:
    """The reply typed into the Edit modal, its parts joined in order."""
    keys = sorted(
        (k for k in values if k.startswith(f"{BlockId.EDIT_TEXT}:")), key=lambda k: int(k.split(":")[1])
    )
    return "".join(values[k][ActionId.EDIT_TEXT].get("value") or "" for k in keys)


def rejected_reason(values: dict[str, dict[str, dict[str, Any]]]) -> tuple[str | None, str | None]:
    """(defect category, comment) chosen in the Reject modal; category None when missing or unknown."""
    selected = (values.get(BlockId.REJECT_CATEGORY, {}).get(ActionId.REJECT_CATEGORY) or {}).get(
        "selected_option"
    )
    category = (selected or {}).get("value")
    comment = (values.get(BlockId.REJECT_COMMENT, {}).get(ActionId.REJECT_COMMENT) or {}).get("value")
    valid = category in {c.value for c in DefectCategory}
    return (category if valid else None), (comment.strip() or None) if comment else None


def reject_modal(review: Review, meta: ModalMeta) -> View:
    """The Reject modal: a defect category (required) and a comment."""
    options = [Option(value=c.value, text=label) for c, label in DEFECT_LABELS.items()]
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.REVIEW_HEADER,
            text=_md(
                f"Reject the AI draft for ticket {escape('#' + review.ticket_id)}? Nothing is sent to the customer; "
                "the reason goes to the feedback store."
            ),
        ),
        InputBlock(
            block_id=BlockId.REJECT_CATEGORY,
            label="What is wrong with it?",
            element=StaticSelectElement(
                action_id=ActionId.REJECT_CATEGORY, placeholder="Choose a reason", options=options
            ),
        ),
        InputBlock(
            block_id=BlockId.REJECT_COMMENT,
            label="Details",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.REJECT_COMMENT,
                multiline=True,
                max_length=INPUT_MAX,
                placeholder="What should it have said?",
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.REJECT_MODAL,
        title="Reject draft",
        submit="Reject",
        close="Cancel",
        private_metadata=meta.model_dump_json(),
        blocks=_validated(blocks),
    )


def full_text_modal(review: Review, *, settings: Settings | None = None) -> View:
    """Everything the card had to trim: the customer's message, the draft and the text sent, in full."""
    sections = [
        ("customer", "Customer wrote", _customer_text(review, settings)),
        ("draft", "AI draft", review.draft),
    ]
    if review.final_text and review.final_text != review.draft:
        sections.append(("sent", "Sent", review.final_text))
    blocks: list[Block] = []
    for key, name, text in sections:
        blocks.append(HeaderBlock(block_id=f"{BlockId.FULL_TEXT}:{key}", text=name))
        for i, part in enumerate(_parts(text)):
            blocks.append(
                SectionBlock(
                    block_id=f"{BlockId.FULL_TEXT}:{key}:{i}",
                    text=PlainTextObject(text=part or " ", emoji=False),
                )
            )
    if len(blocks) > VIEW_MAX_BLOCKS:
        blocks = blocks[: VIEW_MAX_BLOCKS - 1] + [
            SectionBlock(
                block_id=f"{BlockId.FULL_TEXT}:more", text=_md("(longer still: the rest is in the ticket)")
            )
        ]
    title = clip(f"Ticket {review.ticket_id}", 24)[0]
    return View(
        type="modal",
        callback_id=CallbackId.FULL_TEXT_MODAL,
        title=title,
        close="Close",
        blocks=_validated(blocks),
    )
