"""Stand-ins for Amazon SES (its notifications through SNS) and SendGrid's Event Webhook,
each in its real wire format and signed as the provider signs, so the feedback routes are
tried end to end here as the Twilio sandbox tries the status callback.

SES: the built-in mailbox hands every email naming this deployment's configuration set
(`X-SES-CONFIGURATION-SET`) to `SesSandbox.mailed`, which answers as SES's mailbox
simulator does, by recipient:
- `bounce@simulator.amazonses.com`, or a `+bounce` address (`ann+bounce@example.com`):
  a permanent bounce (5.1.1);
- `+softbounce`: a transient one (mailbox full, 4.2.2);
- `complaint@simulator.amazonses.com`, or `+complaint`: a delivery, then a complaint;
- any other: a delivery.

Each notification is an SNS `Notification` for the sandbox's topic, signed (SignatureVersion
1) with a key kept in the data folder, whose certificate the sandbox serves at
`/sandbox/sns/SimpleNotificationService-sandbox.pem`; `subscription` makes the
`SubscriptionConfirmation` handshake. SendGrid (`JOURNEYS_EMAIL_PROVIDER=sendgrid`): the
mailbox hands every email carrying unique args (`X-SMTPAPI`) to `SendGridSandbox.mailed`,
which posts the Event Webhook's batch (processed, then delivered, bounce or spam report, by
the same addresses), signed with an ECDSA key whose public half the API checks with."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Query, Response

from journeys.schemas.access import public, requires
from journeys.schemas.feedback import SANDBOX_TOPIC, TAG
from journeys.schemas.settings import Settings
from journeys.schemas.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    sign_sendgrid,
    sign_sns,
)
from journeys.services.mailbox import Received
from journeys.storage.secrets import secret

CERTIFICATE = "SimpleNotificationService-sandbox.pem"
SIMULATOR = "simulator.amazonses.com"
KEPT = 100


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _key(settings: Settings, name: str, make: Any) -> Any:
    text = secret(settings, None, name, make=lambda: _pem(make()))
    return serialization.load_pem_private_key(text, password=None)


def outcome(address: str) -> str:
    """What SES's mailbox simulator does with mail to `address`."""
    local, _, domain = address.lower().partition("@")
    tag = local.partition("+")[2]
    if (domain == SIMULATOR and local in ("bounce", "suppressionlist")) or tag == "bounce":
        return "bounce"
    if tag == "softbounce":
        return "softbounce"
    if (domain == SIMULATOR and local == "complaint") or tag == "complaint":
        return "complaint"
    return "delivery"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mail(source: str, destination: list[str], tags: dict[str, str]) -> dict[str, Any]:
    """SES's `mail` object of a notification."""
    return {
        "timestamp": _now(),
        "messageId": uuid.uuid4().hex,
        "source": source,
        "destination": destination,
        "tags": {k: [v] for k, v in tags.items()},
    }


