"""One Web API call for the outbox: paced to Slack's limits, answers mapped to Defer / Retry / Permanent.

- Pacing first: every call takes a slot of its method's tier (per resolved channel id for
  `chat.postMessage`), from the budget replicas share (`bot.slack.pacing`). A slot a moment away is
  waited for here; a farther one, or a 429's Retry-After, defers the row (`Defer`: no attempt counted).
- Channel names (`#support-review`) are resolved once to ids (`conversations.list`, or the first
  post's answer) and cached in the process and the database, so a post by name and a thread reply
  by id share one budget.
- No answer at all (timeout, reset) raises `NoAnswer`: the write may have happened; callers that
  create messages look before they post again.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import select
from sqlmodel import col

from bot.app.runtime import Runtime
from bot.outbox.registry import Defer, Permanent, Retry
from bot.slack.pacing import Pace, SlackPacer
from storage.db import session_scope
from storage.models import SchedulerState

log = logging.getLogger("hitl.slack")

# Errors retrying cannot fix: dead-letter the row (and announce it in the ops channel).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_not_in_channel",
        "users_list_not_supplied",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "restricted_action",
        "team_access_not_granted",
    }
)

# Slack's tiers (docs.slack.dev/apis/web-api/rate-limits): per method and workspace, short bursts allowed.
TIER2 = Pace(per_second=20 / 60, burst=3)
TIER3 = Pace(per_second=50 / 60, burst=5)
TIER4 = Pace(per_second=100 / 60, burst=10)
METHOD_PACE: dict[str, Pace] = {
    "chat_update": TIER3,
    "chat_postEphemeral": TIER4,
    "chat_getPermalink": TIER4,
    "conversations_open": TIER3,
    "conversations_history": TIER3,
    "conversations_replies": TIER3,
    "conversations_list": TIER2,
    "users_info": TIER4,
    "users_lookupByEmail": TIER3,
    "usergroups_users_list": TIER2,
    "views_publish": TIER4,
}
# A slot this close is waited for in place; a farther one defers the row so the worker moves on.
MAX_SLEEP = 3.0
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
CHANNEL_STATE = "slack_channel:"
LIST_BACKOFF = 60.0


class NoAnswer(Retry):
    """The request may have reached Slack, but no answer came back: its outcome is unknown."""


def post_pace(runtime: Runtime) -> Pace:
    """chat.postMessage's allowance per channel (about 1 a second; HITL_SLACK_POST_PER_SECOND).

    A burst of 2, under the 3 Slack tolerates: the spare token absorbs the jitter between our clock
    and Slack's, so a steady drain at the full rate does not run into 429s.
    """
    return Pace(per_second=runtime.settings.slack_post_per_second, burst=2)


def pace_for(runtime: Runtime, method: str, channel: str | None) -> tuple[str, Pace]:
    """The pacing key and allowance of one call: per channel id for posts, per method otherwise."""
    if method == "chat_postMessage":
        return f"chat.postMessage:{channel_id(runtime, channel) if channel else '-'}", post_pace(runtime)
    return method.replace("_", ".", 1), METHOD_PACE.get(method, TIER3)


def _pacer(runtime: Runtime) -> SlackPacer:
    pacer = runtime.services.slack_gate
    if pacer is None or runtime.services.slack_outbox is None:
        raise Retry("the Slack client is not installed in this process")
    return pacer


def take_slot(runtime: Runtime, key: str, pace: Pace) -> None:
    """Wait for `key`'s next slot if it is near; otherwise defer the row until about then."""
    slot = _pacer(runtime).reserve(key, pace, max_wait=MAX_SLEEP)
    if not slot.taken:
        raise Defer(f"{key}: Slack's budget is taken for {slot.wait:.1f}s", retry_after=slot.wait)
    if slot.wait > 0:
        time.sleep(slot.wait)


def call(runtime: Runtime, method: str, *, gate_channel: str | None = None, **kwargs: Any) -> SlackResponse:
    """One Web API call for the outbox (`gate_channel`: the channel whose budget a post spends)."""
    pacer, client = _pacer(runtime), runtime.services.slack_outbox
    key, pace = pace_for(runtime, method, gate_channel or kwargs.get("channel"))
    take_slot(runtime, key, pace)
    try:
        return getattr(client, method)(**kwargs)  # type: ignore[no-any-return]
    except SlackApiError as exc:
        raise _mapped(pacer, method, key, pace, exc) from exc
    except OSError as exc:  # connection refused, reset, timeout: sent or not, nobody knows
        raise NoAnswer(f"{method}: no answer ({type(exc).__name__}: {exc})") from exc


