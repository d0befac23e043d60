"""Which hosts a draft's `callback_url` may name (HITL_CALLBACK_HOSTS), and the error when it names another."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.app.settings import Settings


class CallbackNotAllowed(ValueError):
    """A draft's `callback_url` cannot be used; answered as 422 naming the field."""

    field = "callback_url"


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """HITL_CALLBACK_HOSTS as a set of lower-case `host` or `host:port` entries."""
    return frozenset(h.strip().lower() for h in settings.callback_hosts.split(",") if h.strip())


def host_allowed(url: str, hosts: frozenset[str]) -> bool:
    """True when the URL's host (any port), or its exact `host:port`, is in `hosts`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    try:
        port = parts.port
    except ValueError:
        return False
    return host in hosts or (port is not None and f"{host}:{port}" in hosts)


def check_callback_url(url: str | None, settings: Settings | None) -> None:
    """Raise CallbackNotAllowed unless `url` is absent, or allowed and signable on this server."""
    if url is None:
        return
    if settings is None:
        raise CallbackNotAllowed("decision callbacks are not available on this path")
    hosts = allowed_hosts(settings)
    if not hosts:
        raise CallbackNotAllowed("decision callbacks are off on this server (HITL_CALLBACK_HOSTS is empty)")
    if not host_allowed(url, hosts):
        host = urlsplit(url).netloc or url
        raise CallbackNotAllowed(f"host {host!r} is not in HITL_CALLBACK_HOSTS ({', '.join(sorted(hosts))})")
    secret = settings.callback_secret
    if secret is None or not secret.get_secret_value():
        raise CallbackNotAllowed("this server cannot sign callbacks (HITL_CALLBACK_SECRET is not set)")