class SesSandbox:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.base = settings.public_url.rstrip("/")
        self.key: rsa.RSAPrivateKey = _key(
            settings, "sandbox-sns", lambda: rsa.generate_private_key(65537, 2048)
        )
        self.confirmed: list[str] = []
        self._certificate: bytes | None = None

    @property
    def certificate_url(self) -> str:
        return f"{self.base}/sandbox/sns/{CERTIFICATE}"

    def certificate(self) -> bytes:
        """The signing certificate (self-signed, made from the kept key), as PEM."""
        if self._certificate is None:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox")])
            start = datetime(2026, 1, 1, tzinfo=UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self.key.public_key())
                .serial_number(1)
                .not_valid_before(start)
                .not_valid_after(start + timedelta(days=3650))
                .sign(self.key, hashes.SHA256())
            )
            self._certificate = cert.public_bytes(serialization.Encoding.PEM)
        return self._certificate

    def sns(self, kind: str, message: str, **fields: str) -> dict[str, str]:
        """An SNS message of `kind` for the sandbox's topic, signed as SNS signs."""
        body = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": SANDBOX_TOPIC,
            "Message": message,
            "Timestamp": _now(),
            "SignatureVersion": "1",
            "SigningCertURL": self.certificate_url,
            **fields,
        }
        body["Signature"] = sign_sns(self.key, body)
        return body

    def subscription(self) -> dict[str, str]:
        token = uuid.uuid4().hex
        return self.sns(
            "SubscriptionConfirmation",
            f"You have chosen to subscribe to the topic {SANDBOX_TOPIC}.",
            Token=token,
            SubscribeURL=f"{self.base}/sandbox/sns/confirm?Token={token}",
        )

    def notifications(self, received: Received) -> list[dict[str, str]]:
        """The SNS notifications SES would send about one email, in order."""
        tags = received.message.get("X-SES-MESSAGE-TAGS", "")
        found = dict(p.strip().split("=", 1) for p in str(tags).split(",") if "=" in p)
        mail = _mail(received.sender, list(received.recipients), found)
        out = []
        for address in received.recipients:
            for note in self._outcomes(address, outcome(address)):
                out.append(self.sns("Notification", json.dumps({**note, "mail": mail})))
        return out

    def about(self, delivery_id: int, address: str, what: str) -> list[dict[str, str]]:
        """SES's notifications of `what` (`bounce`, `softbounce`, `complaint`, `delivery`)
        for one message (the testing kit's bounce and complaint)."""
        mail = _mail(self.settings.email_from, [address], {TAG: str(delivery_id)})
        notes = self._outcomes(address, what)
        return [self.sns("Notification", json.dumps({**n, "mail": mail})) for n in notes]

    @staticmethod
    def _outcomes(address: str, what: str) -> list[dict[str, Any]]:
        at = _now()
        delivery = {"notificationType": "Delivery", "delivery": {
            "timestamp": at, "recipients": [address], "smtpResponse": "250 2.6.0 Message received",
        }}  # fmt: skip
        match what:
            case "bounce" | "softbounce" as kind:
                hard = kind == "bounce"
                return [{"notificationType": "Bounce", "bounce": {
                    "bounceType": "Permanent" if hard else "Transient",
                    "bounceSubType": "General" if hard else "MailboxFull",
                    "bouncedRecipients": [{
                        "emailAddress": address,
                        "status": "5.1.1" if hard else "4.2.2",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown" if hard
                        else "smtp; 452 4.2.2 mailbox full",
                    }],
                    "timestamp": at, "feedbackId": uuid.uuid4().hex,
                }}]  # fmt: skip
            case "complaint":
                return [delivery, {"notificationType": "Complaint", "complaint": {
                    "complainedRecipients": [{"emailAddress": address}],
                    "timestamp": at, "feedbackId": uuid.uuid4().hex,
                    "complaintFeedbackType": "abuse",
                }}]  # fmt: skip
        return [delivery]

    async def post(self, message: dict[str, str]) -> int:
        """POST an SNS message to this deployment's SES route, as SNS does."""
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{self.base}/v1/providers/ses",
                content=json.dumps(message),
                headers={
                    "content-type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": message["Type"],
                    "x-amz-sns-topic-arn": message["TopicArn"],
                },
            )
            return answer.status_code

    async def mailed(self, received: Received) -> None:
        """The mailbox's hook: what SES would say about an email naming our
        configuration set."""
        wanted = self.settings.ses_configuration_set
        if wanted is None or received.message.get("X-SES-CONFIGURATION-SET") != wanted:
            return
        for message in self.notifications(received):
            await self.post(message)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/sandbox/sns", tags=["sandbox"])

        @router.get(f"/{CERTIFICATE}", response_class=Response)
        @public()
        async def certificate() -> Response:
            """The SNS stand-in's signing certificate (public, as AWS's are)."""
            return Response(self.certificate(), media_type="application/x-pem-file")

        @router.get("/confirm", response_class=Response)
        @public()
        async def confirm(token: str = Query(alias="Token", max_length=64)) -> Response:
            """The SubscribeURL of the stand-in's confirmations."""
            self.confirmed.append(token)
            del self.confirmed[:-KEPT]
            return Response("<ConfirmSubscriptionResponse/>", media_type="text/xml")

        @router.get("/confirmed")
        @requires("read")
        async def confirmed() -> list[str]:
            """The subscription tokens confirmed, oldest first."""
            return list(self.confirmed)

        return router


