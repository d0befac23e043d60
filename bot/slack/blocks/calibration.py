"""Calibration sessions in Slack: the session's intro, one card per review (decision hidden), the report.

Pure builders from slack_sdk's models. A card shows the customer message and the AI draft (PII masked,
escaped, trimmed like review cards), Good and a Defect menu of the taxonomy, and how many have voted;
never the original decision or anyone's verdict until the session is closed. Then it shows both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot.ai.pii import mask_pii
from bot.qa.calibration import Agreement, Verdict, kappa_text
from bot.slack.blocks import limits
from bot.slack.blocks.text import DECISION_DONE, DEFECT_LABELS, escape, mention
from bot.slack.ids import ActionId, BlockId
from storage.models import CalibrationItem, CalibrationSession, CalibrationVote, Review

SHOWN_CHARS = 1200  # of each text on a card: a session is many cards, each stays compact
MAX_BLOCKS = 50
REPORT_LINES_PER_SECTION = 2900
LABELS: dict[str, str] = {str(k): v for k, v in DEFECT_LABELS.items()}
ORIGINAL_WORDS = {
    **{str(k): v for k, v in DECISION_DONE.items()},
    "qa_good": "QA Good",
    "qa_defect": "QA Defect",
}


class CalibrationRef(BaseModel):
    """A card button's value: which session and which review."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    session_id: int = Field(ge=1)
    review_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class CalibrationChoice(CalibrationRef):
    """A Defect menu option's value: the card, and the category (≤ 150 characters, Slack's option limit)."""

    category: str = Field(max_length=32)


@dataclass(frozen=True)
class CardView:
    """What one card shows: the session, the review, its votes (the verdicts only once closed)."""

    cal: CalibrationSession
    item: CalibrationItem
    review: Review
    votes: Sequence[CalibrationVote]

    @property
    def closed(self) -> bool:
        return self.cal.closed_at is not None


def label(category: str | None) -> str:
    return LABELS.get(category or "", category or "unspecified")


def _quote(title: str, text: str) -> str:
    body = limits.mrkdwn(mask_pii(text).strip(), SHOWN_CHARS)
    return limits.fit(
        f"{title}\n" + "\n".join(f">{line}" for line in body.splitlines() or [""]), limits.SECTION_TEXT
    )


def _context(block_id: str, text: str) -> ContextBlock:
    return ContextBlock(
        block_id=block_id, elements=[MarkdownTextObject(text=limits.fit(text, limits.CONTEXT_TEXT))]
    )


# ---------------------------------------------------------------- the intro


def intro_text(cal: CalibrationSession) -> str:
    what = f"`{escape(cal.interaction_type)}`" if cal.interaction_type else "all types"
    return f"Calibration session #{cal.id}: {cal.n} past reviews ({what}), decisions hidden"


def intro_blocks(
    cal: CalibrationSession, *, not_posted_in: str | None = None, why: str | None = None
) -> list[Block]:
    """The message before the cards: what to do, and how the session ends."""
    lines = [
        f"{mention(cal.created_by)} started *{escape(intro_text(cal))}*.",
        "Judge each AI draft as if it were going out now: *Good*, or *Defect* and what kind. Vote on your own; "
        "the others' verdicts and the original decision stay hidden until the report. Clicking again changes your vote.",
        f"`/hitl calibrate report {cal.id}` closes the session and posts the agreement between reviewers "
        "(kappa) and with the original decisions.",
    ]
    if not_posted_in:
        lines.append(
            f":warning: I could not post in <#{escape(not_posted_in)}> ({escape(why or 'refused')}), so the cards are "
            "here in our DM. Invite me there (`/invite @hitl`) and run `/hitl calibrate` again for a session others can vote in."
        )
    return [
        HeaderBlock(block_id=BlockId.CALIBRATION_HEADER, text=PlainTextObject(text=f"Calibration #{cal.id}")),
        SectionBlock(
            block_id=BlockId.CALIBRATION_INTRO,
            text=MarkdownTextObject(text=limits.fit("\n".join(lines), limits.SECTION_TEXT)),
        ),
    ]


# ---------------------------------------------------------------- a card


def card_text(view: CardView) -> str:
    return limits.plain(
        f"Calibration #{view.cal.id} · {view.item.position} of {view.cal.n}: "
        f"{view.review.interaction_type} draft, decision hidden",
        limits.FALLBACK_TEXT,
    )


def card_blocks(view: CardView) -> list[Block]:
    """One review of the session: the messages, then the buttons (open) or the verdicts (closed)."""
    review, cal, item = view.review, view.cal, view.item
    title = f"Calibration #{cal.id} · {item.position} of {cal.n}" + (" · closed" if view.closed else "")
    facts = f"*{escape(review.interaction_type)}* · AI confidence *{review.confidence:.2f}*"
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.CALIBRATION_HEADER,
            text=PlainTextObject(text=limits.plain(title, limits.HEADER_TEXT)),
        ),
        _context(BlockId.CALIBRATION_FACTS, facts),
        SectionBlock(
            block_id=BlockId.CALIBRATION_CUSTOMER,
            text=MarkdownTextObject(text=_quote("*Customer*", review.customer_message)),
        ),
        SectionBlock(
            block_id=BlockId.CALIBRATION_DRAFT,
            text=MarkdownTextObject(text=_quote("*AI draft*", review.draft)),
        ),
    ]
    if view.closed:
        blocks.append(
            SectionBlock(block_id=BlockId.CALIBRATION_RESULT, text=MarkdownTextObject(text=result_text(view)))
        )
        return blocks
    blocks.append(_vote_buttons(cal, item))
    voters = len({v.voter for v in view.votes})
    blocks.append(
        _context(
            BlockId.CALIBRATION_VOTES,
            f"{voters} vote{'s' if voters != 1 else ''} so far · verdicts stay hidden until `/hitl calibrate report {cal.id}`",
        )
    )
    return blocks


