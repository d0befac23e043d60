"""What-if replays: what a different auto-send threshold would have done to a type's recent decisions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bot.reporting.stats.model import HUMAN_KINDS
from storage.models import DecisionKind

OUTCOME = {"approve": "approved", "edit": "edited", "reject": "rejected", "take_over": "taken_over"}


@dataclass(frozen=True)
class WhatIfRow:
    """One recent decision of a type, as the what-if replays it."""

    confidence: float
    decision: str
    edit_distance: float | None = None
    triggered: bool = (
        False  # a trigger (keyword, VIP, repeat contact...) sent it to humans whatever the confidence
    )


@dataclass(frozen=True)
class WhatIf:
    """What an auto-send threshold would have done to the last N decisions of a type."""

    interaction_type: str
    current: float
    proposed: float
    considered: int
    would_auto_send: int = 0  # by confidence alone, at or above the proposed threshold
    newly_auto_sent: int = 0  # ...of which a human actually decided
    approved: int = 0
    edited: int = 0
    heavily_edited: int = 0
    rejected: int = 0
    taken_over: int = 0
    to_humans: int = 0  # auto-sent replies that a higher threshold would have sent to a human

    @property
    def errors(self) -> int:
        return self.rejected + self.heavily_edited

    @property
    def error_share(self) -> float | None:
        return self.errors / self.newly_auto_sent if self.newly_auto_sent else None

    def sentence(self) -> str:
        """One line a manager can read."""
        if self.considered == 0:
            kind = "auto-sent replies" if self.proposed > self.current else "human decisions"
            return f"no recent {kind} of this type to replay against {self.proposed:.2f}"
        if self.proposed < self.current:
            return self._lowered()
        if self.proposed > self.current:
            return (
                f"at {self.proposed:.2f} instead of {self.current:.2f}, {self.to_humans} of the last "
                f"{self.considered} auto-sent replies would have gone to a human first"
            )
        return f"at {self.proposed:.2f} (unchanged), {self.would_auto_send} of the last {self.considered} auto-sent"

    def _lowered(self) -> str:
        if self.newly_auto_sent == 0:
            return (
                f"at {self.proposed:.2f} instead of {self.current:.2f}, none of the last {self.considered} "
                "decisions would have been auto-sent in addition"
            )
        return (
            f"at {self.proposed:.2f} instead of {self.current:.2f}, {self.newly_auto_sent} of the last "
            f"{self.considered} human-decided drafts would have been auto-sent; humans had edited "
            f"{self.edited} of them ({self.heavily_edited} heavily), rejected {self.rejected} and taken over "
            f"{self.taken_over}"
        )


def _replay(r: WhatIfRow, proposed: float, heavy_edit_distance: float, counts: Counter[str]) -> None:
    """Count what `proposed` would have done with one decision."""
    if r.decision == DecisionKind.AUTO_SEND:
        counts["to_humans" if r.confidence < proposed else "would_auto_send"] += 1
        return
    if r.triggered or r.confidence < proposed or r.decision not in HUMAN_KINDS:
        return
    counts["would_auto_send"] += 1
    counts["newly_auto_sent"] += 1
    counts[OUTCOME[r.decision]] += 1
    if r.decision == DecisionKind.EDIT and (
        r.edit_distance is None or r.edit_distance >= heavy_edit_distance
    ):
        counts["heavily_edited"] += 1


def what_if(
    interaction_type: str,
    rows: list[WhatIfRow],
    *,
    current: float,
    proposed: float,
    heavy_edit_distance: float,
) -> WhatIf:
    """Replay recent decisions against `proposed`: lower it to see what more auto-sending would have
    sent unseen, raise it to see how many auto-sent replies humans would have checked first."""
    counts: Counter[str] = Counter()
    for r in rows:
        _replay(r, proposed, heavy_edit_distance, counts)
    raising = proposed > current
    considered = sum(1 for r in rows if (r.decision == DecisionKind.AUTO_SEND) == raising)
    return WhatIf(
        interaction_type=interaction_type, current=current, proposed=proposed, considered=considered, **counts
    )
