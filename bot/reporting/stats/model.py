"""What `/hitl stats` reports, as typed values: `Counts` per interaction type, `Band` per confidence band, `Stats`.

Pure data and the period words (`7d`, `24h`); `bot.reporting.stats.query` fills these from the database.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from bot.common.durations import parse_duration
from storage.models import DecisionKind

HUMAN_KINDS = (DecisionKind.APPROVE, DecisionKind.EDIT, DecisionKind.TAKE_OVER, DecisionKind.REJECT)
BAND_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
ROUTES = ("auto_send", "review", "take_over")
MAX_PERIOD = timedelta(days=731)
# Time-to-first-reply buckets (seconds, upper edges): percentiles are read as "≤ edge" from these counts.
REPLY_EDGES = (10, 60, 120, 300, 900, 1800, 3600, 14400, 86400)
_PERIOD = re.compile(r"^\d+[hdw]$")


class BadPeriod(ValueError):
    """A period the user wrote that is not like 24h, 7d, 4w or 30d."""


def parse_period(text: str) -> timedelta:
    """`24h`, `7d`, `4w`, `30d` as a timedelta (1 hour to 2 years)."""
    cleaned = text.strip().lower()
    if not _PERIOD.match(cleaned):
        raise BadPeriod(f"{text!r} is not a period; write it like 24h, 7d, 4w or 30d")
    delta = parse_duration(cleaned)
    if delta < timedelta(hours=1) or delta > MAX_PERIOD:
        raise BadPeriod(f"{text!r}: a period is from 1h to {MAX_PERIOD.days}d")
    return delta


def is_period(word: str) -> bool:
    return bool(_PERIOD.match(word.strip().lower()))


def band_label(index: int) -> str:
    """Human label of confidence band `index` (0 = below the first edge)."""
    if index == 0:
        return f"<{BAND_EDGES[0]:.2f}"
    if index >= len(BAND_EDGES):
        return f"≥{BAND_EDGES[-1]:.2f}"
    return f"{BAND_EDGES[index - 1]:.2f}–{BAND_EDGES[index]:.2f}"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Counts:
    """Decision and volume counts of one interaction type (or of all of them) in a period."""

    volume: int = 0
    routed: Counter[str] = field(default_factory=Counter)
    approve: int = 0
    edit: int = 0
    take_over: int = 0
    reject: int = 0
    auto_send: int = 0
    heavy_edits: int = 0
    sla_met: int = 0
    sla_breached: int = 0
    qa_good: int = 0
    qa_defect: int = 0
    qa_severe: int = 0
    # QA ratings of human-approved or edited replies (issue 12: the reviewers' own defect rate)
    qa_human_good: int = 0
    qa_human_defect: int = 0
    severe_defects: int = 0
    take_over_on_review: int = 0
    defects: Counter[str] = field(default_factory=Counter)
    # Oversight review only: replies sent within each REPLY_EDGES bucket (cumulative), and reviewer time.
    reply_auto: list[int] = field(default_factory=lambda: [0] * len(REPLY_EDGES))
    reply_reviewed: list[int] = field(default_factory=lambda: [0] * len(REPLY_EDGES))
    reviewer_seconds: int = 0  # each human decision's time, capped at policy.oversight.review_time_cap

    @property
    def human(self) -> int:
        """Drafts a human decided (approve, edit, take over, reject)."""
        return self.approve + self.edit + self.take_over + self.reject

    @property
    def judged(self) -> int:
        """Drafts a human judged as a reply (taking over judges the ticket, not the draft)."""
        return self.approve + self.edit + self.reject

    @property
    def decided(self) -> int:
        return self.human + self.auto_send

    @property
    def qa_rated(self) -> int:
        return self.qa_good + self.qa_defect

    @property
    def qa_human_rated(self) -> int:
        return self.qa_human_good + self.qa_human_defect

    @property
    def errors(self) -> int:
        """AI errors a human caught: rejects plus heavy edits."""
        return self.reject + self.heavy_edits

    @property
    def approve_rate(self) -> float | None:
        return _rate(self.approve, self.human)

    @property
    def edit_rate(self) -> float | None:
        return _rate(self.edit, self.human)

    @property
    def take_over_rate(self) -> float | None:
        return _rate(self.take_over, self.human)

    @property
    def reject_rate(self) -> float | None:
        return _rate(self.reject, self.human)

    @property
    def error_rate(self) -> float | None:
        return _rate(self.errors, self.judged)

    @property
    def qa_pass_rate(self) -> float | None:
        return _rate(self.qa_good, self.qa_rated)

    @property
    def sla_breach_rate(self) -> float | None:
        return _rate(self.sla_breached, self.sla_met + self.sla_breached)

    def add(self, other: Counts) -> None:
        """Fold `other` into these counts: every field summed (ints, Counters, cumulative bucket lists)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                setattr(self, f.name, [a + b for a, b in zip(mine, theirs, strict=True)])
            else:
                setattr(self, f.name, mine + theirs)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["routed"] = dict(self.routed)
        d["defects"] = dict(self.defects.most_common())
        for name in (
            "human",
            "judged",
            "decided",
            "qa_rated",
            "errors",
            "approve_rate",
            "edit_rate",
            "take_over_rate",
            "reject_rate",
            "error_rate",
            "qa_pass_rate",
            "sla_breach_rate",
        ):
            d[name] = getattr(self, name)
        return d


@dataclass
class Band:
    """Decisions of one confidence band: how often humans approved the draft as it was."""

    index: int
    human: int = 0
    approve: int = 0
    errors: int = 0
    auto_send: int = 0

    @property
    def label(self) -> str:
        return band_label(self.index)

    @property
    def approve_rate(self) -> float | None:
        return _rate(self.approve, self.human)


@dataclass
class Stats:
    """Everything `/hitl stats` shows for one period (and optionally one interaction type)."""

    since: datetime
    until: datetime
    interaction_type: str | None
    total: Counts
    by_type: dict[str, Counts]
    volume: dict[tuple[str, str], int]
    median_seconds: float | None
    p90_seconds: float | None
    pending: int
    pending_overdue: int
    pending_by_type: dict[str, tuple[int, int]]
    calibration: dict[str, dict[int, Band]]

    @property
    def period(self) -> timedelta:
        return self.until - self.since

    def top_defects(self, n: int = 5) -> list[tuple[str, int]]:
        return self.total.defects.most_common(n)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `hitl stats --json`."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "interaction_type": self.interaction_type,
            "total": self.total.as_dict(),
            "by_type": {k: v.as_dict() for k, v in self.by_type.items()},
            "volume_by_route_tier": [
                {"route": r, "tier": t, "count": n} for (r, t), n in sorted(self.volume.items())
            ],
            "time_to_decision_seconds": {"median": self.median_seconds, "p90": self.p90_seconds},
            "pending": self.pending,
            "pending_overdue": self.pending_overdue,
            "top_defects": dict(self.top_defects()),
            "calibration": {
                t: [
                    {
                        "band": b.label,
                        "human": b.human,
                        "approve": b.approve,
                        "approve_rate": b.approve_rate,
                        "auto_send": b.auto_send,
                    }
                    for _, b in sorted(bands.items())
                ]
                for t, bands in self.calibration.items()
            },
        }
