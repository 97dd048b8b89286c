"""Request signatures, both directions.

- Our webhooks: `Journeys-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, the
  scheme Stripe made familiar; receivers check the MAC and that `t` is recent (replays).
- Twilio's status callbacks: `X-Twilio-Signature`, base64 HMAC-SHA1 of the full URL
  followed by every POST parameter, name then value, sorted by name.
- Amazon SNS (SES's notifications): RSA over the message's canonical string (its fields
  `Key\nValue\n`, in AWS's order), SHA1 for `SignatureVersion` 1, SHA256 for 2, with the
  certificate at `SigningCertURL` (where it may be fetched from is `SNS_CERT_URL`).
- SendGrid's Event Webhook: ECDSA P-256 with SHA256 over the timestamp header followed by
  the raw body, the signature base64 DER in `X-Twilio-Email-Event-Webhook-Signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

WEBHOOK_HEADER = "Journeys-Signature"
TWILIO_HEADER = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SNS_CERT_URL = re.compile(
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[A-Za-z0-9]+\.pem$"
)
"""Where a genuine SNS signing certificate lives (AWS's guidance: check the host before
fetching). A message naming any other URL is refused unread."""
SNS_SUBSCRIBE_URL = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?")
_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


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


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes | None:
    """The canonical string an SNS message is signed over; None for a type SNS does not
    send."""
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        return None
    parts = [f"{k}\n{message[k]}\n" for k in fields if message.get(k) is not None]
    return "".join(parts).encode()


def _sns_hash(message: Mapping[str, Any]) -> hashes.HashAlgorithm | None:
    version = str(message.get("SignatureVersion"))
    return {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)


def sign_sns(private_key: rsa.RSAPrivateKey, message: Mapping[str, Any]) -> str:
    """The `Signature` SNS puts on `message` (the sandbox signs as SNS does)."""
    body, algorithm = sns_string_to_sign(message), _sns_hash(message)
    assert body is not None and algorithm is not None
    return base64.b64encode(private_key.sign(body, padding.PKCS1v15(), algorithm)).decode()


def verify_sns(certificate: x509.Certificate, message: Mapping[str, Any]) -> bool:
    """True when the certificate's key signed the message (its canonical string)."""
    body, algorithm = sns_string_to_sign(message), _sns_hash(message)
    key = certificate.public_key()
    if body is None or algorithm is None or not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key.verify(signature, body, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    payload = timestamp.encode() + body
    return base64.b64encode(private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def verify_sendgrid(public_key: str, timestamp: str, body: bytes, signature: str) -> bool:
    """True when SendGrid's key (base64 DER, as its Mail Settings show it) signed the
    timestamp and body."""
    try:
        key = load_der_public_key(base64.b64decode(public_key))
        raw = base64.b64decode(signature, validate=True)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
