"""split_decisions: an operator's frozen weights or declared winner for a bandit split

Revision ID: 0006
Revises: 0005
Created: 2026-12-07 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "split_decisions",
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("split_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=True),
        sa.Column("arm", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "split_id"),
    )


def downgrade() -> None:
    op.drop_table("split_decisions")
