"""The Slack edge never answers with an error screen: a few hundred malformed but correctly signed requests.

Each is sent over real HTTP to POST /slack/events; none may answer 5xx, and the log may hold no traceback
(one line per refused request). Unsigned requests answer 401 before anything is parsed.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.slack.ids import ActionId, CallbackId, ModalMeta
from sandbox.slack_sim import (
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    block_action_payload,
    event_callback,
    signed_headers,
    slash_command_form,
    view_submission_payload,
)
from tests.conftest import SIGNING_SECRET
from tests.slack.conftest import Loop

ODD_VALUES: list[Any] = [None, 5, -1.5, True, "", "x", [], {}, [5], {"id": 5}, "\ud800", "<!channel>" * 50]


def mutations(base: dict[str, Any], paths: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """`base` with each path deleted, then set to each odd value."""
    for path in paths:
        parent_path, key = path[:-1], path[-1]
        deleted = copy.deepcopy(base)
        parent = deleted
        for step in parent_path:
            parent = parent[step]
        if isinstance(parent, dict):
            parent.pop(key, None)
            yield deleted
        for value in ODD_VALUES:
            changed = copy.deepcopy(base)
            parent = changed
            for step in parent_path:
                parent = parent[step]
            parent[key] = value
            yield changed


def form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def raw_bodies() -> list[tuple[bytes, str]]:
    """Bodies that are not even Slack-shaped JSON."""
    texts = [
        "payload=[]",
        "payload=%7Bnot-json",
        "payload=5",
        "payload=null",
        'payload="text"',
        "payload=",
        'payload={"type":"block_actions","actions":[]}',
        'payload={"type":"block_actions"}',
        'payload={"type":"view_submission","user":{"id":"U1"}}',
        "payload=%FF%FE",
        "",
        "=",
        "&&&",
        "command=/hitl",
        "ssl_check=1",
    ]
    bodies = [(t.encode(), FORM_CONTENT_TYPE) for t in texts]
    for js in [
        "[]",
        "5",
        "null",
        '"x"',
        "{",
        '{"type":5}',
        '{"event":5}',
        '{"type":"event_callback","event":5}',
        '{"type":"event_callback","event":{"type":"app_mention"}}',
        '{"type":"url_verification"}',
        '{"type":"event_callback","event":{"type":"message","user":5},"event_id":"Ev1"}',
    ]:
        bodies.append((js.encode(), JSON_CONTENT_TYPE))
    bodies.append((b"\xff\xfe\x00", FORM_CONTENT_TYPE))
    bodies.append((b"\xff\xfe\x00", JSON_CONTENT_TYPE))
    return bodies


def click_payload(loop: Loop) -> dict[str, Any]:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    return block_action_payload(
        message=card,
        channel=card["channel"],
        action_id=ActionId.APPROVE,
        user_id="U0ALEX0001",
        user_name="alex",
    )


def submission_payload(loop: Loop) -> dict[str, Any]:
    review_id = loop.post_draft()
    card = loop.card(review_id)
    view = {
        "id": "V0FUZZ0001",
        "type": "modal",
        "callback_id": CallbackId.EDIT_MODAL,
        "hash": "1.abc",
        "private_metadata": ModalMeta(
            review_id=review_id, channel=card["channel"], ts=card["ts"]
        ).model_dump_json(),
    }
    values = {"edit_text:0": {ActionId.EDIT_TEXT: {"type": "plain_text_input", "value": "Edited reply"}}}
    return view_submission_payload(view=view, user_id="U0ALEX0001", values=values)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, uvicorn's included (its loggers do not propagate to the root)."""
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    uvicorn.removeHandler(caplog.handler)


def post(loop: Loop, body: bytes, content_type: str) -> int:
    headers = signed_headers(SIGNING_SECRET, body, content_type=content_type)
    return loop.sim.post_raw(body, headers).status_code


