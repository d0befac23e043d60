"""`build_review`: the queries behind the oversight review, and the rules applied to what they return.

This period's stats, the previous equal period's, the last N review decisions per type (what-if
replays) and a few warning-sign counts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, distinct, func, select, text
from sqlmodel import Session

from bot.qa import calibration_store
from bot.reporting.format import span_label
from bot.reporting.oversight.changes import change_sections
from bot.reporting.oversight.customers import (
    CustomerOutcomes,
    customer_lines,
    customer_outcomes,
    outcome_counts,
)
from bot.reporting.oversight.recommend import Recommendation, proposal, recommend, thresholds_for
from bot.reporting.oversight.signals import (
    Signals,
    WarningSign,
    calibration_note,
    reviewer_signs,
    warning_signs,
)
from bot.reporting.oversight.whatif import WhatIfRow, what_if
from bot.reporting.stats.model import Band, Counts, Stats
from bot.reporting.stats.query import columns, compute_stats
from bot.reporting.stats.rollup import Window, stats_of, window
from bot.review.policy import Oversight, Policy
from storage.models import QA_SAMPLED, REPEAT_CONTACT, Decision, Review, SlaPing, UTCDateTime

CONFIDENCE_CODES = frozenset({"confidence_high", "confidence_medium", "confidence_low"})
VERDICT_ORDER = {"increase": 0, "expand": 1, "keep": 2}
QA_BACKLOG_AGE = timedelta(days=1)  # a QA sample unrated for longer is a warning sign


@dataclass(frozen=True)
class ReviewSection:
    """A part of the review another feature adds (calibration sessions, recorded oversight changes, QA of
    human decisions): a title, lines about all types, and lines under each type's verdict."""

    title: str
    lines: tuple[str, ...] = ()
    per_type: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


@dataclass
class OversightReview:
    since: datetime
    until: datetime
    stats: Stats
    previous: Stats
    recommendations: list[Recommendation]
    warnings: list[WarningSign]
    calibration: dict[str, tuple[dict[int, Band], str]]
    no_data: list[str]
    customers: dict[str, CustomerOutcomes] = dataclasses.field(default_factory=dict)
    overall: tuple[str, ...] = ()  # the customer and cost lines of all types together
    sections: list[ReviewSection] = dataclasses.field(default_factory=list)  # rendered after the verdicts

    @property
    def period(self) -> timedelta:
        return self.until - self.since


def repeat_contacts(
    *, session: Session, since: datetime, until: datetime, interaction_type: str | None = None
) -> dict[str, int]:
    """Drafts created in the period that a repeat contact sent to humans, per type."""
    # The partial index ix_reviews_repeat_contact holds only repeat-contact drafts; its predicate is
    # repeated verbatim so both databases can use it (SQLite's planner needs telling).
    hint = " INDEXED BY ix_reviews_repeat_contact" if session.get_bind().dialect.name == "sqlite" else ""
    type_filter = " AND interaction_type = :itype" if interaction_type else ""
    rq = text(
        f"SELECT interaction_type, count(*) FROM reviews{hint} WHERE {REPEAT_CONTACT} "
        f"AND created_at >= :since AND created_at < :until{type_filter} GROUP BY interaction_type"
    ).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
    params: dict[str, object] = {"since": since, "until": until, "itype": interaction_type}
    return {str(t): int(n) for t, n in session.execute(rq, params)}


def collect_signals(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    interaction_type: str | None = None,
    repeats: dict[str, int] | None = None,
) -> Signals:
    """Repeat contacts among drafts created in the period (`repeats` when the rollup summed them already);
    reviews escalated past their SLA in it; the unrated QA backlog."""
    r, s = columns(Review), columns(SlaPing)
    eq = (
        select(r.interaction_type, func.count(distinct(s.review_id)))
        .join(Review, r.id == s.review_id)
        .where(s.status == "fired", s.kind.like("%breach:%"), s.fired_at >= since, s.fired_at < until)
    )
    if interaction_type:
        eq = eq.where(r.interaction_type == interaction_type)
    if repeats is None:
        repeats = repeat_contacts(
            session=session, since=since, until=until, interaction_type=interaction_type
        )
    return Signals(
        repeat_contacts=repeats,
        sla_escalations={t: int(n) for t, n in session.execute(eq.group_by(r.interaction_type))},
        qa_backlog=_qa_backlog(session, since, until, interaction_type),
    )


