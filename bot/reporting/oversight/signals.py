"""Warning signs (rising repeat contacts and escalations, SLA trouble, unknown error rates) and calibration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from sqlmodel import Session

from bot.reporting.format import pct, plural, secs
from bot.reporting.oversight.reviewers import ReviewerPace, TeamPace, reviewer_pace
from bot.reporting.stats.model import Band, Counts, Stats
from bot.review.policy import Oversight

MIN_BAND = 5  # decisions a confidence band needs before its approval rate is compared


def calibration_note(bands: dict[int, Band]) -> str:
    """Does approval rise with confidence? Bands with fewer than MIN_BAND human decisions are ignored."""
    rates = [
        b.approve_rate for _, b in sorted(bands.items()) if b.human >= MIN_BAND and b.approve_rate is not None
    ]
    if len(rates) < 2:
        return "too few human decisions per confidence band to judge calibration"
    drops = [a - b for a, b in pairwise(rates) if a - b > 0.05]
    if drops:
        return "approval does not rise with confidence: confidence is a weak signal here"
    return "approval rises with confidence: thresholds can be trusted"


@dataclass(frozen=True)
class Signals:
    """Counts for warning signs that are not part of the stats."""

    repeat_contacts: dict[str, int] = field(default_factory=dict)
    sla_escalations: dict[str, int] = field(default_factory=dict)
    qa_backlog: dict[str, int] = field(default_factory=dict)  # drawn for QA over a day ago, still unrated


@dataclass(frozen=True)
class WarningSign:
    code: str
    interaction_type: str | None
    message: str


def rising(cur: int, cur_base: int, prev: int, prev_base: int, o: Oversight) -> bool:
    """A share that grew by `rising_ratio` on the previous period, with at least `rising_min_count` cases."""
    if cur < o.rising_min_count or cur_base == 0 or prev_base == 0:
        return False
    return cur / cur_base >= (prev / prev_base) * o.rising_ratio


def _share(n: int, base: int) -> str:
    return pct(n / base if base else None)


@dataclass(frozen=True)
class _TypeSigns:
    """One type's counts and signals in this period and the previous one."""

    itype: str
    c: Counts
    p: Counts
    cur_sig: Signals
    prev_sig: Signals
    o: Oversight

    def repeat_contacts(self) -> WarningSign | None:
        c, p = self.c, self.p
        rc = self.cur_sig.repeat_contacts.get(self.itype, 0)
        prc = self.prev_sig.repeat_contacts.get(self.itype, 0)
        if not rising(rc, c.volume, prc, p.volume, self.o):
            return None
        return WarningSign(
            "repeat_contacts_rising",
            self.itype,
            f"repeat contacts rising: {rc} of {c.volume} drafts ({_share(rc, c.volume)}), "
            f"was {_share(prc, p.volume)}",
        )

    def escalations(self) -> WarningSign | None:
        c, p = self.c, self.p
        sla_escalations = self.cur_sig.sla_escalations.get(self.itype, 0)
        esc = c.take_over_on_review + sla_escalations
        pesc = p.take_over_on_review + self.prev_sig.sla_escalations.get(self.itype, 0)
        if not rising(esc, c.volume, pesc, p.volume, self.o):
            return None
        return WarningSign(
            "escalations_rising",
            self.itype,
            f"unexpected escalations rising: {esc} ({c.take_over_on_review} take-overs of "
            f"drafts routed to review, {sla_escalations} SLA "
            f"escalations) per {c.volume} drafts, was {pesc} per {p.volume}",
        )

    def sla_breaching(self) -> WarningSign | None:
        c, o = self.c, self.o
        rate = c.sla_breach_rate
        if rate is None or rate <= o.warn_sla_breach_rate or c.sla_breached < o.rising_min_count:
            return None
        return WarningSign(
            "sla_breaching",
            self.itype,
            f"{c.sla_breached} reviews breached their SLA ({pct(rate)}, warning above "
            f"{pct(o.warn_sla_breach_rate)})",
        )

    def error_rate_unknown(self) -> WarningSign | None:
        c, o = self.c, self.o
        if not c.decided or c.judged + c.qa_rated >= o.min_rated:
            return None
        extra = f"; {c.auto_send} auto-sent, {c.qa_rated} QA-rated" if c.auto_send else ""
        return WarningSign(
            "error_rate_unknown",
            self.itype,
            f"error rate unknown: {c.judged} judged + {c.qa_rated} QA-rated of "
            f"{plural(c.decided, 'decision')} (at least {o.min_rated} needed){extra}",
        )

    def all(self) -> list[WarningSign]:
        signs = (self.repeat_contacts(), self.escalations(), self.sla_breaching(), self.error_rate_unknown())
        return [s for s in signs if s is not None]


