"""The review loop under test: the real service over HTTP, the Slack stand-in, and signed clicks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from bot.app.settings import BUNDLED_POLICY
from sandbox.slack_sim import SlackSim, block_action_payload, view_submission_payload
from sandbox.slack_standin import SlackStandin
from storage.db import session_scope
from storage.models import AuditEvent, Decision, OutboxItem, Review
from tests.conftest import SIGNING_SECRET, Service, sample_draft, wait_for

APPROVERS = "S0APPROVERS"
SUPERVISOR = "U0SUPER001"


def policy_with_people(tmp_path: Path, *, approvers: list[str], supervisors: list[str]) -> Path:
    """The bundled policy, with every tier's approvers/supervisors set (user groups S…, users U…)."""
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))

    def people(ids: list[str]) -> dict[str, list[str]]:
        return {
            "usergroups": [i for i in ids if i.startswith("S")],
            "users": [i for i in ids if not i.startswith("S")],
        }

    for tier in data["tiers"].values():
        tier["approvers"] = people(approvers)
        tier["supervisors"] = people(supervisors)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Loop:
    """One running service plus the stand-in, with the steps a reviewer takes."""

    def __init__(self, service: Service, standin: SlackStandin) -> None:
        self.svc = service
        self.standin = standin
        self.sim = SlackSim(service.url, SIGNING_SECRET)

    @property
    def runtime(self) -> Any:
        return self.svc.runtime

    def post_draft(self, **overrides: Any) -> str:
        resp = self.svc.api.post("/v1/drafts", json=sample_draft(**overrides))
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def review(self, review_id: str) -> Review:
        with session_scope(self.runtime.engine, readonly=True) as session:
            review = session.get(Review, review_id)
            assert review is not None
            return review

    def card(self, review_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The review's card as the stand-in holds it, once posted."""
        review = wait_for(
            lambda: (r := self.review(review_id)).slack_ts and r, timeout, "the card to be posted"
        )
        return self.standin.message(review.slack_channel, review.slack_ts)

    def click(
        self,
        message: dict[str, Any],
        action_id: str,
        user_id: str = "U0ALEX0001",
        user_name: str = "alex",
        *,
        modal: bool = False,
        sim: SlackSim | None = None,
    ) -> httpx.Response:
        trigger = self.standin.issue_trigger_id() if modal else None
        payload = block_action_payload(
            message=message,
            channel=message["channel"],
            action_id=action_id,
            user_id=user_id,
            user_name=user_name,
            trigger_id=trigger,
        )
        return (sim or self.sim).post_action(payload)

    def submit(
        self, view: dict[str, Any], values: dict[str, Any], user_id: str = "U0ALEX0001"
    ) -> httpx.Response:
        return self.sim.post_view_submission(
            view_submission_payload(view=view, user_id=user_id, values=values)
        )

    def decided(self, review_id: str, timeout: float = 10.0) -> Review:
        """Wait for the review to be decided (clicks are acked first, recorded right after), then for delivery."""
        review = wait_for(
            lambda: (r := self.review(review_id)).status != "pending" and r, timeout, "a decision"
        )
        self.settled()
        return review  # type: ignore[no-any-return]

    def ephemerals(self, user: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait for `n` ephemeral messages to `user`."""
        return wait_for(
            lambda: len(e := self.standin.ephemerals(user)) >= n and e,
            timeout,  # type: ignore[no-any-return]
            f"{n} ephemeral(s) for {user}",
        )

    def settled(self, timeout: float = 30.0) -> None:
        """Wait until the outbox has nothing due (Slack updates, thread replies, ephemerals sent).

        Posts to one channel are paced at about 1/s as Slack paces them, so a loaded CI machine needs room."""
        assert self.runtime.services.outbox.drain(timeout), "outbox did not drain"

    def count(self, model: Any, *where: Any) -> int:
        with session_scope(self.runtime.engine, readonly=True) as session:
            return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())

    def decisions(self, review_id: str) -> int:
        return self.count(Decision, Decision.review_id == review_id)

    def outbox(self, kind: str, review_id: str | None = None) -> list[OutboxItem]:
        with session_scope(self.runtime.engine, readonly=True) as session:
            rows = session.execute(select(OutboxItem).where(OutboxItem.kind == kind)).scalars().all()
        return [r for r in rows if review_id is None or r.payload.get("review_id") == review_id]

    def audits(self, action: str, review_id: str | None = None) -> list[AuditEvent]:
        with session_scope(self.runtime.engine, readonly=True) as session:
            q = select(AuditEvent).where(AuditEvent.action == action)
            if review_id:
                q = q.where(AuditEvent.review_id == review_id)
            return list(session.execute(q).scalars().all())


@pytest.fixture
def make_loop(
    make_settings: Callable[..., Any],
    slack_standin: SlackStandin,
    start_service: Callable[..., Service],
    sqlite_url: str,
) -> Iterator[Callable[..., Loop]]:
    """Start the service against the stand-in: `make_loop(**env)` (SQLite unless HITL_DATABASE_URL is given)."""
    loops: list[Loop] = []

    def build(**env: Any) -> Loop:
        env.setdefault("HITL_DATABASE_URL", sqlite_url)
        settings = make_settings(SLACK_API_URL=slack_standin.base_url, HITL_OPS_CHANNEL="#ops", **env)
        loop = Loop(start_service(settings), slack_standin)
        loops.append(loop)
        return loop

    yield build
    for loop in loops:
        loop.sim.close()


@pytest.fixture
def loop(make_loop: Callable[..., Loop]) -> Loop:
    return make_loop()
