"""The Slack Web API client: aimed at SLACK_API_URL, waiting out 429s as Retry-After says.

A connection error after a request was sent leaves its outcome unknown: Slack may have posted the
message. Repeating it blindly would post it twice, so the connection-error retry never repeats a
method that creates something (`chat.postMessage`, ...). The outbox's client does no retries of its
own at all: the outbox row is retried, and a card in doubt is looked for in the channel first.
"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.app.settings import Settings, secret

# Methods whose repeat creates a second message, file share or channel.
NOT_IDEMPOTENT = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.scheduleMessage",
        "chat.meMessage",
        "files.completeUploadExternal",
        "files.upload",
        "conversations.create",
    }
)


def api_method(url: str) -> str:
    """The Web API method a request URL calls (`https://slack.com/api/chat.postMessage` -> `chat.postMessage`)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class SafeConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """slack_sdk's connection-error retry, except for methods a repeat would do twice."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if api_method(request.url) in NOT_IDEMPOTENT:
            return False
        return bool(super()._can_retry(state=state, request=request, response=response, error=error))


def make_web_client(
    settings: Settings, *, rate_limit_retries: int = 2, connection_retries: int = 1
) -> WebClient:
    """A WebClient for the bot token; short 429 waits are done here, longer outages by the outbox."""
    base = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(
        token=secret(settings.slack_bot_token),
        base_url=base,
        timeout=int(max(1, settings.slack_timeout_seconds)),
    )
    client.retry_handlers.clear()
    if connection_retries:
        client.retry_handlers.append(SafeConnectionErrorRetryHandler(max_retry_count=connection_retries))
    if rate_limit_retries:
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    return client
