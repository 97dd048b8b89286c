"""Alembic's environment: migrations run on the connection `storage.schema` hands over
(already holding the lock that keeps two processes from migrating at once)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from journeys.storage import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite copies the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
