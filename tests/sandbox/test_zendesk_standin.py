"""The Zendesk stand-in answers like Zendesk's Ticketing API v2, over real HTTP."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.zendesk_standin import MAX_COMMENTS, ZendeskStandin

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("bot@example.com/token", "zd-test-token")
AGENT_ID = 7
REQUESTER_ID = 8
TICKET_ID = 101


@pytest.fixture(scope="module")
def server() -> Iterator[ZendeskStandin]:
    with ZendeskStandin() as standin:
        yield standin


@pytest.fixture
def zendesk(server: ZendeskStandin) -> ZendeskStandin:
    server.reset()
    server.add_user(AGENT_ID, "ana@example.com", "Ana Agent")
    server.add_user(REQUESTER_ID, "carl@example.com", "Carl Customer", role="end-user")
    server.add_ticket(TICKET_ID, subject="Where is my order?", requester_id=REQUESTER_ID, description="Late!")
    return server


@pytest.fixture
def client(zendesk: ZendeskStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{zendesk.base_url}/api/v2", auth=AUTH, timeout=5) as http:
        yield http


def put_ticket(client: httpx.Client, ticket: dict[str, object], ticket_id: int = TICKET_ID) -> httpx.Response:
    return client.put(f"/tickets/{ticket_id}.json", json={"ticket": ticket})


def test_wrong_or_missing_credentials_get_401(zendesk: ZendeskStandin) -> None:
    url = f"{zendesk.base_url}/api/v2/tickets/{TICKET_ID}.json"
    wrong = httpx.get(url, auth=("bot@example.com/token", "nope"))
    missing = httpx.get(url)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json() == {"error": "Couldn't authenticate you"}


def test_unknown_ticket_is_404(client: httpx.Client) -> None:
    response = client.get("/tickets/999.json")
    assert response.status_code == 404
    assert response.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_public_reply_is_posted_as_the_given_author(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    before = zendesk.ticket(TICKET_ID)["updated_at"]
    response = put_ticket(
        client, {"comment": {"body": "It ships today.", "public": True, "author_id": AGENT_ID}}
    )
    assert response.status_code == 200
    assert response.json()["audit"]["events"][0]["type"] == "Comment"
    [reply] = zendesk.public_replies(TICKET_ID)
    assert (reply["body"], reply["author_id"], reply["public"]) == ("It ships today.", AGENT_ID, True)
    assert response.json()["ticket"]["updated_at"] > before


def test_internal_note_is_not_a_public_reply(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    response = put_ticket(client, {"comment": {"body": "Checked the warehouse.", "public": False}})
    assert response.status_code == 200
    assert zendesk.comments(TICKET_ID)[-1]["public"] is False
    assert zendesk.comments(TICKET_ID)[-1]["author_id"] == zendesk.api_user_id
    assert zendesk.public_replies(TICKET_ID) == []


def test_comment_without_public_takes_the_ticket_default(
    zendesk: ZendeskStandin, client: httpx.Client
) -> None:
    zendesk.add_ticket(102, requester_id=REQUESTER_ID, default_public=False)
    assert put_ticket(client, {"comment": {"body": "hmm"}}, ticket_id=102).status_code == 200
    assert zendesk.comments(102)[-1]["public"] is False


def test_take_over_assigns_without_adding_a_comment(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    response = put_ticket(client, {"assignee_id": AGENT_ID, "group_id": 55, "status": "open"})
    assert response.status_code == 200
    ticket = zendesk.ticket(TICKET_ID)
    assert (ticket["assignee_id"], ticket["group_id"]) == (AGENT_ID, 55)
    assert len(zendesk.comments(TICKET_ID)) == 1


def test_safe_update_with_the_current_stamp_succeeds(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    stamp = client.get(f"/tickets/{TICKET_ID}.json").json()["ticket"]["updated_at"]
    response = put_ticket(
        client, {"comment": {"body": "Hi", "public": True}, "safe_update": True, "updated_stamp": stamp}
    )
    assert response.status_code == 200
    assert len(zendesk.public_replies(TICKET_ID)) == 1


def test_safe_update_after_a_human_reply_gets_409_and_changes_nothing(
    zendesk: ZendeskStandin, client: httpx.Client
) -> None:
    stale = zendesk.ticket(TICKET_ID)["updated_at"]
    zendesk.human_update(TICKET_ID, body="Answered by hand.")
    before = (zendesk.ticket(TICKET_ID), zendesk.comments(TICKET_ID))
    response = put_ticket(
        client,
        {
            "comment": {"body": "AI", "public": True},
            "status": "solved",
            "safe_update": True,
            "updated_stamp": stale,
        },
    )
    assert response.status_code == 409
    assert response.json()["error"] == "UpdateConflict"
    assert (zendesk.ticket(TICKET_ID), zendesk.comments(TICKET_ID)) == before


def test_closed_ticket_refuses_updates_with_422(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    zendesk.close_ticket(TICKET_ID)
    response = put_ticket(client, {"comment": {"body": "late", "public": True}})
    assert response.status_code == 422
    assert response.json()["details"]["status"] == [{"description": "Status: closed prevents ticket update"}]
    assert zendesk.public_replies(TICKET_ID) == []


@pytest.mark.parametrize(
    "ticket",
    [{"status": "done"}, {"comment": {"body": "x", "public": True, "author_id": 424242}}],
    ids=["invalid-status", "unknown-author"],
)
def test_invalid_update_gets_422(client: httpx.Client, ticket: dict[str, object]) -> None:
    response = put_ticket(client, ticket)
    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"


def test_ticket_at_the_comment_cap_refuses_another(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    for _ in range(MAX_COMMENTS - len(zendesk.comments(TICKET_ID))):
        zendesk.human_update(TICKET_ID, public=False)
    response = put_ticket(client, {"comment": {"body": "one more", "public": True}})
    assert response.status_code == 422
    assert len(zendesk.comments(TICKET_ID)) == MAX_COMMENTS


def test_forced_429_carries_retry_after_then_recovers(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    zendesk.force_429(2, retry_after=7)
    first, second, third = (client.get(f"/tickets/{TICKET_ID}.json") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"] == "APIRateLimitExceeded"


def test_rate_limit_per_minute_answers_429_with_retry_after() -> None:
    with ZendeskStandin(rate_limit_per_minute=2) as standin:
        url = f"{standin.base_url}/api/v2/users/me.json"
        statuses = [httpx.get(url, auth=AUTH).status_code for _ in range(3)]
        limited = httpx.get(url, auth=AUTH)
    assert statuses == [200, 200, 429]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_outage_answers_503_until_lifted(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    zendesk.set_outage(True)
    assert client.get(f"/tickets/{TICKET_ID}.json").status_code == 503
    zendesk.set_outage(False)
    assert client.get(f"/tickets/{TICKET_ID}.json").status_code == 200


def test_users_search_by_email(client: httpx.Client) -> None:
    found = client.get("/users/search.json", params={"query": "email:Ana@Example.com"}).json()["users"]
    missing = client.get("/users/search.json", params={"query": "email:nobody@example.com"}).json()["users"]
    assert [user["id"] for user in found] == [AGENT_ID]
    assert missing == []
    assert client.get(f"/users/{AGENT_ID}.json").json()["user"]["email"] == "ana@example.com"
    assert client.get("/users/424242.json").status_code == 404


def test_comments_sort_desc_with_per_page(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    for body in ("first", "second", "third"):
        zendesk.human_update(TICKET_ID, body=body)
    page = client.get(
        f"/tickets/{TICKET_ID}/comments.json", params={"sort_order": "desc", "per_page": 2}
    ).json()
    assert [comment["body"] for comment in page["comments"]] == ["third", "second"]
    assert page["count"] == 4
    assert page["next_page"] is not None


def test_fail_after_write_applies_the_write_but_answers_500(
    zendesk: ZendeskStandin, client: httpx.Client
) -> None:
    zendesk.fail_after_write(1)
    response = put_ticket(client, {"comment": {"body": "Sent once", "public": True}})
    assert response.status_code == 500
    assert [reply["body"] for reply in zendesk.public_replies(TICKET_ID)] == ["Sent once"]
    assert put_ticket(client, {"status": "pending"}).status_code == 200


def test_fail_after_write_with_drop_cuts_the_connection(
    zendesk: ZendeskStandin, client: httpx.Client
) -> None:
    zendesk.fail_after_write(1, drop=True)
    with pytest.raises(httpx.TransportError):
        put_ticket(client, {"comment": {"body": "Sent once", "public": True}})
    assert len(zendesk.public_replies(TICKET_ID)) == 1
    assert zendesk.requests("PUT")[-1]["status"] is None


def test_write_completes_after_the_client_gives_up(zendesk: ZendeskStandin) -> None:
    zendesk.set_latency(0.5)
    impatient = httpx.Client(base_url=f"{zendesk.base_url}/api/v2", auth=AUTH, timeout=0.1)
    with impatient, pytest.raises(httpx.TimeoutException):
        put_ticket(impatient, {"comment": {"body": "Still lands", "public": True}})
    deadline = time.monotonic() + 3
    while not zendesk.public_replies(TICKET_ID) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [reply["body"] for reply in zendesk.public_replies(TICKET_ID)] == ["Still lands"]


def test_tags_endpoint_adds_while_ticket_put_replaces(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    assert put_ticket(client, {"tags": ["vip", "late"]}).status_code == 200
    added = client.put(f"/tickets/{TICKET_ID}/tags.json", json={"tags": ["hitl_approved", "vip"]})
    assert added.json()["tags"] == ["vip", "late", "hitl_approved"]
    assert put_ticket(client, {"tags": ["only"]}).status_code == 200
    assert zendesk.ticket(TICKET_ID)["tags"] == ["only"]


def test_updated_at_strictly_increases_within_one_second(client: httpx.Client) -> None:
    stamps = [put_ticket(client, {"subject": f"v{n}"}).json()["ticket"]["updated_at"] for n in range(3)]
    assert stamps == sorted(set(stamps))
    assert all(stamp.endswith("Z") for stamp in stamps)


def test_create_ticket_answers_201(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    response = client.post(
        "/tickets.json",
        json={"ticket": {"subject": "New", "requester_id": REQUESTER_ID, "comment": {"body": "Help"}}},
    )
    assert response.status_code == 201
    ticket = response.json()["ticket"]
    assert (ticket["status"], ticket["description"]) == ("new", "Help")
    assert zendesk.comments(ticket["id"])[0]["author_id"] == REQUESTER_ID


def test_requests_are_logged_with_status_and_body(zendesk: ZendeskStandin, client: httpx.Client) -> None:
    put_ticket(client, {"status": "pending"})
    client.get("/tickets/999.json")
    [logged] = zendesk.requests("put", path_contains=f"/tickets/{TICKET_ID}")
    assert (logged["status"], logged["json"]) == (200, {"ticket": {"status": "pending"}})
    assert zendesk.requests("GET")[-1]["status"] == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_process(port: int, state: Path) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "sandbox.zendesk_standin",
        "--port",
        str(port),
        "--state",
        str(state),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        process.kill()
        pytest.fail(f"stand-in process did not print READY, got {line!r}")
    return process, line.split()[1]


def stop_process(process: subprocess.Popen[str]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=10)
    finally:
        process.kill()


def test_process_mode_prints_ready_serves_and_keeps_state(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "zendesk.json"
    process, base_url = start_process(port, state)
    try:
        assert base_url == f"http://127.0.0.1:{port}"
        created = httpx.post(
            f"{base_url}/api/v2/tickets.json", json={"ticket": {"subject": "Kept"}}, auth=AUTH
        )
        assert created.status_code == 201
    finally:
        assert stop_process(process) == 0
    process, base_url = start_process(port, state)
    try:
        ticket_id = created.json()["ticket"]["id"]
        again = httpx.get(f"{base_url}/api/v2/tickets/{ticket_id}.json", auth=AUTH)
        assert again.json()["ticket"]["subject"] == "Kept"
    finally:
        stop_process(process)
