"""Small formatters the reports share: rates, durations, periods, plurals and monospace tables."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.common.durations import format_duration

DATE_FORMAT = "%Y-%m-%d %H:%M"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def secs(x: float | None) -> str:
    return "—" if x is None else format_duration(timedelta(seconds=x))


def span_label(period: timedelta) -> str:
    """`7d`, `30d`, `24h`, `36h`: a period as the user would write it."""
    seconds = int(period.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return format_duration(period)


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 reject`, `2 rejects`."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def dates_label(since: datetime, until: datetime) -> str:
    """`2026-11-23 12:00 → 2026-11-30 12:00 UTC`."""
    return f"{since.strftime(DATE_FORMAT)} → {until.strftime(DATE_FORMAT)} UTC"


def format_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            (v.ljust(w) if i == 0 else v.rjust(w))
            for i, (v, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return [line(columns), *(line(r) for r in rows)]


def code_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], limit: int = 2900) -> str:
    """A monospace table in a code block, cut to whole rows within `limit` characters."""
    lines = format_table(columns, rows)
    kept: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in kept) + len(line) + 20 > limit:
            kept.append(f"… {len(lines) - len(kept)} more")
            break
        kept.append(line)
    return "```" + "\n".join(kept) + "```"
