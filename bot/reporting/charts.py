"""The stats chart: one tall PNG, panels stacked for a phone screen (matplotlib's Agg canvas, thread-safe).

Colours are the Okabe-Ito palette (told apart with every common colour-vision deficiency), and each
series also has its own hatch pattern and printed values, so nothing depends on telling red from green.
A period without data gets no chart at all: `stats_chart_png` answers None and the reply says why.
"""

from __future__ import annotations

import io
from typing import Any

from bot.reporting.stats.model import ROUTES, Stats
from bot.reporting.stats.text import has_data, period_label

# Okabe & Ito (2008), "Color Universal Design": safe for protan, deutan and tritan readers.
BLUE, ORANGE, SKY, GREEN, YELLOW, VERMILLION, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#D55E00",
    "#CC79A7",
    "#666666",
)
SERIES: dict[str, tuple[str, str]] = {  # colour, hatch
    "approve": (BLUE, ""),
    "edit": (SKY, ".."),
    "take_over": (PURPLE, "xx"),
    "reject": (VERMILLION, "//"),
    "auto_send": (YELLOW, "\\\\"),
}
ROUTE_SERIES: dict[str, tuple[str, str]] = {
    "auto_send": (YELLOW, "\\\\"),
    "review": (BLUE, ""),
    "take_over": (PURPLE, "xx"),
}
MAX_TYPES = 12
WIDTH_IN = 6.0  # 600 px at 100 dpi: a phone's width without shrinking the text to nothing
NO_CHART = "No chart: no drafts or decisions in this period."


def _bar_kw(series: tuple[str, str]) -> dict[str, Any]:
    color, hatch = series
    return {"color": color, "hatch": hatch, "edgecolor": "#222222", "linewidth": 0.5}


def _legend(ax: Any, columns: int) -> None:
    """The legend under the panel, where it never hides a bar."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=columns, frameon=False)


def _totals(ax: Any, totals: list[float]) -> None:
    """Each stacked bar's total printed after it, with room on the right to read it."""
    for y, total in enumerate(totals):
        ax.text(total, y, f" {total:.0f}", va="center", fontsize=8)
    ax.set_xlim(0, max([*totals, 1.0]) * 1.15)


def _decision_mix(ax: Any, stats: Stats, types: list[str]) -> None:
    left = [0.0] * len(types)
    for kind in ("approve", "edit", "take_over", "reject", "auto_send"):
        values = [float(getattr(stats.by_type[t], kind)) for t in types]
        ax.barh(types, values, left=left, label=kind.replace("_", " "), **_bar_kw(SERIES[kind]))
        left = [a + b for a, b in zip(left, values, strict=True)]
    _totals(ax, left)
    ax.set_title("Decisions by interaction type", loc="left")
    _legend(ax, 3)


def _rate_bars(
    ax: Any, ys: list[float], rates: list[float | None], label: str, series: tuple[str, str]
) -> None:
    """One bar per type at its rate; a type without the rate gets a printed "no data", not a 0% bar."""
    bars = ax.barh(ys, [100 * (r or 0) for r in rates], height=0.4, label=label, **_bar_kw(series))
    ax.bar_label(bars, labels=["no data" if r is None else f"{r:.0%}" for r in rates], fontsize=7, padding=2)


def _rates(ax: Any, stats: Stats, types: list[str]) -> None:
    ys = [float(y) for y in range(len(types))]
    err = [stats.by_type[t].error_rate for t in types]
    qa = [stats.by_type[t].qa_pass_rate for t in types]
    _rate_bars(ax, [y + 0.2 for y in ys], err, "AI error rate (rejects + heavy edits)", (VERMILLION, "//"))
    _rate_bars(ax, [y - 0.2 for y in ys], qa, "QA pass rate of auto-sent", (BLUE, ""))
    ax.set_yticks(ys, types)
    ax.set_xlim(0, 115)
    ax.xaxis.set_major_formatter("{x:.0f}%")
    ax.set_title("AI error rate and QA pass rate", loc="left")
    _legend(ax, 2)


def _volume(ax: Any, stats: Stats) -> None:
    tiers = sorted({tier for _, tier in stats.volume})
    left = [0.0] * len(tiers)
    for route in ROUTES:
        values = [float(stats.volume.get((route, tier), 0)) for tier in tiers]
        ax.barh(tiers, values, left=left, label=route.replace("_", " "), **_bar_kw(ROUTE_SERIES[route]))
        left = [a + b for a, b in zip(left, values, strict=True)]
    _totals(ax, left)
    ax.set_title("Drafts by tier and route", loc="left")
    _legend(ax, 3)


def _sla(ax: Any, stats: Stats, types: list[str]) -> None:
    met = [float(stats.by_type[t].sla_met) for t in types]
    breached = [float(stats.by_type[t].sla_breached) for t in types]
    ax.barh(types, met, label="SLA met", **_bar_kw((BLUE, "")))
    bars = ax.barh(types, breached, left=met, label="SLA breached", **_bar_kw((ORANGE, "//")))
    ax.bar_label(bars, labels=[f" {b:.0f} breached" if b else "" for b in breached], fontsize=7)
    ax.set_xlim(0, max([a + b for a, b in zip(met, breached, strict=True)] + [1.0]) * 1.3)
    ax.set_title(
        f"SLA · decision median {_mins(stats.median_seconds)}, p90 {_mins(stats.p90_seconds)}", loc="left"
    )
    _legend(ax, 2)


def stats_chart_png(stats: Stats) -> bytes | None:
    """Four panels stacked in one tall image; None for a period with no data (say NO_CHART instead)."""
    if not has_data(stats):
        return None
    from matplotlib.figure import Figure  # imported here: matplotlib takes a moment to load

    types = list(stats.by_type)[:MAX_TYPES][::-1]  # biggest on top in horizontal bars
    heights = _panel_heights(stats, types)
    fig = Figure(figsize=(WIDTH_IN, 1.0 + sum(heights)), dpi=100)
    fig.set_layout_engine("constrained")
    fig.suptitle(
        f"hitl stats · {period_label(stats)}\n{stats.since:%Y-%m-%d} → {stats.until:%Y-%m-%d}",
        fontsize=11,
        fontweight="bold",
    )
    mix, rates, vol, sla = fig.subplots(4, 1, height_ratios=heights)
    _decision_mix(mix, stats, types)
    _rates(rates, stats, types)
    _volume(vol, stats)
    _sla(sla, stats, types)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _panel_heights(stats: Stats, types: list[str]) -> list[float]:
    """Inches per panel (decision mix, rates, volume, SLA): room for each bar and the legend."""
    per_type = 1.7 + 0.35 * max(len(types), 1)
    per_tier = 1.7 + 0.35 * max(len({tier for _, tier in stats.volume}), 1)
    return [per_type, per_type, per_tier, per_type]


def _mins(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"
