"""Secrets that have a safe default: the configured value, else a random key kept in the
data folder, created once and shared by every process of the embedded default."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from journeys.schemas.settings import Settings


class MissingSecret(RuntimeError):
    """A secret is neither configured nor may be generated."""


def secret(
    settings: Settings,
    configured: SecretStr | None,
    name: str,
    make: Callable[[], str] = lambda: secrets.token_hex(32),
) -> bytes:
    """`configured`, else `{data_dir}/{name}.key`, made by `make` on first use where the
    settings allow (`generate_secrets`); else MissingSecret."""
    if configured is not None:
        return configured.get_secret_value().encode()
    path = Path(settings.data_dir) / f"{name}.key"
    if not path.exists():
        if not settings.generate_secrets:
            raise MissingSecret(f"no {name} secret is configured (JOURNEYS_*; see --help)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # exclusive, and 0600 from the start: two processes starting agree on one
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(make() + "\n")
        except FileExistsError:
            pass
    return path.read_text().strip().encode()


def services_key(settings: Settings) -> bytes:
    """What workers show the built-in services on the API (the `decide` scope only)."""
    return secret(settings, settings.services_key, "services")


def unsubscribe_key(settings: Settings) -> bytes:
    """What signs unsubscribe links (`schemas.unsubscribe`)."""
    return secret(settings, settings.unsubscribe_secret, "unsubscribe")


def tracking_key(settings: Settings) -> bytes:
    """What signs the tracking tokens of emails' pixels and links (`schemas.reactions`)."""
    return secret(settings, settings.tracking_secret, "tracking")


def webhook_key(settings: Settings) -> bytes:
    """What the webhook channel signs with and the sandbox's receiver checks with."""
    return secret(settings, settings.webhook_secret, "webhook")


def twilio_token(settings: Settings) -> bytes | None:
    """Twilio's auth token: the Basic-auth password of each send and the key its status
    callbacks are signed with. Configured, else (with the sandbox on) one kept in the data
    folder that the worker and the sandbox share; else None: no callback is trusted."""
    if settings.twilio_auth_token is not None or settings.sandbox:
        return secret(settings, settings.twilio_auth_token, "twilio")
    return None


def fcm_token(settings: Settings) -> bytes | None:
    """FCM's bearer token: configured, else (with the sandbox on) one kept in the data
    folder that the worker and the sandbox share."""
    if settings.fcm_access_token is not None or settings.sandbox:
        return secret(settings, settings.fcm_access_token, "fcm")
    return None
