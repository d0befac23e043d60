"""The oversight review: where the AI can be trusted with more, and where it needs more humans.

`whatif` (threshold replays), `recommend` (expand / keep / increase per type), `signals` (warning
signs, calibration): pure rules over aggregated numbers. `review` runs the queries and applies them
(`build_review`); `text` renders it for the terminal, `bot.slack.blocks.reports` for Slack.
"""

from bot.reporting.oversight.recommend import VERDICT_LABEL, Recommendation, Verdict, recommend
from bot.reporting.oversight.review import OversightReview, build_review
from bot.reporting.oversight.text import render_review_text

__all__ = [
    "VERDICT_LABEL",
    "OversightReview",
    "Recommendation",
    "Verdict",
    "build_review",
    "recommend",
    "render_review_text",
]
