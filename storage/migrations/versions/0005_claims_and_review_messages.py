"""claims and review messages: who works a ticket, and the Slack messages that act on a review (issue 13)

- reviews.claimed_by / claimed_by_name / claimed_at: Claim, Unclaim and Reassign (claiming never decides);
- review_messages: SLA warnings and breach pings, DMs and dead-letter alerts posted about a review, so
  their buttons are accepted as the review's own and they are edited once the review is decided.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_by_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claimed_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "review_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "ts", name="uq_review_messages_channel_ts"),
    )
    op.create_index("ix_review_messages_review_id", "review_messages", ["review_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_review_messages_review_id", table_name="review_messages")
    op.drop_table("review_messages")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by_name")
        batch.drop_column("claimed_by")
