"""Channels that deliver a rendered message. Each returns the rows that must be written
atomically with the ledger entry (the in-app inbox), or none once the provider accepted."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from sqlmodel import SQLModel

from schemas.settings import Settings
from storage.tables import InboxRow


@dataclass(frozen=True)
class Outbound:
    """A rendered message on its way to one customer address."""

    key: str
    customer_id: str
    journey_id: str
    step_id: str
    address: str
    content: dict[str, str]
    unsubscribe_url: str | None = None
    """Set for marketing messages: email puts it in List-Unsubscribe (RFC 8058)."""


class PermanentDeliveryError(Exception):
    """The provider refused the message for good (e.g. SMTP 5xx); retrying cannot help."""


class Channel(Protocol):
    name: str

    async def deliver(self, message: Outbound) -> list[SQLModel]: ...


class InAppChannel:
    """Messages land in the inbox table, in the same transaction as the ledger entry."""

    name = "in_app"

    async def deliver(self, message: Outbound) -> list[SQLModel]:
        c = message.content
        return [
            InboxRow(
                delivery_key=message.key,
                customer_id=message.customer_id,
                journey_id=message.journey_id,
                step_id=message.step_id,
                title=c.get("title") or c.get("subject"),
                body=c.get("body", ""),
                url=c.get("url"),
            )
        ]


class EmailChannel:
    """Email over SMTP. The Message-ID is derived from the idempotency key, so anything
    downstream can recognise a message it has seen."""

    name = "email"

    def __init__(self, settings: Settings):
        self._settings = settings

    def compose(self, message: Outbound) -> EmailMessage:
        c = message.content
        email = EmailMessage()
        email["From"] = self._settings.email_from
        email["To"] = message.address
        email["Subject"] = c.get("subject") or c.get("title") or ""
        email["Date"] = formatdate(localtime=False)
        digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        email["Message-ID"] = f"<{digest}@journeys>"
        email["X-Journey"] = f"{message.journey_id}/{message.step_id}"
        if message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(c.get("body", ""))
        if c.get("html"):
            email.add_alternative(c["html"], subtype="html")
        return email

    async def deliver(self, message: Outbound) -> list[SQLModel]:
        try:
            await asyncio.to_thread(self._send, self.compose(message))
        except smtplib.SMTPRecipientsRefused as err:
            raise PermanentDeliveryError(f"smtp refused recipient: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            if err.smtp_code >= 500:
                raise PermanentDeliveryError(f"smtp {err.smtp_code}: {err.smtp_error!r}") from err
            raise
        return []

    def _send(self, email: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(email)


def channels_for(settings: Settings) -> list[Channel]:
    """The channels this deployment delivers on."""
    return [InAppChannel(), EmailChannel(settings)]


CHANNEL_NAMES: tuple[str, ...] = ("email", "in_app")
