"""stats rollup (issues 12 and 15): closed days and hours of the feedback store aggregated once

- stats_rollup: per (params_key, start, unit) the JSON counts of each interaction type over one closed
  UTC day or hour (bot.reporting.stats.rollup); `/hitl stats` and `/hitl review` sum these and read
  only the open edges of their period live;
- stats_rollup_epochs: per UTC day a generation, bumped in the transaction that writes a late fact
  about the day (an outcome with an earlier `at`, a review moved to another tier), so cached rows of
  that day computed before it are recomputed;
- outcomes (at, interaction_type, kind, decision, satisfied): one day's outcomes of every type as one
  index range (ix_outcomes_stats leads with the type).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_rollup",
        sa.Column("params_key", sa.String(length=64), nullable=False),
        sa.Column("start", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("computed_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("params_key", "start", "unit"),
    )
    op.create_table(
        "stats_rollup_epochs",
        sa.Column("day", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_index(
        "ix_outcomes_at",
        "outcomes",
        ["at", "interaction_type", "kind", "decision", "satisfied"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outcomes_at", table_name="outcomes")
    op.drop_table("stats_rollup_epochs")
    op.drop_table("stats_rollup")
