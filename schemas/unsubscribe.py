"""Signed unsubscribe links (RFC 8058 one-click), made by the email channel and checked
by the API. The token names the customer and channel and carries an HMAC-SHA256, so a link
cannot be forged for another customer; it needs no database row. (The key:
`storage.secrets.unsubscribe_key`.)"""

from __future__ import annotations

import base64
import hashlib
import hmac

from journeys.schemas.settings import Settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key: bytes, customer_id: str, channel: str) -> str:
    body = _b64(f"{customer_id}\n{channel}".encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def verify(key: bytes, value: str) -> tuple[str, str] | None:
    """(customer_id, channel) when `value` is a token signed with `key`, else None."""
    body, _, mac = value.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        customer_id, channel = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        )
    except (ValueError, UnicodeDecodeError):
        return None
    return customer_id, channel


def link(settings: Settings, key: bytes, customer_id: str, channel: str) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/unsubscribe/{token(key, customer_id, channel)}"
