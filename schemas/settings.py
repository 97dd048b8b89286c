"""Runtime settings, read from `JOURNEYS_*` environment variables (or a `.env` file).

Secrets (SMTP password, database credentials in the URL) come from here, never from code.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".journeys")
    database_url: str | None = None
    """SQLAlchemy async URL; default is a SQLite file in `data_dir`. PostgreSQL:
    `postgresql+psycopg://user@host:5432/db`."""

    database_schema: str | None = None
    """PostgreSQL schema to use (search_path); default is the server's."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "journeys"
    temporal_ui_port: int = 8233
    strict_sandbox: bool = False
    """Re-import and police `workflows/` in the sandbox on every run (tests do)."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    email_from: str = "journeys@example.com"

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'journeys.db').resolve()}"
