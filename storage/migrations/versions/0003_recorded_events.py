"""recorded events: the event log a backtest replays

Revision ID: 0003
Revises: 0002
Created: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recorded_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("timestamp", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recorded_events", schema=None) as batch_op:
        batch_op.create_index("ix_recorded_events_at", ["timestamp", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_recorded_events_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recorded_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recorded_events_customer_id"))
        batch_op.drop_index("ix_recorded_events_at")
    op.drop_table("recorded_events")