def _qa_backlog(
    session: Session, since: datetime, until: datetime, interaction_type: str | None
) -> dict[str, int]:
    """Auto-sent replies of the period drawn for QA more than a day before `until` and not rated yet."""
    hint = " INDEXED BY ix_reviews_qa_sampled" if session.get_bind().dialect.name == "sqlite" else ""
    type_filter = " AND interaction_type = :itype" if interaction_type else ""
    q = text(
        f"SELECT interaction_type, count(*) FROM reviews{hint} WHERE {QA_SAMPLED} "
        f"AND created_at >= :since AND created_at < :stale{type_filter} AND NOT EXISTS "
        "(SELECT 1 FROM decisions d WHERE d.review_id = reviews.id AND d.stage = 'qa') GROUP BY interaction_type"
    ).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("stale", type_=UTCDateTime()))
    params: dict[str, object] = {"since": since, "stale": until - QA_BACKLOG_AGE, "itype": interaction_type}
    return {str(t): int(n) for t, n in session.execute(q, params)}


def recent_rows(*, session: Session, interaction_type: str, limit: int) -> list[WhatIfRow]:
    """The last `limit` review-stage decisions of a type (index ix_decisions_type_stage_decided)."""
    d = columns(Decision)
    q = (
        select(d.confidence, d.decision, d.edit_distance, d.reasons)
        .where(d.interaction_type == interaction_type, d.stage == "review")
        .order_by(d.decided_at.desc())
        .limit(limit)
    )
    rows = []
    for conf, kind, dist, reasons in session.execute(q):
        codes = {r.get("code") for r in reasons or [] if isinstance(r, dict)}
        rows.append(WhatIfRow(float(conf), kind, dist, bool(codes - CONFIDENCE_CODES)))
    return rows


def _replayed_thresholds(
    itype: str, rec: Recommendation, policy: Policy, thresholds: dict[str, float] | None
) -> tuple[float, float]:
    """(current, proposed) the what-if replays: the verdict's proposal, or the one asked for."""
    current, proposed = (
        (rec.current, rec.proposed) if rec.proposed is not None else proposal(itype, "expand", policy)
    )
    current = current if current is not None else thresholds_for(itype, policy)[0]
    if thresholds and itype in thresholds:
        proposed = thresholds[itype]
    return current, proposed


@dataclass(frozen=True)
class _Judge:
    """What every type's verdict is judged with: the policy, the periods before, a threshold asked for."""

    session: Session
    policy: Policy
    earlier: list[Stats]  # the periods before this one, most recent first
    period: timedelta
    thresholds: dict[str, float] | None
    customers: dict[str, CustomerOutcomes]

    @property
    def span(self) -> str:
        return span_label(self.period)

    def previous(self, itype: str) -> list[Counts]:
        return [s.by_type.get(itype, Counts()) for s in self.earlier]


def _with_customers(judge: _Judge, rec: Recommendation, c: Counts) -> Recommendation:
    lines = customer_lines(
        c, judge.customers.get(rec.interaction_type), judge.period, judge.policy.oversight, rec.whatif
    )
    return dataclasses.replace(rec, customer=lines)


def _recommendation(judge: _Judge, itype: str, c: Counts) -> Recommendation:
    """The verdict for one type with its customer lines."""
    return _with_customers(judge, _verdict(judge, itype, c), c)


def _verdict(judge: _Judge, itype: str, c: Counts) -> Recommendation:
    """The verdict for one type, judged again with a what-if replay when a threshold change is in view."""
    session, policy, thresholds = judge.session, judge.policy, judge.thresholds
    previous = judge.previous(itype)
    rec = recommend(itype, c, policy, previous=previous, span=judge.span)
    if itype in policy.human_only:
        return rec
    current, proposed = _replayed_thresholds(itype, rec, policy, thresholds)
    if proposed == current:
        return rec
    o = policy.oversight
    wi = what_if(
        itype,
        recent_rows(session=session, interaction_type=itype, limit=o.whatif_last),
        current=current,
        proposed=proposed,
        heavy_edit_distance=o.heavy_edit_distance,
    )
    rec = recommend(itype, c, policy, wi, previous, judge.span)
    return rec if rec.whatif is not None else dataclasses.replace(rec, whatif=wi)


def _no_data(policy: Policy, cur: Stats, interaction_type: str | None) -> list[str]:
    """Types the policy knows that had no drafts or decisions in the period."""
    known = list(policy.interaction_types) + [
        t for t in policy.human_only if t not in policy.interaction_types
    ]
    return [t for t in known if t not in cur.by_type and (interaction_type in (None, t))]