class SendGridSandbox:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.base = settings.public_url.rstrip("/")
        self.key: ec.EllipticCurvePrivateKey = _key(
            settings, "sandbox-sendgrid", lambda: ec.generate_private_key(ec.SECP256R1())
        )

    def public_key(self) -> str:
        """The verification key, as SendGrid's Mail Settings show it (base64 DER)."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @staticmethod
    def event(kind: str, address: str, delivery_id: int | None, **fields: Any) -> dict[str, Any]:
        """One Event Webhook event as SendGrid sends it (unique args at the top level)."""
        return {
            "email": address,
            "timestamp": int(datetime.now(UTC).timestamp()),
            "event": kind,
            "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
            "sg_message_id": f"{uuid.uuid4().hex}.filter0001",
            "smtp-id": f"<{uuid.uuid4().hex}@journeys>",
            **({TAG: str(delivery_id)} if delivery_id is not None else {}),
            **fields,
        }

    def signed(self, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(events).encode()
        timestamp = str(int(datetime.now(UTC).timestamp()))
        return body, {
            "content-type": "application/json",
            SENDGRID_TIMESTAMP: timestamp,
            SENDGRID_SIGNATURE: sign_sendgrid(self.key, timestamp, body),
        }

    def events_for(self, received: Received) -> list[dict[str, Any]]:
        """The events SendGrid would post about one email, by recipient as SES's
        simulator decides (`outcome`): processed, then delivered, a bounce (`blocked`:
        soft) or a delivery and a spam report."""
        try:
            args = json.loads(str(received.message.get("X-SMTPAPI", "{}"))).get("unique_args", {})
        except ValueError:
            return []
        delivery = args.get(TAG)
        row = int(delivery) if isinstance(delivery, str) and delivery.isdigit() else None
        out = []
        for address in received.recipients:
            out.append(self.event("processed", address, row))
            match outcome(address):
                case "bounce":
                    why = {"status": "5.1.1", "reason": "550 5.1.1 user unknown"}
                    out.append(self.event("bounce", address, row, type="bounce", **why))
                case "softbounce":
                    why = {"status": "4.2.2", "reason": "452 4.2.2 mailbox full"}
                    out.append(self.event("bounce", address, row, type="blocked", **why))
                case "complaint":
                    out += [self.event("delivered", address, row),
                            self.event("spamreport", address, row)]  # fmt: skip
                case _:
                    out.append(self.event("delivered", address, row))
        return out

    async def mailed(self, received: Received) -> None:
        """The mailbox's hook, with `JOURNEYS_EMAIL_PROVIDER=sendgrid`: the Event Webhook's
        batch about an email that carries this deployment's unique args."""
        if self.settings.email_provider != "sendgrid" or "X-SMTPAPI" not in received.message:
            return
        events = self.events_for(received)
        if events:
            await self.post(events)

    async def post(self, events: list[dict[str, Any]]) -> int:
        body, headers = self.signed(events)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{self.base}/v1/providers/sendgrid", content=body, headers=headers
            )
            return answer.status_code


def hook(sandbox: SesSandbox | SendGridSandbox) -> Any:
    """The mailbox listener that runs `sandbox.mailed` without holding up the SMTP reply."""

    def listen(received: Received) -> None:
        task = asyncio.get_running_loop().create_task(sandbox.mailed(received))
        _running.add(task)
        task.add_done_callback(_running.discard)

    return listen


_running: set[asyncio.Task[None]] = set()
