"""outcomes: CSAT, reopened and resolved per ticket, linked to the review and decision (issue 12)

- outcomes: one row per (ticket, kind), idempotent; ix_outcomes_stats covers the oversight review's
  aggregates (type, kind, decision, then the time range);
- reviews (interaction_type, status, created_at, customer_key): the replies of a period with their
  customer, so "came back within the window" is one seek per reply on ix_reviews_customer_created;
- reviews (interaction_type, created_at) for auto-sent replies drawn for QA only: the unrated QA backlog.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Same text as storage.models.QA_SAMPLED (a migration keeps its own copy; queries repeat it verbatim).
QA_SAMPLED = "CAST(extra AS TEXT) LIKE '%\"qa_sampled\": true%'"


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("satisfied", sa.Boolean(), nullable=True),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("interaction_type", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "kind", name="uq_outcomes_ticket_kind"),
    )
    op.create_index("ix_outcomes_review_id", "outcomes", ["review_id"], unique=False)
    op.create_index(
        "ix_outcomes_stats",
        "outcomes",
        ["interaction_type", "kind", "decision", "at", "satisfied", "score"],
        unique=False,
    )
    op.create_index(
        "ix_reviews_qa_sampled",
        "reviews",
        ["interaction_type", "created_at"],
        unique=False,
        sqlite_where=sa.text(QA_SAMPLED),
        postgresql_where=sa.text(QA_SAMPLED),
    )
    op.create_index(
        "ix_reviews_came_back",
        "reviews",
        ["interaction_type", "status", "created_at", "customer_key"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_reviews_qa_sampled", table_name="reviews")
    op.drop_index("ix_reviews_came_back", table_name="reviews")
    op.drop_index("ix_outcomes_stats", table_name="outcomes")
    op.drop_index("ix_outcomes_review_id", table_name="outcomes")
    op.drop_table("outcomes")