def _calibration(cur: Stats) -> dict[str, tuple[dict[int, Band], str]]:
    return {
        t: (bands, calibration_note(bands))
        for t, bands in sorted(cur.calibration.items())
        if sum(b.human for b in bands.values())
    }


@dataclass
class _Periods:
    """The periods a review reads, each summed once: from the stats rollup (`cached`) or by the exact
    queries over the whole period."""

    session: Session
    oversight: Oversight
    now: datetime
    interaction_type: str | None
    cached: bool
    windows: dict[tuple[datetime, datetime], Window] = dataclasses.field(default_factory=dict)

    def _window(self, since: datetime, until: datetime) -> Window:
        if (since, until) not in self.windows:
            self.windows[(since, until)] = window(
                self.session, since=since, until=until, now=self.now, oversight=self.oversight
            )
        return self.windows[(since, until)]

    def stats(self, since: datetime, until: datetime, calibration: bool) -> Stats:
        if not self.cached:
            return compute_stats(
                session=self.session,
                since=since,
                until=until,
                interaction_type=self.interaction_type,
                oversight=self.oversight,
                now=self.now,
                calibration=calibration,
            )
        w = self._window(since, until)
        return stats_of(
            self.session,
            w,
            interaction_type=self.interaction_type,
            oversight=self.oversight,
            now=self.now,
            calibration=calibration,
        )

    def outcomes(self, since: datetime, until: datetime) -> dict[str, CustomerOutcomes] | None:
        if not self.cached:
            return None
        sums = self._window(since, until).picked(self.interaction_type)
        return {t: outcome_counts(s.csat, s.reopened, s.resolved) for t, s in sums.items()}

    def repeats(self, since: datetime, until: datetime) -> dict[str, int] | None:
        if not self.cached:
            return None
        sums = self._window(since, until).picked(self.interaction_type)
        return {t: s.repeat_contacts for t, s in sums.items() if s.repeat_contacts}

    def signals(self, since: datetime, until: datetime) -> Signals:
        return collect_signals(
            session=self.session,
            since=since,
            until=until,
            interaction_type=self.interaction_type,
            repeats=self.repeats(since, until),
        )


def build_review(
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    period: timedelta,
    interaction_type: str | None = None,
    thresholds: dict[str, float] | None = None,
    cached: bool = False,
) -> OversightReview:
    """The oversight review of [now - period, now), compared with the period(s) before it.

    `cached` reads closed days and hours from the stats rollup: the same numbers, provided rows are
    written with the writer's clock (the service does; a test or an import writing into the past must
    not ask for it). The default runs the exact queries over every period."""
    o = policy.oversight
    since = now - period
    periods = _Periods(session, o, now, interaction_type, cached)
    cur = periods.stats(since, now, calibration=True)
    earlier = [
        periods.stats(since - (i + 1) * period, since - i * period, calibration=False)
        for i in range(max(1, o.sustained_periods - 1))
    ]
    prev = earlier[0]
    customers = customer_outcomes(
        session=session,
        types=list(cur.by_type),
        since=since,
        until=now,
        window=o.came_back_window,
        counted=periods.outcomes(since, now),
        now=now,
    )
    judge = _Judge(session, policy, earlier, period, thresholds, customers)
    cur_sig = periods.signals(since, now)
    prev_sig = periods.signals(since - period, since)
    recs = [_recommendation(judge, itype, c) for itype, c in cur.by_type.items() if c.decided or c.volume]
    recs.sort(key=lambda r: (VERDICT_ORDER[r.verdict], r.interaction_type))
    return OversightReview(
        since=since,
        until=now,
        stats=cur,
        previous=prev,
        recommendations=recs,
        warnings=warning_signs(cur, prev, cur_sig, prev_sig, o)
        + reviewer_signs(session=session, since=since, until=now, o=o),
        calibration=_calibration(cur),
        no_data=_no_data(policy, cur, interaction_type),
        customers=customers,
        overall=customer_lines(cur.total, _total(customers), period, o, None),
        sections=[
            ReviewSection(
                "Calibration",
                *calibration_store.review_summary(
                    session=session, until=now, interaction_type=interaction_type
                ),
            )
        ]
        + [
            ReviewSection(*s) for s in change_sections(session=session, policy=policy, now=now, period=period)
        ],
    )


def _total(customers: dict[str, CustomerOutcomes]) -> CustomerOutcomes:
    total = CustomerOutcomes()
    for co in customers.values():
        total.add(co)
    return total
