"""Audit policy changes: at start-up, compare the loaded policy with the last one recorded.

The last policy seen lives in `SchedulerState("policy")` (its hash, file and content). A replica
that loads a different policy records it with a compare-and-set on `updated_at` and writes one
`policy_changed` audit row with a summary of what changed, so a change is audited once however
many replicas start with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from bot.app.runtime import Runtime
from bot.reporting.stats.query import columns
from bot.review.policy import Policy
from storage import repo
from storage.db import session_scope
from storage.models import SchedulerState

log = logging.getLogger("hitl.policy")

KEY = "policy"
MAX_CHANGES = 40


def install(runtime: Runtime) -> None:
    """Record the policy when the service starts."""
    runtime.add_worker("policy-audit", lambda: _safely_record(runtime), lambda: None)


def _safely_record(runtime: Runtime) -> None:
    try:
        record_policy(runtime)
    except Exception:  # auditing must never keep the service from starting
        log.exception("could not record the policy in the audit log")


def policy_data(policy: Policy) -> dict[str, Any]:
    return json.loads(policy.model_dump_json())  # type: ignore[no-any-return]


def policy_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def _list_change(key: str, old: list[Any], new: list[Any]) -> str:
    """`key: +["x"], -["y"]`, or `reordered` when only the order changed."""
    plus = [x for x in new if x not in old]
    minus = [x for x in old if x not in new]
    parts = ([f"+{_short(plus)}"] if plus else []) + ([f"-{_short(minus)}"] if minus else [])
    return f"{key}: " + ", ".join(parts or ["reordered"])


def _change(key: str, a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The line for one flattened setting, None when it did not change."""
    if key not in a:
        return f"{key}: added {_short(b[key])}"
    if key not in b:
        return f"{key}: removed (was {_short(a[key])})"
    if a[key] == b[key]:
        return None
    if isinstance(a[key], list) and isinstance(b[key], list):
        return _list_change(key, a[key], b[key])
    return f"{key}: {_short(a[key])} → {_short(b[key])}"


def diff_summary(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per changed setting: `interaction_types.refund.auto_send_at: 0.95 → 0.9`."""
    a, b = _flatten(old), _flatten(new)
    lines = [line for key in sorted(a.keys() | b.keys()) if (line := _change(key, a, b)) is not None]
    if len(lines) > MAX_CHANGES:
        lines = lines[:MAX_CHANGES] + [f"… and {len(lines) - MAX_CHANGES} more"]
    return lines


def record_policy(runtime: Runtime, *, now: datetime | None = None) -> bool:
    """Audit `policy_changed` if the loaded policy differs from the last recorded one; True if this call did."""
    now = now or runtime.clock.now()
    data = policy_data(runtime.policy)
    digest = policy_hash(data)
    path = str(runtime.settings.policy_file)
    value = {"hash": digest, "path": path, "policy": data, "recorded_by": runtime.instance_id}
    try:
        with session_scope(runtime.engine) as session:
            row = session.get(SchedulerState, KEY)
            if row is not None and row.value.get("hash") == digest:
                return False
            if row is None:
                session.add(SchedulerState(key=KEY, value=value, updated_at=now))
                session.flush()  # two replicas racing: the second fails on the primary key
                previous, changes = None, ["first policy recorded"]
            else:
                # Compare-and-set: only the replica whose update still sees the old row audits the change.
                state = columns(SchedulerState)
                stamp = max(now, row.updated_at + timedelta(microseconds=1))
                done = session.execute(
                    update(SchedulerState)
                    .where(state.key == KEY, state.updated_at == row.updated_at)
                    .values(value=value, updated_at=stamp)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    return False
                previous = row.value.get("hash")
                changes = diff_summary(row.value.get("policy") or {}, data)
                if row.value.get("path") != path:
                    changes.insert(0, f"file: {row.value.get('path')} → {path}")
            repo.audit(
                session=session,
                at=now,
                actor="policy-file",
                action="policy_changed",
                path=path,
                hash=digest,
                previous_hash=previous,
                changes=changes,
                instance=runtime.instance_id,
            )
    except IntegrityError:
        return False
    log.info("policy %s recorded (%s): %s", digest[:12], path, "; ".join(changes[:5]))
    return True