def _vote_buttons(cal: CalibrationSession, item: CalibrationItem) -> ActionsBlock:
    ref = CalibrationRef(session_id=cal.id or 0, review_id=item.review_id)
    options = [
        Option(
            value=CalibrationChoice(
                session_id=ref.session_id, review_id=ref.review_id, category=value
            ).model_dump_json(),
            label=name,
        )
        for value, name in LABELS.items()
    ]
    return ActionsBlock(
        block_id=BlockId.CALIBRATION_ACTIONS,
        elements=[
            ButtonElement(
                action_id=ActionId.CALIBRATE_GOOD,
                text=PlainTextObject(text="Good", emoji=True),
                value=ref.model_dump_json(),
                style="primary",
            ),
            StaticSelectElement(
                action_id=ActionId.CALIBRATE_DEFECT,
                placeholder=PlainTextObject(text="Defect: what kind?"),
                options=options,
            ),
        ],
    )


def original_text(item: CalibrationItem) -> str:
    """`rejected (Hallucination) → Defect`."""
    word = ORIGINAL_WORDS.get(item.original_decision, item.original_decision)
    if item.original_category:
        word += f" ({label(item.original_category)})"
    return f"{escape(word)} → {'Good' if item.original_verdict == Verdict.GOOD else 'Defect'}"


def votes_text(votes: Sequence[CalibrationVote]) -> str:
    """`Good: @a, @b · Defect: @c (Tone mismatch)`, or `no votes`."""
    good = [mention(v.voter) for v in votes if v.verdict == Verdict.GOOD]
    bad = [f"{mention(v.voter)} ({label(v.category)})" for v in votes if v.verdict == Verdict.DEFECT]
    parts = ([f"Good: {', '.join(good)}"] if good else []) + ([f"Defect: {', '.join(bad)}"] if bad else [])
    return " · ".join(parts) or "no votes"


def result_text(view: CardView) -> str:
    return limits.fit(
        f"*Original decision:* {original_text(view.item)}\n*Votes:* {votes_text(view.votes)}",
        limits.SECTION_TEXT,
    )


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReportView:
    cal: CalibrationSession
    items: Sequence[CalibrationItem]
    tickets: dict[str, str]  # review id -> ticket id
    votes: Sequence[CalibrationVote]
    agreement: Agreement


def report_text(view: ReportView) -> str:
    a = view.agreement
    return limits.plain(
        f"Calibration #{view.cal.id} report: {kappa_text(a.between, len(a.voters))}; "
        f"agreement with the original decisions {a.overall.text()}",
        limits.FALLBACK_TEXT,
    )


def report_blocks(view: ReportView) -> list[Block]:
    """Agreement between reviewers, with the original decisions, then each review's votes."""
    a, cal = view.agreement, view.cal
    what = f"`{escape(cal.interaction_type)}`" if cal.interaction_type else "all types"
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.CALIBRATION_HEADER, text=PlainTextObject(text=f"Calibration #{cal.id} · report")
        ),
        _context(
            BlockId.CALIBRATION_FACTS,
            f"{what} · {len(view.items)} reviews · {len(view.votes)} votes from {len(a.voters)} people · "
            f"run by {mention(cal.created_by)}"
            + (f", closed by {mention(cal.closed_by)}" if cal.closed_by else ""),
        ),
        SectionBlock(
            block_id=BlockId.CALIBRATION_KAPPA,
            text=MarkdownTextObject(
                text=limits.fit(
                    f"*Between reviewers:* {escape(kappa_text(a.between, len(a.voters)))}",
                    limits.SECTION_TEXT,
                )
            ),
        ),
        SectionBlock(block_id=BlockId.CALIBRATION_ORIGINAL, text=MarkdownTextObject(text=_with_original(a))),
        DividerBlock(),
    ]
    budget = MAX_BLOCKS - len(blocks)
    for i, chunk in enumerate(_chunks(_review_lines(view))[:budget]):
        blocks.append(
            SectionBlock(block_id=f"{BlockId.CALIBRATION_REVIEWS}:{i}", text=MarkdownTextObject(text=chunk))
        )
    return blocks


def _with_original(a: Agreement) -> str:
    lines = [f"*With the original decisions:* {a.overall.text()} of the votes"]
    lines += [f"• {mention(voter)}: {a.with_original[voter].text()}" for voter in a.voters]
    return limits.fit("\n".join(lines), limits.SECTION_TEXT)


def _review_lines(view: ReportView) -> list[str]:
    by_review: dict[str, list[CalibrationVote]] = {}
    for vote in view.votes:
        by_review.setdefault(vote.review_id, []).append(vote)
    return [
        f"*{item.position}.* ticket #{escape(view.tickets.get(item.review_id, '?'))} · "
        f"original: {original_text(item)} · {votes_text(by_review.get(item.review_id, []))}"
        for item in view.items
    ]


def _chunks(lines: list[str]) -> list[str]:
    """Lines joined into texts of at most one section each."""
    chunks: list[str] = []
    for line in lines:
        line = limits.fit(line, REPORT_LINES_PER_SECTION)
        if chunks and len(chunks[-1]) + 1 + len(line) <= REPORT_LINES_PER_SECTION:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks
