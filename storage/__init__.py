"""The SQL database (SQLite by default, PostgreSQL by URL) through sqlmodel: tables, the
engine, and one small store per concern. Temporal keeps workflow state; this keeps the rest."""
