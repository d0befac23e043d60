"""The composition root: settings, runtime (typed services), workers, the ASGI app, the `hitl` CLI and its commands."""
