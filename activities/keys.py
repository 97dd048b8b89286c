"""Secrets that have a safe default: the configured value, else a random key kept in the
data folder, created once and shared by every process of the embedded default."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from schemas.settings import Settings


def secret(settings: Settings, configured: SecretStr | None, name: str) -> bytes:
    if configured is not None:
        return configured.get_secret_value().encode()
    path = Path(settings.data_dir) / f"{name}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x") as handle:  # exclusive: two processes starting agree on one
                handle.write(secrets.token_hex(32))
        except FileExistsError:
            pass
        path.chmod(0o600)
    return path.read_text().strip().encode()


def services_key(settings: Settings) -> bytes:
    """What workers show the built-in services on the API (the `decide` scope only)."""
    return secret(settings, settings.services_key, "services")
