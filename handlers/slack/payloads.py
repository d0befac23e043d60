"""Typed views of the Slack payloads the review listeners read (clicks and modal submissions)."""

from __future__ import annotations

from typing import Any

from bot.review.decisions import Click
from bot.slack.ids import ModalMeta, ReviewRef


def click_from_action(body: dict[str, Any]) -> Click:
    """A button click on a review card; keyed so a redelivered payload acts once."""
    action = body["actions"][0]
    ref = ReviewRef.model_validate_json(action["value"])
    container = body.get("container") or {}
    channel = container.get("channel_id") or body["channel"]["id"]
    ts = container.get("message_ts") or body["message"]["ts"]
    user = body["user"]
    key = f"action:{channel}:{ts}:{action['action_id']}:{user['id']}:{action.get('action_ts', '')}"
    return Click(
        review_id=ref.review_id,
        user_id=user["id"],
        user_name=user.get("username") or user.get("name"),
        channel=channel,
        message_ts=ts,
        delivery_key=key,
    )


def click_from_view(body: dict[str, Any]) -> Click:
    """A modal submission, with the card it came from (from the view's private_metadata)."""
    view = body["view"]
    meta = ModalMeta.model_validate_json(view["private_metadata"])
    user = body["user"]
    return Click(
        review_id=meta.review_id,
        user_id=user["id"],
        user_name=user.get("username") or user.get("name"),
        channel=meta.channel,
        message_ts=meta.ts,
        delivery_key=f"view:{view['id']}",
    )


def modal_meta(click: Click) -> ModalMeta:
    """What a modal opened from this click must remember."""
    return ModalMeta(review_id=click.review_id, channel=click.channel, ts=click.message_ts)


def where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user id, channel) of an interaction, to answer it ephemerally."""
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
    view = body.get("view") or {}
    if channel is None and view.get("private_metadata"):
        try:
            channel = ModalMeta.model_validate_json(view["private_metadata"]).channel
        except ValueError:
            channel = None
    return user, channel
