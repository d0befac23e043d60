"""The Slack stand-in's views.publish: Home views validated with slack_sdk, kept per user, paced at Tier 4."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack_standin import TIER4_BURST, SlackStandin

HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Your desk*"}}]}


@pytest.fixture
def client(slack_standin: SlackStandin) -> WebClient:
    return WebClient(base_url=slack_standin.base_url, token="xoxb-test")


def test_a_published_home_is_kept_per_user_and_replaced_in_place(
    slack_standin: SlackStandin, client: WebClient
) -> None:
    first = client.views_publish(user_id="U1", view=HOME)["view"]
    assert first["type"] == "home" and first["id"].startswith("V") and first["hash"]
    newer = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Newer*"}}]}
    again = client.views_publish(user_id="U1", view=newer)["view"]
    assert again["id"] == first["id"], "one Home view per user, updated in place"
    client.views_publish(user_id="U2", view=HOME)
    assert set(slack_standin.homes()) == {"U1", "U2"}
    stored = slack_standin.home("U1")
    assert stored is not None and stored["blocks"][0]["text"]["text"] == "*Newer*"
    assert slack_standin.home("U3") is None and not slack_standin.views(), "Homes are not modals"


@pytest.mark.parametrize(
    ("view", "error"),
    [
        ({"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}, "invalid_blocks"),
        ({"type": "home", "blocks": [{"type": "section"}]}, "invalid_blocks"),
        ({"type": "home", "blocks": [{"type": "divider"}] * 101}, "invalid_blocks"),
    ],
)
def test_a_view_slack_would_refuse_is_refused(client: WebClient, view: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.views_publish(user_id="U1", view=view)
    assert refused.value.response["error"] == error


def test_a_stale_hash_conflicts(client: WebClient) -> None:
    first = client.views_publish(user_id="U1", view=HOME)["view"]
    client.views_publish(user_id="U1", view=HOME, hash=first["hash"])
    with pytest.raises(SlackApiError) as conflict:
        client.views_publish(user_id="U1", view=HOME, hash=first["hash"])
    assert conflict.value.response["error"] == "hash_conflict"


def test_more_than_tier_4_allows_is_answered_429_with_retry_after(slack_standin: SlackStandin) -> None:
    client = WebClient(base_url=slack_standin.base_url, token="xoxb-test")
    client.retry_handlers.clear()
    for n in range(TIER4_BURST):
        client.views_publish(user_id=f"U{n}", view=HOME)
    with pytest.raises(SlackApiError) as limited:
        client.views_publish(user_id="U99", view=HOME)
    assert (
        limited.value.response.status_code == 429 and int(limited.value.response.headers["Retry-After"]) >= 1
    )
