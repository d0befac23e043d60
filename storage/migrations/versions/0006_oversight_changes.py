"""QA of human decisions and recorded oversight changes (issue 12)

- oversight_changes: a manager accepting an oversight verdict (from Slack or `hitl review --apply`):
  the type, the verdict, the thresholds before and after, why, who, when, the policy diff, and when the
  running policy was seen to contain it (applied_at);
- decisions (actor_id, decided_at, seconds_to_decision) for approvals only: the fast-approver warning
  reads each reviewer's approvals of a period from this partial index (a range per reviewer, covering).

Human-approved replies drawn for QA carry the same `qa_sampled` marker as auto-sent ones, so the unrated
QA backlog keeps reading ix_reviews_qa_sampled (0004).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Same text as storage.models.APPROVALS (a migration keeps its own copy; queries repeat it verbatim).
APPROVALS = "stage = 'review' AND decision = 'approve'"


def upgrade() -> None:
    op.create_table(
        "oversight_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_type", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("accepted_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("applied_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_oversight_changes_type_accepted",
        "oversight_changes",
        ["interaction_type", "accepted_at"],
        unique=False,
    )
    op.create_index(
        "ix_decisions_approvals",
        "decisions",
        ["actor_id", "decided_at", "seconds_to_decision"],
        unique=False,
        sqlite_where=sa.text(APPROVALS),
        postgresql_where=sa.text(APPROVALS),
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_approvals", table_name="decisions")
    op.drop_index("ix_oversight_changes_type_accepted", table_name="oversight_changes")
    op.drop_table("oversight_changes")
