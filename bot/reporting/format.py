"""Small formatters the reports share: rates, counts, money, durations, periods, plurals and tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.common.durations import format_duration

DATE_FORMAT = "%Y-%m-%d %H:%M"
PHONE_WIDTH = 40  # characters a phone shows on one line of a code block; no report line is wider


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def pct1(x: float | None) -> str:
    """A rate with one decimal (3.1%), for small defect rates where 3% and 4% differ."""
    return "—" if x is None else f"{x:.1%}"


def count(n: int) -> str:
    """`1,240`: a count with thousands separators."""
    return f"{n:,}"


def money(x: float) -> str:
    """`$214`, `$12.5k`, `$1.2M`: an account value short enough for a phone line."""
    if abs(x) >= 1_000_000:
        return f"${x / 1_000_000:.1f}M"
    if abs(x) >= 10_000:
        return f"${x / 1000:.0f}k"
    if abs(x) >= 1000:
        return f"${x / 1000:.1f}k"
    return f"${x:.0f}"


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


def top_n(items: Sequence[str], n: int, *, more: str = "more") -> list[str]:
    """The first `n` items, then `and 3 more` when some were left out."""
    shown = list(items[:n])
    if len(items) > n:
        shown.append(f"and {len(items) - n} {more}")
    return shown


def format_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned lines for the terminal: the first column left-aligned, the others right-aligned."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            (v.ljust(w) if i == 0 else v.rjust(w))
            for i, (v, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return [line(columns), *(line(r) for r in rows)]
