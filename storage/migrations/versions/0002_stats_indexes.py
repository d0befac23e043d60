"""indexes for manager stats and the oversight review

`/hitl stats` reads a period from these indexes alone, never from the wide rows that carry
customer text (bench/stats.py: 1,000,000 decisions):
- decisions (interaction_type, stage, decision, decided_at, ...): one range per type and decision
  kind, covering every column the aggregates read;
- decisions (seconds_to_decision, ...) for human decisions only: time-to-decision percentiles by
  walking the index in order;
- decisions (interaction_type, stage, decided_at): the latest decisions of a type (what-if);
- reviews (interaction_type, route, tier, created_at): drafts per type, route and tier;
- reviews (status, interaction_type, sla_due_at): the queue by type and SLA;
- reviews (interaction_type, created_at) for drafts a repeat contact sent to humans only: the
  oversight review's "repeat contacts rising" without reading every draft.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Same text as storage.models.HUMAN_DECISIONS / REPEAT_CONTACT (a migration keeps its own copy: it must not
# change later; queries use the exact text so both databases match them to the partial indexes).
HUMAN_DECISIONS = "stage = 'review' AND decision IN ('approve', 'edit', 'take_over', 'reject')"
REPEAT_CONTACT = "CAST(reasons AS TEXT) LIKE '%\"repeat_contact\"%'"


def upgrade() -> None:
    op.create_index(
        "ix_decisions_stats",
        "decisions",
        [
            "interaction_type",
            "stage",
            "decision",
            "decided_at",
            "sla_breached",
            "route",
            "edit_distance",
            "defect_category",
            "confidence",
            "seconds_to_decision",
        ],
        unique=False,
    )
    op.create_index(
        "ix_decisions_human_seconds",
        "decisions",
        ["seconds_to_decision", "decided_at", "interaction_type"],
        unique=False,
        sqlite_where=sa.text(HUMAN_DECISIONS),
        postgresql_where=sa.text(HUMAN_DECISIONS),
    )
    op.create_index(
        "ix_decisions_type_stage_decided",
        "decisions",
        ["interaction_type", "stage", "decided_at"],
        unique=False,
    )
    op.create_index(
        "ix_reviews_stats", "reviews", ["interaction_type", "route", "tier", "created_at"], unique=False
    )
    op.create_index(
        "ix_reviews_pending", "reviews", ["status", "interaction_type", "sla_due_at"], unique=False
    )
    op.create_index(
        "ix_reviews_repeat_contact",
        "reviews",
        ["interaction_type", "created_at"],
        unique=False,
        sqlite_where=sa.text(REPEAT_CONTACT),
        postgresql_where=sa.text(REPEAT_CONTACT),
    )


def downgrade() -> None:
    op.drop_index("ix_reviews_repeat_contact", table_name="reviews")
    op.drop_index("ix_reviews_pending", table_name="reviews")
    op.drop_index("ix_reviews_stats", table_name="reviews")
    op.drop_index("ix_decisions_type_stage_decided", table_name="decisions")
    op.drop_index("ix_decisions_human_seconds", table_name="decisions")
    op.drop_index("ix_decisions_stats", table_name="decisions")