def _header(response: SlackResponse, name: str) -> str | None:
    for key, value in (response.headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _mapped(pacer: SlackPacer, method: str, key: str, pace: Pace, exc: SlackApiError) -> Exception:
    """Slack's answer as the outbox's exception: 429 defers (and holds the key for everybody)."""
    status, error = exc.response.status_code, str(exc.response.get("error") or "")
    if status == 429 or error == "ratelimited":
        wait = float(_header(exc.response, "retry-after") or 1)
        pacer.hold(key, pace, wait)
        log.info("%s: rate limited, Retry-After %gs", key, wait)
        return Defer(
            f"{method}: rate limited (Retry-After {wait:g}s)", retry_after=wait + random.uniform(0, 0.2)
        )
    if status < 500 and error in PERMANENT_ERRORS:
        return Permanent(f"{method}: {error}")
    return Retry(f"{method}: HTTP {status} {error}")


# ---------------------------------------------------------------- channel names to ids


def channel_id(runtime: Runtime, channel: str) -> str:
    """The id of `channel` (an id already, or a name resolved once); the name itself if Slack hides it."""
    if CHANNEL_ID.fullmatch(channel):
        return channel
    pacer = _pacer(runtime)
    name = channel.lstrip("#")
    known = pacer.channel_ids.get(name) or _stored_channel(runtime, name)
    if known is None:
        listed = _listed_channels(runtime, pacer)
        if listed is None:
            return channel  # Slack is not answering: post by name for now, list again later
        known = listed.get(name)
        if known is not None:
            learn_channel(runtime, channel, known)
    # Not visible to the bot (no channels:read, or not a member): post by name, learn from the answer.
    pacer.channel_ids.setdefault(name, known or channel)
    return pacer.channel_ids[name]


def _listed_channels(runtime: Runtime, pacer: SlackPacer) -> dict[str, str] | None:
    """conversations.list once; None while it fails (then not again for LIST_BACKOFF seconds)."""
    if pacer.wall() < pacer.list_after:
        return None
    try:
        listed = _list_channels(runtime)
    except (Retry, Defer) as exc:
        log.warning("cannot list Slack channels yet (%s)", exc)
        pacer.list_after = pacer.wall() + LIST_BACKOFF
        return None
    pacer.channel_ids.update(listed)
    return listed


def learn_channel(runtime: Runtime, channel: str, resolved: str) -> None:
    """Remember that `channel` (a name) is `resolved` (an id), for this process and the other replicas."""
    if CHANNEL_ID.fullmatch(channel) or not CHANNEL_ID.fullmatch(resolved):
        return
    name, pacer = channel.lstrip("#"), _pacer(runtime)
    if pacer.channel_ids.get(name) == resolved:
        return
    pacer.channel_ids[name] = resolved
    with session_scope(runtime.engine) as session:
        session.merge(
            SchedulerState(key=CHANNEL_STATE + name, value={"id": resolved}, updated_at=runtime.clock.now())
        )


def _stored_channel(runtime: Runtime, name: str) -> str | None:
    with session_scope(runtime.engine, readonly=True) as session:
        value = session.execute(
            select(col(SchedulerState.value)).where(col(SchedulerState.key) == CHANNEL_STATE + name)
        ).scalar()
    return str(value["id"]) if isinstance(value, dict) and value.get("id") else None


def _list_channels(runtime: Runtime) -> dict[str, str]:
    """Every channel the bot can see, name -> id (conversations.list, Tier 2, paged)."""
    found: dict[str, str] = {}
    cursor: str | None = None
    for _ in range(50):
        try:
            resp = call(
                runtime,
                "conversations_list",
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
        except Permanent as exc:  # missing_scope and the like: names are learnt from post answers instead
            log.warning("cannot list Slack channels (%s); posting by name", exc)
            return found
        found.update({c["name"]: c["id"] for c in resp.get("channels") or [] if c.get("name")})
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            break
    return found


# ---------------------------------------------------------------- finding a message in doubt

REVIEW_EVENT = "hitl_review"
HISTORY_PAGES = 10


def review_metadata(review_id: str) -> dict[str, Any]:
    """The message metadata a review's card carries, so it can be found again in the channel."""
    return {"event_type": REVIEW_EVENT, "event_payload": {"review_id": review_id}}


def find_card(runtime: Runtime, channel: str, review_id: str, *, oldest: float) -> str | None:
    """The ts of a card for `review_id` posted in `channel` since `oldest` (epoch s), if there is one."""
    return find_by_metadata(runtime, channel, review_metadata(review_id), oldest=oldest, exact=False)


def find_by_metadata(
    runtime: Runtime, channel: str, metadata: dict[str, Any], *, oldest: float, exact: bool = True
) -> str | None:
    """The ts of a message posted in `channel` since `oldest` (epoch s) carrying `metadata` (its event_type
    and payload; with `exact=False` the payload's keys need only be among the message's), if there is one.

    Used after a post whose answer was lost: Slack may have stored it, and looking is cheaper than a twin."""
    cursor: str | None = None
    for _ in range(HISTORY_PAGES):
        resp = call(
            runtime,
            "conversations_history",
            channel=channel,
            oldest=f"{oldest:.6f}",
            include_all_metadata=True,
            limit=200,
            cursor=cursor,
        )
        found = _carrying(resp.get("messages") or [], metadata, exact)
        if found is not None:
            return found
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None
    return None


def _carrying(messages: list[dict[str, Any]], metadata: dict[str, Any], exact: bool) -> str | None:
    want = metadata.get("event_payload") or {}
    for message in messages:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") != metadata.get("event_type"):
            continue
        if payload == want or (not exact and all(payload.get(k) == v for k, v in want.items())):
            return str(message["ts"])
    return None
