"""pace_buckets and device_sends: each paced bucket's next free slot and run-time ceiling,
the devices a push message was accepted for, and the ledger by status (the queue views)

Revision ID: 0007
Revises: 0006
Created: 2026-12-07 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pace_buckets",
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("tat", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("tail", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("per_second", sa.Float(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    op.create_table(
        "device_sends",
        sa.Column("delivery_key", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("message_name", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.PrimaryKeyConstraint("delivery_key", "token_hash"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_status", ["status", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status")
    op.drop_table("device_sends")
    op.drop_table("pace_buckets")
