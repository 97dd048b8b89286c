"""Channels that deliver a rendered message, each in its provider's real request format.

A channel returns what it learned (`Delivered`): the provider's message id and status, and
for the in-app inbox the rows to write atomically with the ledger entry. A refusal that
retrying cannot mend raises `Permanent`; anything else (timeouts, 5xx) is retried by
Temporal under the same idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import smtplib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, Literal, Protocol

import httpx
from sqlmodel import SQLModel

from journeys.activities.http import Permanent, ServiceRefused, Throttled, call
from journeys.schemas import feedback
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import WEBHOOK_HEADER, sign_webhook
from journeys.storage.devices import token_hash
from journeys.storage.secrets import fcm_token, twilio_token, webhook_key
from journeys.storage.tables import InboxRow


@dataclass(frozen=True)
class Outbound:
    """A rendered message on its way to one customer's addresses on one channel."""

    key: str
    customer_id: str
    journey_id: str
    step_id: str
    addresses: Sequence[str]
    content: dict[str, str]
    unsubscribe_url: str | None = None
    """Set for marketing messages: email puts it in List-Unsubscribe (RFC 8058)."""
    delivery_id: int | None = None
    """The ledger row: what an email provider's feedback about the message names."""
    sender: str | None = None
    """The number it goes from (an SMS pool's, as its paced slot was booked); None: the
    channel's own."""
    retry: bool = False
    """An earlier attempt may have reached the provider (it timed out or was cut off)."""
    since: datetime | None = None
    """When the send was first asked for: where a lookup of the provider's log begins."""

    @property
    def address(self) -> str:
        return self.addresses[0] if self.addresses else ""


@dataclass
class Delivered:
    rows: list[SQLModel] = field(default_factory=list)
    provider_id: str | None = None
    provider_status: str | None = None


class PermanentDeliveryError(Permanent):
    """The provider refused the message for good (e.g. SMTP 5xx); retrying cannot help."""


class Channel(Protocol):
    name: str

    async def deliver(self, message: Outbound) -> Delivered: ...


class InAppChannel:
    """Messages land in the inbox table, in the same transaction as the ledger entry."""

    name = "in_app"

    async def deliver(self, message: Outbound) -> Delivered:
        c = message.content
        row = InboxRow(
            delivery_key=message.key,
            customer_id=message.customer_id,
            journey_id=message.journey_id,
            step_id=message.step_id,
            title=c.get("title") or c.get("subject"),
            body=c.get("body", ""),
            url=c.get("url"),
        )
        return Delivered(rows=[row], provider_status="in inbox")


SMTP_SESSIONS = 32
"""SMTP sessions at once per worker, each in a thread of the channel's own pool (smtplib
blocks): the loop's default pool (a few threads) is shared with template rendering, and
sends queued behind each other there reach the provider in bursts, over its rate."""


