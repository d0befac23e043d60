"""A small, known feedback store written straight to the database, for exact stats assertions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from storage.models import Decision, Review, SlaPing

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)
TIERS = {"order_status": "standard", "refund": "billing"}
STATUS = {
    "approve": "approved",
    "edit": "edited",
    "take_over": "taken_over",
    "reject": "rejected",
    "auto_send": "auto_sent",
}


class Store:
    """Adds reviews and decisions with sensible defaults; every time is relative to NOW."""

    def __init__(self, session: Session, now: datetime = NOW) -> None:
        self.session = session
        self.now = now
        self.n = 0

    def review(
        self,
        itype: str = "order_status",
        *,
        route: str = "review",
        confidence: float = 0.8,
        created: datetime | None = None,
        status: str = "pending",
        sla_due_at: datetime | None = None,
        reasons: list[str] | None = None,
        tier: str | None = None,
        customer: str | None = None,
    ) -> Review:
        self.n += 1
        created = created or self.now - timedelta(days=1, minutes=self.n)
        codes = ["confidence_medium", *(reasons or [])]
        review = Review(
            id=uuid.uuid4().hex,
            idempotency_key=f"k{self.n}-{uuid.uuid4().hex[:6]}",
            ticket_id=str(1000 + self.n),
            interaction_type=itype,
            confidence=confidence,
            customer_message="Where is my order?",
            draft="It ships today.",
            route=route,
            tier=tier or TIERS.get(itype, "standard"),
            reasons=[{"code": c, "message": c} for c in codes],
            status=status,
            created_at=created,
            sla_due_at=sla_due_at if sla_due_at is not None else created + timedelta(minutes=30),
            customer_key=f"id:{customer}" if customer else None,
        )
        self.session.add(review)
        self.session.flush()
        return review

    def decide(
        self,
        review: Review,
        kind: str,
        *,
        seconds: float | None = 60.0,
        edit_distance: float | None = None,
        breached: bool | None = None,
        defect: str | None = None,
        stage: str = "review",
        at: datetime | None = None,
    ) -> Decision:
        decided = at or review.created_at + timedelta(seconds=seconds or 0)
        if stage == "review":
            review.status = STATUS[kind]
            review.decision = kind
            review.decided_at = decided
        row = Decision(
            review_id=review.id,
            stage=stage,
            ticket_id=review.ticket_id,
            interaction_type=review.interaction_type,
            confidence=review.confidence,
            route=review.route,
            tier=review.tier,
            reasons=review.reasons,
            customer_message=review.customer_message,
            ai_draft=review.draft,
            final_text=review.draft,
            decision=kind,
            actor_id="U1",
            decided_at=decided,
            seconds_to_decision=None if stage == "qa" else (0.0 if kind == "auto_send" else seconds),
            edit_distance=edit_distance if edit_distance is not None else (0.0 if kind != "edit" else None),
            sla_breached=None if kind == "auto_send" or stage == "qa" else bool(breached),
            defect_category=defect,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def decided(self, itype: str, kind: str, **kw: Any) -> Review:
        """A review and its decision in one call (route follows the kind unless given)."""
        review_kw = {
            k: kw.pop(k) for k in ("route", "confidence", "created", "reasons", "tier", "customer") if k in kw
        }
        review_kw.setdefault("route", "auto_send" if kind == "auto_send" else "review")
        review = self.review(itype, **review_kw)
        self.decide(review, kind, **kw)
        return review

    def ping(self, review: Review, kind: str, at: datetime, status: str = "fired") -> None:
        self.session.add(SlaPing(review_id=review.id, kind=kind, due_at=at, status=status, fired_at=at))
        self.session.flush()


def known_week(store: Store) -> None:
    """The dataset the exact assertions in test_stats.py are worked out from (see there)."""
    s, now = store, store.now
    s.decided("order_status", "approve", seconds=60, breached=False, confidence=0.80)
    s.decided("order_status", "approve", seconds=120, breached=False, confidence=0.85)
    s.decided("order_status", "edit", seconds=300, breached=False, edit_distance=0.1, confidence=0.70)
    s.decided(
        "order_status",
        "edit",
        seconds=600,
        breached=True,
        edit_distance=0.5,
        confidence=0.65,
        defect="tone_mismatch",
    )
    s.decided("order_status", "reject", seconds=900, breached=True, defect="hallucination", confidence=0.62)
    s.decided("order_status", "take_over", seconds=1200, breached=False, confidence=0.75)
    auto1 = s.decided("order_status", "auto_send", seconds=None, confidence=0.95)
    s.decide(auto1, "qa_good", stage="qa", at=auto1.created_at + timedelta(hours=1))
    auto2 = s.decided("order_status", "auto_send", seconds=None, confidence=0.97)
    s.decide(auto2, "qa_defect", stage="qa", defect="hallucination", at=auto2.created_at + timedelta(hours=1))
    s.decided("refund", "approve", seconds=30, breached=False, confidence=0.90)
    s.decided("refund", "take_over", seconds=1500, breached=True, route="take_over", confidence=0.50)
    s.review("refund", sla_due_at=now - timedelta(minutes=5))  # pending, past its SLA
    s.review("refund", sla_due_at=now + timedelta(minutes=20))  # pending, on time
    # Outside the week: must not count.
    old = now - timedelta(days=10)
    s.decided("order_status", "reject", seconds=100, breached=True, created=old, defect="other")
