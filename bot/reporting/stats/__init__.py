"""`/hitl stats`: `model` (the typed `Stats`), `query` (`compute_stats` over the feedback store), `text`.

Block Kit for Slack is in `bot.slack.blocks.reports`.
"""

from bot.reporting.stats.model import BadPeriod, Band, Counts, Stats, is_period, parse_period
from bot.reporting.stats.query import compute_stats, percentiles
from bot.reporting.stats.text import render_stats_text

__all__ = [
    "BadPeriod",
    "Band",
    "Counts",
    "Stats",
    "compute_stats",
    "is_period",
    "parse_period",
    "percentiles",
    "render_stats_text",
]