def test_a_few_hundred_malformed_signed_requests_answer_200_or_400_without_a_traceback(
    loop: Loop, captured: pytest.LogCaptureFixture
) -> None:
    click = click_payload(loop)
    submission = submission_payload(loop)
    click_paths: list[tuple[Any, ...]] = [
        ("type",),
        ("user",),
        ("user", "id"),
        ("user", "username"),
        ("team",),
        ("team", "id"),
        ("channel",),
        ("container",),
        ("container", "type"),
        ("container", "channel_id"),
        ("container", "message_ts"),
        ("message",),
        ("actions",),
        ("actions", 0),
        ("actions", 0, "action_id"),
        ("actions", 0, "value"),
        ("actions", 0, "action_ts"),
        ("trigger_id",),
        ("enterprise",),
        ("is_enterprise_install",),
        ("view",),
    ]
    view_paths: list[tuple[Any, ...]] = [
        ("view",),
        ("view", "id"),
        ("view", "callback_id"),
        ("view", "private_metadata"),
        ("view", "state"),
        ("view", "state", "values"),
        ("view", "state", "values", "edit_text:0"),
        ("user",),
        ("team",),
    ]
    event = event_callback({"type": "app_mention", "user": "U0ALEX0001", "text": "hi", "channel": "C1"})
    event_paths: list[tuple[Any, ...]] = [
        ("type",),
        ("event",),
        ("event", "type"),
        ("event_id",),
        ("authorizations",),
        ("team_id",),
        ("event", "user"),
    ]
    command = slash_command_form(text="help", user_id="U0ALEX0001", channel_id="#support-review")

    requests: list[tuple[bytes, str]] = raw_bodies()
    requests += [(form(p), FORM_CONTENT_TYPE) for p in mutations(click, click_paths)]
    requests += [(form(p), FORM_CONTENT_TYPE) for p in mutations(submission, view_paths)]
    requests += [(json.dumps(p).encode(), JSON_CONTENT_TYPE) for p in mutations(event, event_paths)]
    for key in ("command", "user_id", "channel_id", "text"):
        requests.append(
            (urlencode({k: v for k, v in command.items() if k != key}).encode(), FORM_CONTENT_TYPE)
        )
        requests.append((urlencode({**command, key: "\x00" * 3}).encode(), FORM_CONTENT_TYPE))
    assert len(requests) >= 300

    statuses = [post(loop, body, content_type) for body, content_type in requests]

    assert set(statuses) <= {200, 400}, sorted(set(statuses))
    assert statuses.count(400) >= 100, "most of these are not Slack's shapes"
    loop.settled(30)
    time.sleep(0.5)  # listeners acked first; let the last ones finish writing their log lines
    tracebacks = [r for r in captured.records if r.exc_info or r.exc_text or "Traceback" in r.getMessage()]
    assert not tracebacks, [f"{r.name}: {r.getMessage()[:200]}" for r in tracebacks[:5]]


def test_unsigned_garbage_is_refused_with_401_before_parsing_and_signed_garbage_with_400(loop: Loop) -> None:
    body = b"payload=%7Bnot-json"
    unsigned = loop.sim.post_raw(body, {"Content-Type": FORM_CONTENT_TYPE})
    forged = loop.sim.post_raw(body, signed_headers("not-our-secret", body))
    signed = loop.sim.post_raw(body, signed_headers(SIGNING_SECRET, body))
    assert (unsigned.status_code, forged.status_code, signed.status_code) == (401, 401, 400)


def test_a_button_this_app_does_not_have_is_acked_quietly_and_changes_nothing(loop: Loop) -> None:
    payload = click_payload(loop)
    review_id = json.loads(payload["actions"][0]["value"])["review_id"]
    payload["actions"][0]["action_id"] = "someone_elses_button"
    resp = loop.sim.post_action(payload)
    assert resp.status_code == 200  # Slack shows no error, and does not retry
    loop.settled()
    assert loop.review(review_id).status == "pending"
    assert not loop.standin.ephemerals("U0ALEX0001")


def test_a_malformed_socket_mode_payload_is_refused_and_a_good_one_passes() -> None:
    from handlers.slack.edge import socket_mode_problem

    for bad in (
        [],
        {"type": "block_actions", "actions": []},
        {"type": "event_callback", "event": 5},
        {"type": 5},
    ):
        assert socket_mode_problem(bad), bad
    good = block_action_payload(
        message={"ts": "1.2", "blocks": []},
        channel="C1",
        action_id="a",
        value="v",
        block_id="b",
        user_id="U1",
    )
    assert socket_mode_problem(good) is None
    assert socket_mode_problem(event_callback({"type": "app_uninstalled"})) is None
    assert socket_mode_problem(slash_command_form(text="help", user_id="U1", channel_id="C1")) is None
