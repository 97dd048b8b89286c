"""Inbox tokens: how a customer's own app reads its in-app inbox without an API key.

Like Braze's SDK authentication, the brand's backend (which knows who is signed in) asks
for a token for that customer (`POST /v1/customers/{id}/inbox-token` with a `read` key) and
hands it to the app; the token opens that customer's inbox and nothing else, until it
expires. It is an HMAC over the customer id and the expiry, so it needs no database row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

PREFIX = "inbox."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(key: bytes, customer_id: str, expires: datetime) -> str:
    body = _b64(f"{customer_id}\n{int(expires.timestamp())}".encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{PREFIX}{body}.{_b64(mac)}"


def customer(key: bytes, token: str, now: datetime | None = None) -> str | None:
    """The customer a valid, unexpired token was made for; else None."""
    if not token.startswith(PREFIX) or len(token) > 1024:
        return None
    body, _, mac = token[len(PREFIX) :].partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        customer_id, expires = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        )
        expiry = int(expires)
    except ValueError:
        return None
    if (now or datetime.now(UTC)).timestamp() > expiry:
        return None
    return customer_id