class EmailChannel:
    """Email over SMTP. The Message-ID is derived from the idempotency key, so anything
    downstream can recognise a message it has seen; with SES or SendGrid taking the
    hand-off (`email_provider`), the message is tagged with its ledger row, which their
    bounce, complaint and delivery callbacks name."""

    name = "email"

    def __init__(self, settings: Settings):
        self._settings = settings
        self._threads = ThreadPoolExecutor(SMTP_SESSIONS, thread_name_prefix="smtp")

    def compose(self, message: Outbound) -> EmailMessage:
        c = message.content
        # Lines up to RFC 5322's 998: a long List-Unsubscribe URL must stay the literal
        # `<https://...>` that mailbox providers' one-click unsubscribe reads (RFC 8058),
        # not an RFC 2047 encoded-word, which the default 78-column folding makes of it.
        email = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        email["From"] = self._settings.email_from
        email["To"] = message.address
        email["Subject"] = c.get("subject") or c.get("title") or ""
        email["Date"] = formatdate(usegmt=True)  # UTC ("-0000" says the zone is unknown)
        digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        email["Message-ID"] = f"<{digest}@journeys>"
        email["X-Journey"] = f"{message.journey_id}/{message.step_id}"
        for name, value in self._tags(message.delivery_id).items():
            email[name] = value
        if message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(c.get("body", ""))
        if c.get("html"):
            email.add_alternative(c["html"], subtype="html")
        return email

    def _tags(self, delivery_id: int | None) -> dict[str, str]:
        """The headers that make the provider's bounces and complaints name the row."""
        s = self._settings
        if delivery_id is None or s.email_provider == "smtp":
            return {}
        if s.email_provider == "ses":
            return feedback.ses_tags(delivery_id, s.ses_configuration_set)
        return feedback.sendgrid_tags(delivery_id)

    async def deliver(self, message: Outbound) -> Delivered:
        try:
            email = self.compose(message)
        except ValueError as err:  # a CR or LF in a header (a rendered subject): for good
            raise PermanentDeliveryError(f"the message cannot be composed: {err}") from err
        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, self._send, email)
        except smtplib.SMTPRecipientsRefused as err:
            raise PermanentDeliveryError(f"smtp refused recipient: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            if err.smtp_code in (421, 454) and "throttl" in str(err.smtp_error).lower():
                raise Throttled("smtp", 1.0) from err  # SES: "454 Throttling failure"
            if err.smtp_code >= 500:
                raise PermanentDeliveryError(f"smtp {err.smtp_code}: {err.smtp_error!r}") from err
            raise
        return Delivered(provider_id=email["Message-ID"], provider_status="accepted by smtp")

    def _send(self, email: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(email)


class TwilioChannel:
    """SMS and WhatsApp through Twilio's Messages API: form-encoded, basic auth with the
    account SID, and a status callback URL that Twilio POSTs delivery updates to
    (`/v1/providers/twilio/status`, which updates the ledger)."""

    def __init__(
        self,
        name: Literal["sms", "whatsapp"],
        settings: Settings,
        http: httpx.AsyncClient,
        claimed: Claimed,
    ):
        self.name: str = name
        self._claimed = claimed
        base = settings.service_url(settings.twilio_api_url, "/sandbox/twilio")
        self._url = f"{base}/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"
        token = twilio_token(settings)
        self._auth = (settings.twilio_account_sid, token.decode() if token else "")
        self._from = settings.sms_from if name == "sms" else settings.whatsapp_from
        self._callback = f"{settings.public_url.rstrip('/')}/v1/providers/twilio/status"
        self._http = http

    async def deliver(self, message: Outbound) -> Delivered:
        to = message.address if self.name == "sms" else f"whatsapp:{message.address}"
        sender = self._from
        if message.sender:
            sender = message.sender if self.name == "sms" else f"whatsapp:{message.sender}"
        form = {
            "To": to,
            "From": sender,
            "Body": message.content.get("body", ""),
            "StatusCallback": self._callback,
        }
        if message.retry and (taken := await self._already_taken(message, form)):
            return Delivered(provider_id=taken["sid"], provider_status=taken.get("status"))
        response = await call(
            self._http,
            "POST",
            self._url,
            what=f"twilio {self.name}",
            idempotency_key=message.key,
            data=form,
            auth=self._auth,
        )
        sent = response.json()
        return Delivered(provider_id=sent.get("sid"), provider_status=sent.get("status"))

    async def _already_taken(
        self, message: Outbound, form: dict[str, str]
    ) -> dict[str, Any] | None:
        """The message an earlier, timed-out attempt left at Twilio, if it did: Twilio's
        list of messages to this `To` from this `From` (newest first), one made since the
        send was first asked for, with this body, and not already another send's (no
        ledger row names its sid). Twilio keeps no idempotency key, so this is the check."""
        params = {"To": form["To"], "From": form["From"], "PageSize": "50"}
        response = await call(
            self._http,
            "GET",
            self._url,
            what=f"twilio {self.name} lookup",
            params=params,
            auth=self._auth,
        )
        floor = (message.since or datetime.now(UTC)) - LOOKUP_SLACK
        for found in response.json().get("messages", []):
            if not isinstance(found, dict) or found.get("body") != form["Body"]:
                continue
            try:
                created = parsedate_to_datetime(str(found.get("date_created")))
            except (TypeError, ValueError):
                continue
            sid = str(found.get("sid", ""))
            if created >= floor and sid and not await self._claimed(sid, message.key):
                return found
        return None


ForgetTokens = Callable[[str, list[str]], Awaitable[object]]
Claimed = Callable[[str, str], Awaitable[bool]]
"""Whether a ledger row other than the send's own (its key) names a provider message id
(`DeliveryLedger.claimed`)."""
LOOKUP_SLACK = timedelta(minutes=1)
"""How much earlier than the send's first ask a provider's clock may stamp its message."""


class Devices(Protocol):
    """The devices a push message was accepted for (`storage.devices.DeviceSends`)."""

    async def accepted(self, key: str) -> dict[str, str]: ...

    async def accept(self, key: str, token: str, name: str) -> None: ...


class PushChannel:
    """Push through FCM HTTP v1: one request per device token with a bearer token. Tokens
    FCM reports as unregistered (or malformed) are removed from the profile; the send
    succeeds when any device accepted it."""

    name = "push"

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, forget: ForgetTokens, devices: Devices
    ):
        base = settings.service_url(settings.fcm_api_url, "/sandbox/fcm")
        self._url = f"{base}/v1/projects/{settings.fcm_project_id}/messages:send"
        token = fcm_token(settings)
        self._headers = {"Authorization": f"Bearer {token.decode() if token else ''}"}
        self._http = http
        self._forget = forget
        self._devices = devices

    def payload(self, message: Outbound, token: str) -> dict[str, object]:
        """One device's message. Its collapse key derives from the idempotency key, so a
        copy sent again (FCM accepted the first, the answer was lost) replaces the first on
        the device instead of showing twice (Android, APNs and Web Push alike)."""
        c = message.content
        data = {"journey": message.journey_id, "step": message.step_id}
        if message.delivery_id is not None:  # the app names it when it reports an open
            data["journeys_delivery"] = str(message.delivery_id)
        if c.get("url"):
            data["url"] = c["url"]
        collapse = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        return {
            "message": {
                "token": token,
                "notification": {
                    "title": c.get("title") or c.get("subject") or "",
                    "body": c.get("body", ""),
                },
                "data": data,
                "android": {"collapse_key": collapse},
                "apns": {"headers": {"apns-collapse-id": collapse}},
                "webpush": {"headers": {"Topic": collapse}},
                "fcm_options": {"analytics_label": message.journey_id[:50]},
            }
        }

    async def deliver(self, message: Outbound) -> Delivered:
        earlier = await self._devices.accepted(message.key)
        accepted = list(earlier.values())
        invalid: list[str] = []
        for token in message.addresses:
            if token_hash(token) in earlier:  # a retry: that device has it
                continue
            try:
                response = await call(
                    self._http,
                    "POST",
                    self._url,
                    what="fcm",
                    json=self.payload(message, token),
                    headers=self._headers,
                )
            except ServiceRefused as err:
                if not _token_rejected(err.response):
                    raise
                invalid.append(token)
                continue
            name = str(response.json().get("name", ""))
            await self._devices.accept(message.key, token, name)
            accepted.append(name)
        if invalid:
            await self._forget(message.customer_id, invalid)
        removed = f", {len(invalid)} invalid token(s) removed" if invalid else ""
        if not accepted:
            raise PermanentDeliveryError(f"fcm: no valid device token{removed}")
        status = f"accepted by {len(accepted)} of {len(message.addresses)} device(s){removed}"
        return Delivered(provider_id=accepted[0], provider_status=status)


def _token_rejected(response: httpx.Response) -> bool:
    """FCM's answer for a token that will never work again: UNREGISTERED, or
    INVALID_ARGUMENT about the registration token."""
    try:
        error = response.json().get("error", {})
    except json.JSONDecodeError:
        return False
    codes = {d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)}
    if "UNREGISTERED" in codes:
        return True
    return "INVALID_ARGUMENT" in codes and "token" in str(error.get("message", "")).lower()


