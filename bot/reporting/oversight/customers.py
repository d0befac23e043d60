"""What the customer saw: CSAT by how the reply was made, came-back rate, customer-facing errors, time to
first reply and what oversight costs in reviewer time.

`customer_outcomes` reads the outcome counts (the stats rollup, or ix_outcomes_stats) and came-back
(`bot.reporting.stats.came_back`); the rest is arithmetic on `Counts` and the what-if.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, bindparam, text
from sqlmodel import Session

from bot.reporting.format import plural
from bot.reporting.oversight.interval import Rate
from bot.reporting.oversight.whatif import WhatIf
from bot.reporting.stats.came_back import came_back
from bot.reporting.stats.model import REPLY_EDGES, Counts
from bot.review.policy import Oversight
from storage.models import UTCDateTime

# How the reply that the customer judged was made: the review's decision kind.
CSAT_GROUPS = {"auto_send": "auto-sent", "approve": "approved", "edit": "edited", "take_over": "taken over"}


@dataclass
class CustomerOutcomes:
    """One type's (or all types') outcomes in a period."""

    csat: dict[str, list[int]] = field(default_factory=dict)  # decision -> [rated, satisfied]
    reopened: int = 0
    resolved: int = 0
    replies: int = 0  # replies with a known customer in the period
    came_back: int = 0  # ...of which the customer contacted again within the window

    def csat_rate(self, decision: str) -> Rate:
        rated, satisfied = self.csat.get(decision, [0, 0])
        return Rate(satisfied, rated)

    def came_back_rate(self) -> Rate:
        return Rate(self.came_back, self.replies)

    def add(self, other: CustomerOutcomes) -> None:
        for k, (n, s) in other.csat.items():
            mine = self.csat.setdefault(k, [0, 0])
            mine[0] += n
            mine[1] += s
        self.reopened += other.reopened
        self.resolved += other.resolved
        self.replies += other.replies
        self.came_back += other.came_back


def _times() -> tuple[BindParameter[datetime], BindParameter[datetime]]:
    return bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime())


def _outcome_counts(
    session: Session, itype: str, since: datetime, until: datetime, into: CustomerOutcomes
) -> None:
    sql = text(
        "SELECT kind, decision, count(*), sum(CASE WHEN satisfied THEN 1 ELSE 0 END) FROM outcomes "
        "WHERE interaction_type = :itype AND kind IN ('csat', 'reopened', 'resolved') "
        "AND at >= :since AND at < :until GROUP BY kind, decision"
    ).bindparams(*_times())
    for kind, decision, n, satisfied in session.execute(
        sql, {"itype": itype, "since": since, "until": until}
    ):
        if kind == "csat" and decision in CSAT_GROUPS:
            into.csat[str(decision)] = [int(n), int(satisfied or 0)]
        elif kind == "reopened":
            into.reopened += int(satisfied or 0)
        elif kind == "resolved":
            into.resolved += int(satisfied or 0)


def customer_outcomes(
    *,
    session: Session,
    types: list[str],
    since: datetime,
    until: datetime,
    window: timedelta,
    counted: Mapping[str, CustomerOutcomes] | None = None,
    now: datetime | None = None,
) -> dict[str, CustomerOutcomes]:
    """Outcomes reported in [since, until) and came-back counts of the replies made then, per type.

    `counted`: the outcome counts of the period already summed (the stats rollup); came-back is then read
    from the rollup too (`came_back`). None: both by the exact queries over the whole period."""
    back = came_back(session, since=since, until=until, window=window, now=now, cached=counted is not None)
    out: dict[str, CustomerOutcomes] = {}
    for itype in types:
        c = CustomerOutcomes()
        if counted is None:
            _outcome_counts(session, itype, since, until, c)
        elif itype in counted:
            c.add(counted[itype])
        c.replies, c.came_back = back.get(itype, [0, 0])
        out[itype] = c
    return out


def outcome_counts(csat: Mapping[str, list[int]], reopened: int, resolved: int) -> CustomerOutcomes:
    """Outcome counts summed elsewhere, as `customer_outcomes` keeps them (CSAT by the kinds it shows)."""
    return CustomerOutcomes(
        csat={k: list(v) for k, v in csat.items() if k in CSAT_GROUPS}, reopened=reopened, resolved=resolved
    )


# ---------------------------------------------------------------- arithmetic on the counts


@dataclass(frozen=True)
class Projection:
    """Customer-facing errors per day: auto-sent replies a day times the QA defect rate (95% Wilson)."""

    per_day: float | None
    low: float | None
    high: float | None
    auto_per_day: float
    proposed: float | None = None  # the threshold projected for
    proposed_per_day: float | None = None

    def text(self) -> str:
        if self.per_day is None or self.low is None or self.high is None:
            return f"customer-facing errors unknown ({self.auto_per_day:.1f} auto-sent a day, none QA-rated)"
        out = (
            f"customer-facing errors ≈ {self.per_day:.1f}/day ({self.auto_per_day:.1f} auto-sent a day × QA "
            f"defect rate; 95% Wilson {self.low:.1f}–{self.high:.1f})"
        )
        if self.proposed is not None and self.proposed_per_day is not None:
            out += f", ≈ {self.proposed_per_day:.1f}/day at {self.proposed:.2f}"
        return out


def _days(period: timedelta) -> float:
    return period.total_seconds() / 86400


def _at_threshold(c: Counts, days: float, defect: float, wi: WhatIf) -> float | None:
    """Errors a day if the what-if's threshold applied to today's volume."""
    if not wi.considered:
        return None
    if wi.proposed < wi.current:
        newly_share = wi.newly_auto_sent / wi.considered  # of human-decided drafts
        error_share = wi.error_share or 0.0  # what humans fixed in those drafts
        return (c.auto_send * defect + c.human * newly_share * error_share) / days
    kept_share = 1 - wi.to_humans / wi.considered  # of auto-sent replies
    return c.auto_send * kept_share * defect / days


def project_errors(c: Counts, period: timedelta, whatif: WhatIf | None) -> Projection:
    """Today's customer-facing errors (the period's daily average) and at the what-if's threshold."""
    days = _days(period)
    auto = c.auto_send / days
    defect = Rate(c.qa_defect, c.qa_rated)
    if defect.value is None or defect.low is None or defect.high is None:
        return Projection(None, None, None, auto)
    proposed = _at_threshold(c, days, defect.value, whatif) if whatif is not None else None
    return Projection(
        auto * defect.value,
        auto * defect.low,
        auto * defect.high,
        auto,
        whatif.proposed if whatif is not None and proposed is not None else None,
        proposed,
    )


