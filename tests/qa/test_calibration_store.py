"""Calibration sessions in the store, on SQLite and PostgreSQL: which reviews a session shows, one vote per
person per review (a revote replaces it), closing once, and the agreement read back from the votes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from bot.qa import calibration_store as store
from bot.qa.calibration import Agreement, Verdict
from bot.reporting.feedback import export
from storage.db import make_engine, session_scope
from storage.models import AuditEvent, CalibrationVote
from tests.reporting.factory import NOW, Store

G, D = Verdict.GOOD, Verdict.DEFECT


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _history(session: Session) -> dict[str, str]:
    """Six decided order_status reviews, oldest first, plus one unrated auto-send and one refund."""
    s = Store(session)
    made = {
        "approve": s.decided("order_status", "approve", at=NOW - timedelta(hours=6)),
        "light_edit": s.decided("order_status", "edit", edit_distance=0.1, at=NOW - timedelta(hours=5)),
        "heavy_edit": s.decided("order_status", "edit", edit_distance=0.6, at=NOW - timedelta(hours=4)),
        "reject": s.decided("order_status", "reject", defect="hallucination", at=NOW - timedelta(hours=3)),
        "unrated_auto": s.decided("order_status", "auto_send", at=NOW - timedelta(hours=2)),
        "refund": s.decided("refund", "approve", at=NOW - timedelta(minutes=90)),
    }
    rated = s.decided("order_status", "auto_send", at=NOW - timedelta(hours=1))
    s.decide(rated, "qa_defect", stage="qa", defect="tone_mismatch", at=NOW - timedelta(minutes=30))
    made["qa_defect"] = rated
    # An approved reply QA rated afterwards (QA of human decisions): shown once, as the approval it was.
    s.decide(made["approve"], "qa_defect", stage="qa", defect="other", at=NOW - timedelta(minutes=10))
    return {k: r.id for k, r in made.items()}


def _start(engine: Engine, n: int, itype: str | None = "order_status") -> tuple[int, dict[str, str]]:
    with session_scope(engine) as session:
        ids = _history(session)
        cal, _ = store.create_session(
            session=session,
            created_by="U0SUPER",
            channel="C0CAL",
            interaction_type=itype,
            n=n,
            heavy_edit_distance=0.3,
            now=NOW,
        )
        return cal.id or 0, ids


def test_a_session_shows_the_latest_decided_reviews_of_its_type_with_their_original_verdicts(
    engine: Engine,
) -> None:
    sid, ids = _start(engine, n=4)
    with session_scope(engine, readonly=True) as session:
        items = store.items_of(session=session, session_id=sid)
        cal = store.get_session(session=session, session_id=sid)
    assert cal is not None and cal.n == 4 and cal.closed_at is None
    # Newest decision first; the unrated auto-send (no verdict) and the refund (another type) are left out.
    assert [(i.position, i.review_id) for i in items] == [
        (1, ids["qa_defect"]),
        (2, ids["reject"]),
        (3, ids["heavy_edit"]),
        (4, ids["light_edit"]),
    ]
    assert [(i.original_decision, i.original_verdict, i.original_category) for i in items] == [
        ("qa_defect", "defect", "tone_mismatch"),
        ("reject", "defect", "hallucination"),
        ("edit", "defect", None),
        ("edit", "good", None),
    ]


def test_asking_for_more_than_there_are_shows_what_there_is_and_none_is_a_clear_problem(
    engine: Engine,
) -> None:
    sid, _ = _start(engine, n=25, itype=None)
    with session_scope(engine, readonly=True) as session:
        assert len(store.items_of(session=session, session_id=sid)) == 6  # 5 order_status + the refund
    with (
        session_scope(engine) as session,
        pytest.raises(store.CalibrationProblem, match="no decided `privacy`"),
    ):
        store.create_session(
            session=session,
            created_by="U0SUPER",
            channel="C0CAL",
            interaction_type="privacy",
            n=5,
            heavy_edit_distance=0.3,
            now=NOW,
        )


def _vote(
    engine: Engine, sid: int, review_id: str, voter: str, verdict: Verdict, category: str | None = None
) -> store.VoteResult:
    with session_scope(engine) as session:
        return store.record_vote(
            session=session,
            session_id=sid,
            review_id=review_id,
            voter=voter,
            voter_name=voter.lower(),
            verdict=verdict,
            category=category,
            now=NOW,
        )


def test_a_second_vote_by_the_same_person_replaces_the_first_and_is_audited(engine: Engine) -> None:
    sid, ids = _start(engine, n=4)
    first = _vote(engine, sid, ids["reject"], "U0ANA", G)
    assert first.first and first.voters == 1 and first.changed_from is None
    again = _vote(engine, sid, ids["reject"], "U0ANA", D, "hallucination")
    assert not again.first and again.changed_from == "good" and again.voters == 1
    other = _vote(engine, sid, ids["reject"], "U0BEN", D, "other")
    assert other.voters == 2
    with session_scope(engine, readonly=True) as session:
        rows = store.votes_of(session=session, session_id=sid, review_id=ids["reject"])
        audits = (
            session.execute(
                select(AuditEvent.action)
                .where(col(AuditEvent.action).like("calibration_vote%"))
                .order_by(col(AuditEvent.id))
            )
            .scalars()
            .all()
        )
    assert [(v.voter, v.verdict, v.category, v.changes) for v in rows] == [
        ("U0ANA", "defect", "hallucination", 1),
        ("U0BEN", "defect", "other", 0),
    ]
    assert audits == ["calibration_vote", "calibration_vote_changed", "calibration_vote"]


def test_a_defect_vote_needs_a_known_category(engine: Engine) -> None:
    sid, ids = _start(engine, n=4)
    for category in (None, "rude"):
        with pytest.raises(store.CalibrationProblem, match="what kind of defect"):
            _vote(engine, sid, ids["reject"], "U0ANA", D, category)
    with session_scope(engine, readonly=True) as session:
        assert session.execute(select(CalibrationVote)).first() is None


def test_two_voters_give_cohen_kappa_and_the_session_closes_once(engine: Engine) -> None:
    sid, ids = _start(engine, n=4)
    # Originals: qa_defect D, reject D, heavy_edit D, light_edit G.
    # Ana: D D D G (all four match the originals); Ben: D G D G (3 of 4).
    # Ana and Ben agree on 3 of 4: p_o = .75. Ana defect 3/4, Ben defect 2/4:
    # p_e = .75·.5 + .25·.5 = .5 -> κ = (.75 - .5) / (1 - .5) = 0.5
    # SE = √(.75·.25 / (4·.25)) = √.1875 = .4330; 1.96·SE = .8487 -> [-0.3487, 1.0] (clipped at 1)
    for key, ana, ben in (
        ("qa_defect", D, D),
        ("reject", D, G),
        ("heavy_edit", D, D),
        ("light_edit", G, G),
    ):
        _vote(engine, sid, ids[key], "U0ANA", ana, "other" if ana == D else None)
        _vote(engine, sid, ids[key], "U0BEN", ben, "other" if ben == D else None)
    with session_scope(engine) as session:
        assert store.close_session(session=session, session_id=sid, closed_by="U0SUPER", now=NOW)
    with session_scope(engine) as session:
        assert not store.close_session(session=session, session_id=sid, closed_by="U0OTHER", now=NOW)
        result = store.session_agreement(session=session, session_id=sid)
        cal = store.get_session(session=session, session_id=sid)
    assert cal is not None and cal.closed_by == "U0SUPER"
    check_cohen(result)
    check_summary(engine, sid)


def check_cohen(result: Agreement) -> None:
    kappa = result.between
    assert kappa is not None and kappa.method == "cohen" and kappa.items == 4
    assert kappa.value == pytest.approx(0.5)
    assert kappa.low == pytest.approx(-0.3487, abs=1e-4) and kappa.high == 1.0
    assert (result.with_original["U0ANA"].k, result.with_original["U0ANA"].n) == (4, 4)
    assert (result.with_original["U0BEN"].k, result.with_original["U0BEN"].n) == (3, 4)
    assert (result.overall.k, result.overall.n) == (7, 8)


def check_summary(engine: Engine, sid: int) -> None:
    with session_scope(engine, readonly=True) as session:
        lines, per_type = store.review_summary(session=session, until=NOW)
    assert len(lines) == 1 and f"calibration #{sid} (order_status, closed" in lines[0]
    assert "Cohen's kappa 0.50 (moderate; 2 reviewers, 4 reviews both rated" in lines[0]
    assert "with the original decisions 88% (7 of 8;" in lines[0]
    assert list(per_type) == ["order_status"]


def test_the_review_says_when_no_session_was_closed_yet(engine: Engine) -> None:
    _start(engine, n=2)  # open, not closed
    with session_scope(engine, readonly=True) as session:
        lines, per_type = store.review_summary(session=session, until=NOW)
    assert lines == ("No calibration session closed yet: `/hitl calibrate [type] [n]` starts one.",)
    assert per_type == {}


def test_the_feedback_export_carries_every_vote_beside_the_original_decision(engine: Engine) -> None:
    sid, ids = _start(engine, n=4)
    _vote(engine, sid, ids["reject"], "U0ANA", G)
    _vote(engine, sid, ids["reject"], "U0ANA", D, "hallucination")  # replaces the first
    _vote(engine, sid, ids["light_edit"], "U0BEN", G)
    out = io.StringIO()
    with session_scope(engine, readonly=True) as session:
        count = export(session=session, fmt="jsonl", out=out, interaction_type="order_status")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    votes = [r for r in rows if r["stage"] == "calibration"]
    assert count == len(rows) and len(rows) - len(votes) == 8  # the order_status decision rows come first
    assert [
        (
            v["review_id"],
            v["actor_id"],
            v["verdict"],
            v["defect_category"],
            v["changes"],
            v["original_verdict"],
        )
        for v in votes
    ] == [
        (ids["reject"], "U0ANA", "defect", "hallucination", 1, "defect"),
        (ids["light_edit"], "U0BEN", "good", None, 0, "good"),
    ]
    assert {v["session_id"] for v in votes} == {sid}
