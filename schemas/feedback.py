"""What email providers say about a message after the hand-off, in one shape.

Amazon SES publishes bounces, complaints and deliveries to an SNS topic (the identity's
feedback notifications use `notificationType`, a configuration set's event publishing
`eventType`; both are read). SendGrid's Event Webhook posts a JSON array of events. Each
becomes `Feedback`: the provider's own event id (what makes a replayed callback change
nothing), the kind, the address, and the ledger row the message's tag names
(`X-SES-MESSAGE-TAGS` / `X-SMTPAPI` unique args, written at the send).

Pure: no I/O. `usecases.feedback` applies them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

SANDBOX_TOPIC = "arn:aws:sns:us-east-1:000000000000:journeys-sandbox-ses"
"""The SNS topic of the sandbox's SES stand-in."""
TAG = "journeys_delivery"
"""The message tag (SES) or unique arg (SendGrid) that names the ledger row."""
Kind = Literal["delivered", "bounced", "complained", "failed", "unsubscribed"]


@dataclass(frozen=True)
class Feedback:
    source: str
    event_id: str
    kind: Kind
    address: str
    delivery_id: int | None
    at: datetime
    bounce: Literal["hard", "soft"] | None = None
    detail: str | None = None


def ses_tags(delivery_id: int, configuration_set: str | None = None) -> dict[str, str]:
    """The headers an email sent through SES's SMTP interface carries to be told about."""
    headers = {"X-SES-MESSAGE-TAGS": f"{TAG}={delivery_id}"}
    if configuration_set:
        headers["X-SES-CONFIGURATION-SET"] = configuration_set
    return headers


def sendgrid_tags(delivery_id: int) -> dict[str, str]:
    """The header an email sent through SendGrid's SMTP relay carries (its unique args
    come back on every event)."""
    return {"X-SMTPAPI": json.dumps({"unique_args": {TAG: str(delivery_id)}})}


def _delivery(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 19 else None


def _time(value: Any) -> datetime:
    """An ISO 8601 time or a Unix timestamp; now when absent or unreadable."""
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def from_ses(message_id: str, notification: Mapping[str, Any]) -> list[Feedback]:
    """An SES notification (the SNS message's `Message`, parsed): one feedback per
    recipient it names. Types other than bounce, complaint, delivery and reject say
    nothing here (opens and clicks are tracked by this product's own pixel and links)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    delivery = _delivery((mail.get("tags") or {}).get(TAG))
    out: list[Feedback] = []

    def add(address: Any, **fields: Any) -> None:
        if isinstance(address, str) and address:
            out.append(
                Feedback(
                    "ses", f"{message_id}:{len(out)}", address=address, delivery_id=delivery,
                    **fields,
                )
            )  # fmt: skip

    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        sub = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        for r in bounce.get("bouncedRecipients") or []:
            why = " ".join(str(x) for x in (r.get("status"), r.get("diagnosticCode")) if x)
            add(
                r.get("emailAddress"), kind="bounced", at=_time(bounce.get("timestamp")),
                bounce="hard" if hard else "soft", detail=f"{sub} {why}".strip()[:500],
            )  # fmt: skip
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        for r in complaint.get("complainedRecipients") or []:
            add(
                r.get("emailAddress"), kind="complained", at=_time(complaint.get("timestamp")),
                detail=str(complaint.get("complaintFeedbackType") or "")[:500] or None,
            )  # fmt: skip
    elif kind == "Delivery":
        delivered = notification.get("delivery") or {}
        for address in delivered.get("recipients") or []:
            add(address, kind="delivered", at=_time(delivered.get("timestamp")))
    elif kind == "Reject":
        for address in mail.get("destination") or []:
            detail = str((notification.get("reject") or {}).get("reason") or "")[:500]
            add(address, kind="failed", at=_time(mail.get("timestamp")), detail=detail)
    return out


SENDGRID_KINDS: dict[str, Kind] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "failed",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
"""SendGrid's events that say something here; `processed`, `deferred` (SendGrid retries
on its own), `open` and `click` (tracked by this product) do not."""


def from_sendgrid(events: list[Any]) -> list[Feedback]:
    """SendGrid's Event Webhook body: a bounce of `type` `blocked` is a soft bounce (the
    receiving server refused for now), any other a hard one."""
    out: list[Feedback] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = SENDGRID_KINDS.get(str(event.get("event")))
        address, event_id = event.get("email"), event.get("sg_event_id")
        if kind is None or not isinstance(address, str) or not isinstance(event_id, str):
            continue
        bounce: Literal["hard", "soft"] | None = None
        if kind == "bounced":
            bounce = "soft" if event.get("type") == "blocked" else "hard"
        why = " ".join(str(event[k]) for k in ("status", "reason") if event.get(k))
        out.append(
            Feedback(
                "sendgrid", event_id[:200], kind, address, _delivery(event.get(TAG)),
                _time(event.get("timestamp")), bounce, why[:500] or None,
            )
        )  # fmt: skip
    return out