def bucket_percentile(cumulative: list[int], n: int, p: float) -> str:
    """`≤ 5m`: the smallest REPLY_EDGES bucket holding the p-th reply; `> 1d` past the last; `—` if none."""
    if n == 0:
        return "—"
    for edge, count in zip(REPLY_EDGES, cumulative, strict=True):
        if count >= p * n:
            return f"≤ {_short(edge)}"
    return f"> {_short(REPLY_EDGES[-1])}"


def _short(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def first_reply_text(c: Counts) -> str:
    """Time from the draft's arrival to the reply going out: auto-sent vs approved or edited, p50/p90."""
    reviewed = c.approve + c.edit
    return (
        f"first reply auto-sent p50 {bucket_percentile(c.reply_auto, c.auto_send, 0.5)} / "
        f"p90 {bucket_percentile(c.reply_auto, c.auto_send, 0.9)}, reviewed p50 "
        f"{bucket_percentile(c.reply_reviewed, reviewed, 0.5)} / p90 {bucket_percentile(c.reply_reviewed, reviewed, 0.9)}"
    )


def reviewer_hours_per_week(c: Counts, period: timedelta) -> float:
    return c.reviewer_seconds / 3600 / (_days(period) / 7)


def reviewer_time_text(c: Counts, period: timedelta, o: Oversight) -> str:
    cap = int(o.review_time_cap.total_seconds() // 60)
    return (
        f"reviewer time {reviewer_hours_per_week(c, period):.1f} h/week over {plural(c.human, 'human decision')} "
        f"(draft arrival to decision, at most {cap} min per review)"
    )


def csat_text(co: CustomerOutcomes) -> str:
    parts = [f"{label} {co.csat_rate(k).text()}" for k, label in CSAT_GROUPS.items() if co.csat.get(k)]
    return "CSAT satisfied (4–5 or good): " + ("; ".join(parts) if parts else "no ratings")


def came_back_text(co: CustomerOutcomes, window: timedelta) -> str:
    hours = int(window.total_seconds() // 3600)
    extra = f"; {co.reopened} reopened" if co.reopened else ""
    return (
        f"came back within {hours}h {co.came_back_rate().text()} (replies whose {hours}h had passed){extra}"
    )


def customer_lines(
    c: Counts, co: CustomerOutcomes | None, period: timedelta, o: Oversight, whatif: WhatIf | None
) -> tuple[str, ...]:
    """Every customer and cost line of one type (or of all types, without a what-if)."""
    co = co or CustomerOutcomes()
    return (
        csat_text(co),
        came_back_text(co, o.came_back_window),
        project_errors(c, period, whatif).text(),
        first_reply_text(c),
        reviewer_time_text(c, period, o),
    )
