"""PNG charts of the stats (matplotlib's Agg canvas: no display, safe in worker threads)."""

from __future__ import annotations

import io
from typing import Any

from bot.reporting.stats.model import ROUTES, Stats
from bot.reporting.stats.text import period_label

COLORS = {
    "approve": "#2e7d32",
    "edit": "#f9a825",
    "take_over": "#6a1b9a",
    "reject": "#c62828",
    "auto_send": "#1565c0",
}
ROUTE_COLORS = {"auto_send": "#1565c0", "review": "#f9a825", "take_over": "#6a1b9a"}
MAX_TYPES = 12


def _decision_mix(ax: Any, stats: Stats, types: list[str]) -> None:
    left = [0.0] * len(types)
    for kind in ("approve", "edit", "take_over", "reject", "auto_send"):
        values = [float(getattr(stats.by_type[t], kind)) for t in types]
        ax.barh(types, values, left=left, color=COLORS[kind], label=kind.replace("_", " "))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title("Decisions by interaction type")
    ax.legend(fontsize=8, loc="lower right")


def _rates(ax: Any, stats: Stats, types: list[str]) -> None:
    ys = range(len(types))
    err = [100 * (stats.by_type[t].error_rate or 0) for t in types]
    qa = [100 * (stats.by_type[t].qa_pass_rate or 0) for t in types]
    ax.barh(
        [y + 0.2 for y in ys], err, height=0.4, color="#c62828", label="AI error rate (rejects + heavy edits)"
    )
    ax.barh([y - 0.2 for y in ys], qa, height=0.4, color="#2e7d32", label="QA pass rate of auto-sent")
    ax.set_yticks(list(ys), types)
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.set_title("AI error rate and QA pass rate")
    ax.legend(fontsize=8, loc="lower right")


def _volume(ax: Any, stats: Stats) -> None:
    tiers = sorted({tier for _, tier in stats.volume})
    bottom = [0.0] * len(tiers)
    for route in ROUTES:
        values = [float(stats.volume.get((route, tier), 0)) for tier in tiers]
        ax.bar(tiers, values, bottom=bottom, color=ROUTE_COLORS[route], label=route.replace("_", " "))
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.set_title("Drafts by tier and route")
    ax.legend(fontsize=8)


def _sla(ax: Any, stats: Stats, types: list[str]) -> None:
    met = [float(stats.by_type[t].sla_met) for t in types]
    breached = [float(stats.by_type[t].sla_breached) for t in types]
    ax.barh(types, met, color="#2e7d32", label="SLA met")
    ax.barh(types, breached, left=met, color="#c62828", label="SLA breached")
    ax.set_title(
        f"SLA · time to decision median {_mins(stats.median_seconds)}, p90 {_mins(stats.p90_seconds)}"
    )
    ax.legend(fontsize=8, loc="lower right")


def stats_chart_png(stats: Stats) -> bytes:
    """Four panels: decision mix, AI error and QA pass rates by type, volume by tier and route, SLA by type."""
    from matplotlib.figure import Figure  # imported here: matplotlib takes a moment to load

    types = list(stats.by_type)[:MAX_TYPES][::-1]  # biggest on top in horizontal bars
    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    fig.suptitle(
        f"hitl stats · {period_label(stats)} · {stats.since:%Y-%m-%d} → {stats.until:%Y-%m-%d}",
        fontsize=13,
        fontweight="bold",
    )
    (mix, rates), (vol, sla) = fig.subplots(2, 2)
    _decision_mix(mix, stats, types)
    _rates(rates, stats, types)
    _volume(vol, stats)
    _sla(sla, stats, types)
    if not types:
        for ax in (mix, rates, sla):
            ax.text(0.5, 0.5, "no decisions in this period", ha="center", va="center", transform=ax.transAxes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _mins(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"
