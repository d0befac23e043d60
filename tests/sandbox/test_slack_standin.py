"""Real-HTTP tests of the Slack Web API stand-in and the Slack-side simulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.signature import SignatureVerifier

from sandbox.slack_sim import (
    SlackSim,
    block_action_payload,
    event_callback,
    find_button,
    sign,
    signed_headers,
    slash_command_form,
    view_submission_payload,
)
from sandbox.slack_standin import SlackStandin

TOKEN = "xoxb-test"
SECRET = "sandbox-signing-secret"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

MODAL = {
    "type": "modal",
    "callback_id": "edit_draft",
    "title": {"type": "plain_text", "text": "Edit draft"},
    "submit": {"type": "plain_text", "text": "Send"},
    "private_metadata": "C1|1763700000.000100",
    "blocks": [
        {
            "type": "input",
            "block_id": "reply",
            "label": {"type": "plain_text", "text": "Reply"},
            "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
        }
    ],
}


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin(token=TOKEN, trigger_ttl=0.2) as server:
        yield server


@pytest.fixture
def client(standin: SlackStandin) -> WebClient:
    return WebClient(base_url=standin.base_url, token=TOKEN)


def review_blocks() -> list[dict[str, Any]]:
    return [
        SectionBlock(block_id="draft", text="*Draft* for ticket 42").to_dict(),
        ActionsBlock(
            block_id="decide",
            elements=[
                ButtonElement(text="Approve", action_id="approve", value="draft-42", style="primary"),
                ButtonElement(text="Reject", action_id="reject", value="draft-42", style="danger"),
            ],
        ).to_dict(),
    ]


def slack_error(call: Callable[[], object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def test_post_round_trips_and_is_inspectable(standin: SlackStandin, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="Draft for ticket 42", blocks=review_blocks())
    assert posted["ok"] and posted["channel"] == "C1"
    reply = client.chat_postMessage(channel="C1", text="context", thread_ts=posted["ts"])
    assert float(reply["ts"]) > float(posted["ts"])

    stored = standin.message("C1", posted["ts"])
    assert stored["text"] == "Draft for ticket 42"
    assert find_button(stored["blocks"], "approve") == ("decide", "draft-42")
    assert [m["ts"] for m in standin.thread("C1", posted["ts"])] == [reply["ts"]]
    assert len(standin.messages("C1")) == 2 and standin.messages("C2") == []

    client.chat_update(channel="C1", ts=posted["ts"], text="Approved", blocks=[])
    updated = standin.message("C1", posted["ts"])
    assert updated["text"] == "Approved" and updated["history"][0]["text"] == "Draft for ticket 42"
    assert (
        "p" + posted["ts"].replace(".", "")
        in client.chat_getPermalink(channel="C1", message_ts=posted["ts"])["permalink"]
    )

    ephemeral = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert standin.ephemerals("U1")[0]["text"] == "only you"
    assert (
        slack_error(lambda: client.chat_update(channel="C1", ts=ephemeral["message_ts"], text="x")).response[
            "error"
        ]
        == "message_not_found"
    )
    with pytest.warns(UserWarning):
        assert slack_error(lambda: client.chat_postMessage(channel="C1")).response["error"] == "no_text"
    assert [c["status"] for c in standin.calls("chat.postMessage")] == [200, 200, 200]


@pytest.mark.parametrize(
    "block",
    [
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 80}}
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
        {"type": "section", "txet": {"type": "mrkdwn", "text": "typo"}},
    ],
)
def test_invalid_blocks_are_rejected(client: WebClient, block: dict[str, Any]) -> None:
    error = slack_error(lambda: client.chat_postMessage(channel="C1", text="t", blocks=[block]))
    assert error.response["error"] == "invalid_blocks"
    assert error.response["response_metadata"]["messages"]


def test_message_size_limits_and_text_fallback(client: WebClient) -> None:
    divider = {"type": "divider"}
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}}
    assert (
        slack_error(lambda: client.chat_postMessage(channel="C1", text="t", blocks=[divider] * 51)).response[
            "error"
        ]
        == "invalid_blocks"
    )
    assert (
        slack_error(
            lambda: client.chat_postMessage(channel="C1", text="t", blocks=[long_section] * 5)
        ).response["error"]
        == "msg_blocks_too_long"
    )

    with SlackStandin(token=TOKEN, strict_fallback=True) as strict:
        strict_client = WebClient(base_url=strict.base_url, token=TOKEN)
        with pytest.warns(UserWarning):
            error = slack_error(lambda: strict_client.chat_postMessage(channel="C1", blocks=[divider]))
        assert error.response["error"] == "missing_text_fallback"


def test_missing_fallback_is_a_warning(standin: SlackStandin, client: WebClient) -> None:
    with pytest.warns(UserWarning):
        client.chat_postMessage(channel="C1", blocks=[{"type": "divider"}])
    assert standin.warnings()[0]["warning"] == "missing_text_fallback"


def test_form_encoded_call_with_blocks_as_json_string(standin: SlackStandin) -> None:
    form = {"token": TOKEN, "channel": "C9", "text": "fallback", "blocks": json.dumps(review_blocks())}
    answer = httpx.post(standin.base_url + "chat.postMessage", data=form).json()
    assert answer["ok"] and standin.message("C9", answer["ts"])["blocks"][1]["block_id"] == "decide"
    assert standin.calls("chat.postMessage")[0]["args"]["channel"] == "C9"


def test_auth_and_unknown_method(standin: SlackStandin) -> None:
    bad = WebClient(base_url=standin.base_url, token="xoxb-wrong")
    assert slack_error(bad.auth_test).response["error"] == "invalid_auth"
    good = WebClient(base_url=standin.base_url, token=TOKEN)
    assert good.auth_test()["user_id"].startswith("U")
    assert slack_error(lambda: good.api_call("chat.nope")).response["error"] == "unknown_method"


def test_rate_limit_per_channel_then_retry_handler_gets_through(
    standin: SlackStandin, client: WebClient
) -> None:
    for i in range(3):
        client.chat_postMessage(channel="C1", text=f"burst {i}")
    error = slack_error(lambda: client.chat_postMessage(channel="C1", text="one too many"))
    assert error.response.status_code == 429 and error.response["error"] == "ratelimited"
    assert int(error.response.headers["Retry-After"]) >= 1
    client.chat_postMessage(channel="C2", text="other channel is fine")

    patient = WebClient(base_url=standin.base_url, token=TOKEN)
    patient.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    assert patient.chat_postMessage(channel="C1", text="after waiting")["ok"]
    assert [c["status"] for c in standin.calls("chat.postMessage")][-2:] == [429, 200]


def test_forced_ratelimit_and_outage(standin: SlackStandin, client: WebClient) -> None:
    standin.force_ratelimit("users.info", times=1, retry_after=5)
    error = slack_error(lambda: client.users_info(user="U1"))
    assert error.response.status_code == 429 and error.response.headers["Retry-After"] == "5"
    standin.add_user("U1", "alice", email="alice@example.com")
    assert client.users_info(user="U1")["user"]["name"] == "alice"
    standin.set_outage(True)
    assert slack_error(client.auth_test).response.status_code == 503
    standin.set_outage(False)
    assert client.auth_test()["ok"]


def test_trigger_ids_expire_and_work_once(standin: SlackStandin, client: WebClient) -> None:
    trigger = standin.issue_trigger_id()
    opened = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["private_metadata"] == MODAL["private_metadata"]
    assert (
        slack_error(lambda: client.views_open(trigger_id=trigger, view=MODAL)).response["error"]
        == "invalid_trigger_id"
    )
    assert (
        slack_error(lambda: client.views_open(trigger_id="123.456.abc", view=MODAL)).response["error"]
        == "invalid_trigger_id"
    )
    stale = standin.issue_trigger_id()
    time.sleep(0.3)
    assert (
        slack_error(lambda: client.views_open(trigger_id=stale, view=MODAL)).response["error"]
        == "expired_trigger_id"
    )

    too_long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    assert (
        slack_error(
            lambda: client.views_open(trigger_id=standin.issue_trigger_id(), view=too_long_title)
        ).response["error"]
        == "invalid_blocks"
    )
    client.views_update(view_id=opened["id"], view={**MODAL, "private_metadata": "done"})
    assert standin.views()[0]["private_metadata"] == "done"


def test_users_groups_and_dms(standin: SlackStandin, client: WebClient) -> None:
    standin.add_user("U1", "alice", email="alice@example.com")
    standin.add_usergroup("S1", ["U1", "U2"])
    assert client.users_lookupByEmail(email="alice@example.com")["user"]["id"] == "U1"
    assert (
        slack_error(lambda: client.users_lookupByEmail(email="bob@example.com")).response["error"]
        == "users_not_found"
    )
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert (
        slack_error(lambda: client.usergroups_users_list(usergroup="S9")).response["error"]
        == "no_such_subteam"
    )
    dm = client.conversations_open(users="U1")["channel"]["id"]
    assert dm.startswith("D") and client.conversations_open(users=["U1"])["channel"]["id"] == dm


def test_files_upload_v2_end_to_end(standin: SlackStandin, client: WebClient) -> None:
    result = client.files_upload_v2(
        channel="C1", content=PNG, filename="x.png", title="SLA chart", initial_comment="Weekly SLA"
    )
    assert result["file"]["id"].startswith("F")
    [stored] = standin.files()
    assert stored["channel"] == "C1" and stored["title"] == "SLA chart"
    assert stored["initial_comment"] == "Weekly SLA" and stored["length"] == len(PNG)
    assert stored["head"].startswith(b"\x89PNG") and stored["is_png"]


def test_sign_matches_slack_sdk_verifier() -> None:
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    now = int(time.time())
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, str(now), sign(SECRET, body, now))
    assert verifier.is_valid_request(body, signed_headers(SECRET, body))
    assert not verifier.is_valid(body, str(now), sign("other-secret", body, now))
    assert not verifier.is_valid_request(body, signed_headers(SECRET, body, timestamp=now - 600))


def test_sim_posts_signed_slack_shaped_requests(standin: SlackStandin, client: WebClient) -> None:
    received: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(receive)
    sim = SlackSim("http://app.local/", SECRET, http=httpx.Client(transport=transport))

    posted = client.chat_postMessage(channel="C1", text="Draft", blocks=review_blocks())
    message = standin.message("C1", posted["ts"])
    sim.post_action(
        block_action_payload(
            message=message,
            channel="C1",
            action_id="reject",
            user_id="U1",
            trigger_id=standin.issue_trigger_id(),
        )
    )
    view = client.views_open(trigger_id=standin.issue_trigger_id(), view=MODAL)["view"]
    sim.post_view_submission(
        view_submission_payload(
            view=view, user_id="U1", values={"reply": {"text": {"type": "plain_text_input", "value": "Hi"}}}
        )
    )
    sim.post_command(slash_command_form(text="stats", user_id="U1", channel_id="C1"))
    sim.post_event(event_callback({"type": "app_mention", "text": "hi"}, event_id="Ev1"), retry_num=1)

    verifier = SignatureVerifier(SECRET)
    assert all(str(r.url) == "http://app.local/slack/events" for r in received)
    assert all(verifier.is_valid_request(r.content, dict(r.headers)) for r in received)
    action = json.loads(parse_qs(received[0].content.decode())["payload"][0])
    assert action["actions"][0] | {"block_id": "decide", "value": "draft-42"} == action["actions"][0]
    assert action["container"]["message_ts"] == posted["ts"] and action["trigger_id"]
    submission = json.loads(parse_qs(received[1].content.decode())["payload"][0])
    assert submission["view"]["callback_id"] == "edit_draft"
    assert submission["view"]["private_metadata"] == MODAL["private_metadata"]
    assert submission["view"]["state"]["values"]["reply"]["text"]["value"] == "Hi"
    assert parse_qs(received[2].content.decode())["command"] == ["/hitl"]
    assert received[3].headers["X-Slack-Retry-Num"] == "1"
    assert json.loads(received[3].content)["event_id"] == "Ev1"
