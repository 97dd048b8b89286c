"""Runtime settings, read from `JOURNEYS_*` environment variables (or a `.env` file).

Secrets (SMTP password, database credentials in the URL) come from here, never from code.
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.guardrails import FrequencyCap, QuietHours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOURNEYS_", env_file=".env", extra="ignore", env_parse_none_str="null"
    )

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

    public_url: str = "http://127.0.0.1:8000"
    """Where customers reach the API (List-Unsubscribe links in emails)."""
    unsubscribe_secret: SecretStr | None = None
    """Signs unsubscribe links. Default: a random key kept in `data_dir` (shared by the
    embedded default's processes); set it when the worker and API run apart."""
    unsubscribe_event: str = "unsubscribed"
    """The event that withdraws marketing consent (properties.channel: one channel, else
    all); the API's unsubscribe endpoints send it too, so `exit_when` ends journeys."""

    # Guardrails across all journeys (JSON in the environment, e.g.
    # JOURNEYS_FREQUENCY_CAPS='[{"limit": 3, "window": "P7D"}]', JOURNEYS_QUIET_HOURS=null).
    frequency_caps: list[FrequencyCap] = Field(
        default_factory=lambda: [FrequencyCap(limit=3, window=timedelta(days=7))]
    )
    """Marketing messages per customer per rolling window, across every journey (a cap
    with `channel` counts that channel only)."""
    quiet_hours: QuietHours | None = QuietHours(start=time(21), end=time(8))
    """Marketing sends due in this daily window of the customer's time zone wait for its end."""
    arbitration_seconds: float = Field(default=0.25, ge=0)
    """How long a capped marketing send waits for rivals for the same customer's cap
    slots before the highest journey priority wins; 0 is first come, first served."""

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'journeys.db').resolve()}"