class WebhookChannel:
    """A signed JSON POST to the message's `url` (else the configured webhook URL):
    `Journeys-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body">`."""

    name = "webhook"

    def __init__(self, settings: Settings, http: httpx.AsyncClient):
        self._default_url = settings.service_url(settings.webhook_url, "/sandbox/webhooks")
        self._secret = webhook_key(settings)
        self._http = http

    async def deliver(self, message: Outbound) -> Delivered:
        content = dict(message.content)
        url = content.pop("url", None) or self._default_url
        body = json.dumps(
            {
                "id": hashlib.sha256(message.key.encode()).hexdigest()[:32],
                "customer_id": message.customer_id,
                "journey_id": message.journey_id,
                "step_id": message.step_id,
                "content": content,
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            WEBHOOK_HEADER: sign_webhook(self._secret, int(time.time()), body),
        }
        response = await call(
            self._http,
            "POST",
            url,
            what="webhook",
            idempotency_key=message.key,
            content=body,
            headers=headers,
        )
        return Delivered(provider_status=f"HTTP {response.status_code}")


def channels_for(
    settings: Settings,
    http: httpx.AsyncClient,
    forget_tokens: ForgetTokens,
    devices: Devices,
    claimed: Claimed,
) -> list[Channel]:
    """The channels this deployment delivers on."""
    return [
        InAppChannel(),
        EmailChannel(settings),
        TwilioChannel("sms", settings, http, claimed),
        TwilioChannel("whatsapp", settings, http, claimed),
        PushChannel(settings, http, forget_tokens, devices),
        WebhookChannel(settings, http),
    ]


CHANNEL_NAMES: tuple[str, ...] = ("email", "in_app", "push", "sms", "webhook", "whatsapp")
