"""calibration sessions (issue 12)

- calibration_sessions: who ran `/hitl calibrate`, where, for which type and how many reviews; closed by
  `/hitl calibrate report`;
- calibration_items: the reviews of a session in order, each with its original decision mapped to a
  verdict (good / defect) and the Slack card it was shown on;
- calibration_votes: one verdict per (session, review, voter), replaced by a second click.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calibration_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("interaction_type", sa.String(length=64), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("posted_channel", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_calibration_sessions_channel_created",
        "calibration_sessions",
        ["channel", "created_at"],
        unique=False,
    )
    op.create_table(
        "calibration_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("interaction_type", sa.String(length=64), nullable=False),
        sa.Column("original_decision", sa.String(length=16), nullable=False),
        sa.Column("original_verdict", sa.String(length=16), nullable=False),
        sa.Column("original_category", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("ts", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "position", name="uq_calibration_items_session_position"),
        sa.UniqueConstraint("session_id", "review_id", name="uq_calibration_items_session_review"),
    )
    op.create_index("ix_calibration_items_review_id", "calibration_items", ["review_id"], unique=False)
    op.create_table(
        "calibration_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("voter", sa.String(length=64), nullable=False),
        sa.Column("voter_name", sa.String(length=200), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("voted_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "session_id", "review_id", "voter", name="uq_calibration_votes_session_review_voter"
        ),
    )
    op.create_index("ix_calibration_votes_session_id", "calibration_votes", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_calibration_votes_session_id", table_name="calibration_votes")
    op.drop_table("calibration_votes")
    op.drop_index("ix_calibration_items_review_id", table_name="calibration_items")
    op.drop_table("calibration_items")
    op.drop_index("ix_calibration_sessions_channel_created", table_name="calibration_sessions")
    op.drop_table("calibration_sessions")
