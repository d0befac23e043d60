"""Slack delivery that holds at Slack's limits

- slack_pace: per pacing key (method tier and resolved channel id), the epoch second the next call may
  go; replicas claim slots with a conditional update, so together they never outrun Slack.
- outbox.failing_since: when the current run of real failures began (the give-up budget counts from
  there, not from the time a row waited in line).
- outbox.in_doubt_at: a write was handed to the service and no answer came back (timeout, reset); the
  retry looks for it first (a card's metadata in the channel history) instead of sending it again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_pace",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failing_since", storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("in_doubt_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("in_doubt_at")
        batch_op.drop_column("failing_since")
    op.drop_table("slack_pace")
