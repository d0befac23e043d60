"""The Slack Web API client: aimed at SLACK_API_URL, waiting out 429s as Retry-After says."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.app.settings import Settings, secret


def make_web_client(settings: Settings, *, rate_limit_retries: int = 2) -> WebClient:
    """A WebClient for the bot token; short 429 waits are done here, longer outages by the outbox."""
    base = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(token=secret(settings.slack_bot_token), base_url=base, timeout=10)
    client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=1))
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    return client
