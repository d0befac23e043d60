"""Simulate what Slack sends to the app: signed requests with Slack-shaped payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox.slack_standin import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

VERIFICATION_TOKEN = "sandboxverificationtoken"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


def sign(signing_secret: str, body: bytes, timestamp: int) -> str:
    """Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    content_type: str = FORM_CONTENT_TYPE,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with a request: content type, timestamp, signature and optional retry info."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, body, ts),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return headers


def _trigger_id() -> str:
    return f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def _response_url(kind: str) -> str:
    return f"https://hooks.slack.com/{kind}/{TEAM_ID}/{secrets.randbelow(10**13)}/{secrets.token_urlsafe(18)}"


def _user(user_id: str, user_name: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID}


def _elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(block.get("elements") or []) if block.get("type") == "actions" else []
    found += [e for e in (block.get("accessory"), block.get("element")) if isinstance(e, dict)]
    return found


def _find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[str, dict[str, Any]]:
    for block in blocks or []:
        for element in _elements(block):
            if element.get("action_id") == action_id:
                return block.get("block_id", ""), element
    raise LookupError(f"no element with action_id {action_id!r} in the blocks")


def find_button(blocks: list[dict[str, Any]], action_id: str) -> tuple[str, str | None]:
    """(block_id, value) of the interactive element with `action_id`; LookupError if absent."""
    block_id, element = _find_element(blocks, action_id)
    return block_id, element.get("value")


def _from_message(
    message: dict[str, Any], action_id: str, *, block_id: str | None, value: str | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """The block id and value of the clicked element, unless given, and the element itself."""
    found_block_id, element = _find_element(message.get("blocks") or [], action_id)
    return (
        found_block_id if block_id is None else block_id,
        element.get("value") if value is None else value,
        element,
    )


def _action(
    message: dict[str, Any],
    action_id: str,
    *,
    value: str | None,
    selected_option: dict[str, Any] | None,
    block_id: str | None,
) -> dict[str, Any]:
    """The clicked action as Slack describes it; what the caller did not give is read from the message."""
    element: dict[str, Any] = {}
    if block_id is None or (value is None and selected_option is None):
        block_id, value, element = _from_message(message, action_id, block_id=block_id, value=value)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": element.get("type", "static_select" if selected_option is not None else "button"),
        "action_ts": f"{time.time():.6f}",
    }
    if "text" in element:
        action["text"] = element["text"]
    if value is not None:
        action["value"] = value
    if selected_option is not None:
        action["selected_option"] = selected_option
    return action


def block_action_payload(
    *,
    message: dict[str, Any],
    channel: str,
    action_id: str,
    value: str | None = None,
    user_id: str,
    user_name: str = "reviewer",
    trigger_id: str | None = None,
    selected_option: dict[str, Any] | None = None,
    block_id: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload for a click on `action_id` in a stored message (pass a stand-in trigger_id
    to let the app open a modal)."""
    action = _action(message, action_id, value=value, selected_option=selected_option, block_id=block_id)
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    public_message = {k: v for k, v in message.items() if k not in ("channel", "history")}
    return {
        "type": "block_actions",
        "user": _user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lstrip("#")},
        "message": public_message,
        "state": {"values": {}},
        "response_url": _response_url("actions"),
        "actions": [action],
    }


def home_action_payload(
    *,
    view: dict[str, Any],
    action_id: str,
    user_id: str,
    user_name: str = "reviewer",
    value: str | None = None,
    block_id: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload for a click on the App Home tab (`view`: the published Home view).

    As Slack sends it: the container is the view (no channel, no message, no response_url). Give
    `block_id` to pick one line's button when several lines carry the same action_id.
    """
    action = _action(view, action_id, value=value, selected_option=None, block_id=block_id)
    if block_id is not None and value is None:
        block = next(b for b in view.get("blocks") or [] if b.get("block_id") == block_id)
        element = next(e for e in _elements(block) if e.get("action_id") == action_id)
        action.update(
            value=element.get("value"), type=element.get("type", "button"), text=element.get("text")
        )
    return {
        "type": "block_actions",
        "user": _user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [action],
        "state": {"values": {}},
    }


def app_home_opened(user_id: str, *, tab: str = "home", view: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `app_home_opened` event (wrap it in `event_callback`); `view` once a Home was published before."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": "D0HOME" + user_id[-4:],
        "tab": tab,
    }
    if view is not None:
        event["view"] = view
    return event


def view_submission_payload(
    *, view: dict[str, Any], user_id: str, values: dict[str, Any], user_name: str = "reviewer"
) -> dict[str, Any]:
    """A `view_submission` payload for a stored view, with `values` as its `state.values`."""
    submitted = {**view, "state": {"values": values}}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": submitted,
        "response_urls": [],
        "enterprise": None,
        "is_enterprise_install": False,
    }


def slash_command_form(
    *,
    command: str = "/hitl",
    text: str,
    user_id: str,
    channel_id: str,
    trigger_id: str | None = None,
    user_name: str = "reviewer",
) -> dict[str, str]:
    """The form fields Slack posts for a slash command."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_id.lstrip("#"),
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": _response_url("commands"),
        "trigger_id": trigger_id or _trigger_id(),
    }


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An Events API `event_callback` envelope around `event`."""
    now = time.time()
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": {"event_ts": f"{now:.6f}", **event},
        "type": "event_callback",
        "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


class SlackSim:
    """Posts signed Slack requests to the app's `{base_url}/slack/events`."""

    def __init__(self, base_url: str, signing_secret: str, http: httpx.Client | None = None) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.signing_secret = signing_secret
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=10)

    def close(self) -> None:
        """Close the HTTP client if this simulator created it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> SlackSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, body: bytes, content_type: str, retry_num: int | None = None) -> httpx.Response:
        headers = signed_headers(self.signing_secret, body, content_type=content_type, retry_num=retry_num)
        return self.post_raw(body, headers)

    def post_action(self, payload: dict[str, Any]) -> httpx.Response:
        """Post an interactive payload (block_actions etc.) as form field `payload=<json>`."""
        return self._post(urlencode({"payload": json.dumps(payload)}).encode(), FORM_CONTENT_TYPE)

    def post_view_submission(self, payload: dict[str, Any]) -> httpx.Response:
        """Post a view_submission payload as form field `payload=<json>`."""
        return self.post_action(payload)

    def post_command(self, form: dict[str, str]) -> httpx.Response:
        """Post slash-command form fields."""
        return self._post(urlencode(form).encode(), FORM_CONTENT_TYPE)

    def post_event(self, body: dict[str, Any], retry_num: int | None = None) -> httpx.Response:
        """Post an Events API body as JSON, optionally as Slack's retry number `retry_num`."""
        return self._post(json.dumps(body).encode(), JSON_CONTENT_TYPE, retry_num)

    def post_raw(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """Post exactly these bytes and headers (for forged or stale signatures)."""
        return self.http.post(self.url, content=body, headers=headers)
