"""A real SMTP server (aiosmtpd) that keeps what it receives: the embedded default's email
provider, and the SMTP server the tests deliver to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from journeys.schemas.rates import Bucket


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    raw: bytes = b""
    """The message as it came over SMTP (headers as written, not decoded)."""
    at: float = field(default_factory=time.time)
    """When it arrived (epoch seconds): the provider's side of a send's time."""

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""  # type: ignore[union-attr]


class Mailbox:
    """aiosmtpd handler: records every accepted message, and writes it as .eml to `folder`
    when given. `on_data` lets a test hold or inspect a delivery in flight; `listeners`
    hear of each message kept (the SES sandbox answers it as SES would)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        self.received: list[Received] = []
        self.on_data: Callable[[Any], None] | None = None
        self.listeners: list[Callable[[Received], None]] = []
        """Called with each accepted message, on the SMTP server's loop (the SES sandbox)."""
        self.ceiling: Bucket | None = None
        """Messages a second at most, kept as SES keeps an account's maximum send rate
        (`throttle_at`): `454 Throttling` over it. None: no ceiling."""
        self.throttled = 0
        """Messages answered 454 for going over the ceiling."""
        self._lock = threading.Lock()
        self._next: int | None = None
        if folder:
            folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data is not None:
            self.on_data(envelope)
        if self._over_ceiling():
            return "454 Throttling failure: Maximum sending rate exceeded."
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        entry = Received(envelope.mail_from, tuple(envelope.rcpt_tos), message, raw)  # type: ignore[arg-type]
        with self._lock:
            self.received.append(entry)
            if self.folder:
                self._keep(raw)
        for listen in self.listeners:
            listen(entry)
        return "250 Message accepted for delivery"

    def throttle_at(self, per_second: float) -> None:
        """Answer `454 Throttling` over `per_second`, a token bucket holding one second's
        messages (SES allows short bursts)."""
        self.ceiling = Bucket(per_second, max(per_second, 1.0))

    def _over_ceiling(self) -> bool:
        if self.ceiling is None:
            return False
        with self._lock:
            if self.ceiling.take() > 0:
                self.throttled += 1
                return True
            return False

    def _keep(self, raw: bytes) -> None:
        """Write the next numbered file, never over one already there (the folder outlives
        the process: after a restart the count goes on from the highest file)."""
        assert self.folder is not None
        if self._next is None:
            numbers = [int(p.stem) for p in self.folder.glob("*.eml") if p.stem.isdigit()]
            self._next = max(numbers, default=0) + 1
        while True:
            number, self._next = self._next, self._next + 1
            try:
                with (self.folder / f"{number:06d}.eml").open("xb") as handle:
                    handle.write(raw)
                return
            except FileExistsError:  # another process writes to the same folder
                continue

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.recipients]


def start_smtp(mailbox: Mailbox, host: str = "127.0.0.1", port: int = 1025) -> Controller:
    """Start the SMTP server in its own thread; call `.stop()` on the result to end it."""
    controller = Controller(mailbox, hostname=host, port=port)
    controller.start()
    return controller