def _left_undecided(cur: Stats) -> list[WarningSign]:
    return [
        WarningSign(
            "left_undecided",
            itype,
            f"{overdue} of {pending} pending reviews are past their SLA and still undecided",
        )
        for itype, (pending, overdue) in sorted(cur.pending_by_type.items())
        if overdue
    ]


def _qa_backlog(sig: Signals) -> list[WarningSign]:
    """Replies drawn for QA (auto-sent, and human-approved ones since issue 12) over a day ago, unrated."""
    return [
        WarningSign(
            "qa_backlog",
            itype,
            f"{plural(n, 'reply', 'replies')} drawn for QA over a day ago still unrated: "
            "the QA pass rate lags behind",
        )
        for itype, n in sorted(sig.qa_backlog.items())
        if n
    ]


def warning_signs(
    cur: Stats, prev: Stats, cur_sig: Signals, prev_sig: Signals, o: Oversight
) -> list[WarningSign]:
    """Repeat contacts and unexpected escalations rising, SLA trouble, types whose error rate is unknown,
    and an unrated QA backlog."""
    signs: list[WarningSign] = []
    empty = Counts()
    for itype, c in cur.by_type.items():
        signs += _TypeSigns(itype, c, prev.by_type.get(itype, empty), cur_sig, prev_sig, o).all()
    return signs + _left_undecided(cur) + _qa_backlog(cur_sig)


# ---------------------------------------------------------------- reviewers (issue 12)


def _fast_and_failing(r: ReviewerPace, team: float, rate: float, o: Oversight) -> bool:
    """Much faster than the team, and even the Wilson lower bound of their QA defect rate above the team's."""
    fast = r.median_seconds is not None and r.median_seconds < o.fast_approver_ratio * team
    return fast and r.qa.low is not None and r.qa.low > rate


def fast_approver_signs(pace: TeamPace, o: Oversight) -> list[WarningSign]:
    """Reviewers approving in under `fast_approver_ratio` of the team's median time whose approved replies
    fail QA more often than the team's (on the 95% Wilson lower bound of their defect rate)."""
    team, rate = pace.median_seconds, pace.qa.value
    if team is None or rate is None:
        return []
    return [
        WarningSign(
            "fast_approver",
            None,
            f"<@{r.actor_id}> approves fast: median {secs(r.median_seconds)} over "
            f"{plural(r.approvals, 'approval')}, the team's {secs(team)}; QA defects in their approved "
            f"replies {r.qa.text()}, the team's {pct(rate)} ({pace.qa.k} of {pace.qa.n})",
        )
        for r in pace.reviewers
        if _fast_and_failing(r, team, rate, o)
    ]


def reviewer_signs(*, session: Session, since: datetime, until: datetime, o: Oversight) -> list[WarningSign]:
    """The fast-approver warnings of [since, until): reviewers' pace and QA verdicts, queried and judged."""
    pace = reviewer_pace(
        session=session, since=since, until=until, min_approvals=o.fast_approver_min_approvals
    )
    return fast_approver_signs(pace, o)
