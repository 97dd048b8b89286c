"""Request signatures, both directions.

- Our webhooks: `Journeys-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, the
  scheme Stripe made familiar; receivers check the MAC and that `t` is recent (replays).
- Twilio's status callbacks: `X-Twilio-Signature`, base64 HMAC-SHA1 of the full URL
  followed by every POST parameter, name then value, sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

WEBHOOK_HEADER = "Journeys-Signature"
TWILIO_HEADER = "X-Twilio-Signature"


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(
    secret: bytes, header: str, body: bytes, *, now: float, tolerance: float = 300
) -> bool:
    """True when `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_webhook(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.encode())


def sign_twilio(auth_token: bytes, url: str, params: Mapping[str, str]) -> str:
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token, data.encode(), hashlib.sha1).digest()).decode()


def verify_twilio(auth_token: bytes, url: str, params: Mapping[str, str], signature: str) -> bool:
    return hmac.compare_digest(sign_twilio(auth_token, url, params).encode(), signature.encode())
