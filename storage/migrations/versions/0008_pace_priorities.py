"""pace_buckets.tails: where a paced bucket's queue ends for each journey priority (a
queued send goes ahead of the lower priorities' sends)

Revision ID: 0008
Revises: 0007
Created: 2026-12-07 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pace_buckets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tails", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pace_buckets", schema=None) as batch_op:
        batch_op.drop_column("tails")
