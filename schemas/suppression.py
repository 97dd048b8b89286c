"""The suppression list: addresses no message goes to, and why.

A hard bounce suppresses its address at once; soft bounces only after `soft_bounce_limit`
of them in a row (a delivery in between starts the count again: a full mailbox that
empties is alive). A complaint does not suppress the address: it withdraws marketing on
the channel (transactional mail still goes), as Gmail's and Yahoo's bulk-sender rules
ask. An operator can add an address and take one off. The reservation checks the list
for the address it would send to, and a suppressed send carries the reason
(`suppressed_hard_bounce`, ...) in the ledger and the funnel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from journeys.schemas.base import Schema

SuppressedChannel = Literal["email", "sms", "whatsapp"]
"""Channels whose address is the customer's own (a push token is forgotten instead)."""
SUPPRESSED_CHANNELS: tuple[SuppressedChannel, ...] = ("email", "sms", "whatsapp")
Reason = Literal["hard_bounce", "soft_bounces", "manual"]
Source = Literal["ses", "sendgrid", "twilio", "smtp", "operator"]
Address = Annotated[str, StringConstraints(min_length=3, max_length=320, strip_whitespace=True)]


def normal(channel: str, address: str) -> str:
    """The form an address is kept and looked up in: email case-folded (mailbox providers
    treat it so), phone numbers as given (E.164)."""
    return address.strip().lower() if channel == "email" else address.strip()


def refusal(reason: str) -> str:
    """The ledger's reason for a send to a suppressed address."""
    return f"suppressed_{reason}"


class SuppressionIn(Schema):
    """An address an operator suppresses."""

    channel: SuppressedChannel
    """The channel the address is on."""
    address: Address
    """The email address or phone number (E.164)."""
    detail: str | None = Field(default=None, max_length=500)
    """Why, in the operator's words."""


class Suppression(Schema):
    """An address on the list."""

    channel: SuppressedChannel
    """The channel the address is suppressed on."""
    address: str
    """The email address (case-folded) or phone number."""
    reason: Reason
    """`hard_bounce`, `soft_bounces` (the limit reached) or `manual`."""
    source: Source
    """Who said so: a provider's callback, or an operator."""
    detail: str | None = None
    """The provider's diagnostic (an SMTP status, a bounce subtype) or the operator's note."""
    created_at: datetime
    """When it was first counted (a soft bounce) or suppressed."""
