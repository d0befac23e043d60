"""`hitl serve`: the HTTP service (ingest API, Slack endpoint) or Slack Socket Mode."""

from __future__ import annotations

import argparse
import logging

from bot.app.settings import load_settings, secret_values


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the service (HTTP, or Slack Socket Mode with --socket)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--socket", action="store_true", help="take Slack traffic over Socket Mode (needs SLACK_APP_TOKEN)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.check_for_serve(socket_mode=args.socket)  # before the heavy imports: a typo fails fast

    import uvicorn

    from bot.app.asgi import create_app
    from bot.app.logging import configure_logging
    from bot.app.runtime import build_runtime
    from storage.db import make_engine

    # An empty SQLite file is never created here: `hitl db upgrade` makes the database.
    runtime = build_runtime(settings, engine=make_engine(settings.database_url, must_exist=True))
    configure_logging(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        fmt=settings.log_format,
        instance_id=runtime.instance_id,
        secrets=secret_values(settings),
    )
    runtime.services.socket_mode = args.socket
    app = create_app(runtime)
    if args.socket:
        from handlers.slack import add_socket_mode

        add_socket_mode(runtime)  # Slack over a WebSocket; uvicorn still serves the ingest API
    # log_config=None: uvicorn's lines go through our handler (JSON when asked, redacted).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False, log_config=None)
    return 0
