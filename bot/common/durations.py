"""Durations written like `90s`, `15m`, `4h`, `2d` or `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse `90s`, `15m`, `4h`, `1h30m`, `2d`; a bare number is seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration must be written like 90s, 15m, 4h or 2d")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m, 4h, 1h30m or 2d")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(cleaned)))


def format_duration(delta: timedelta) -> str:
    """Short human form: `4h`, `15m`, `1h 30m`, `45s`."""
    seconds = int(round(abs(delta.total_seconds())))
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if secs and not days and not hours:
        parts.append(f"{secs}s")
    return " ".join(parts)
