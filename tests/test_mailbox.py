"""The built-in mailbox keeps every message as a file across restarts (issue 14, item 10)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

from journeys.services.mailbox import Mailbox, start_smtp
from tests.conftest import free_port


def send(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", subject
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(message)


def test_a_restarted_mailbox_writes_after_the_files_it_kept(tmp_path: Path) -> None:
    for run in ("first", "second"):  # the embedded default restarted on the same folder
        port = free_port()
        controller = start_smtp(Mailbox(tmp_path), port=port)
        try:
            send(port, f"{run} 1")
            send(port, f"{run} 2")
        finally:
            controller.stop()
    files = sorted(tmp_path.glob("*.eml"))
    assert [f.name for f in files] == [f"{n:06d}.eml" for n in range(1, 5)]
    subjects = [f.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0] for f in files]
    assert subjects == [b"first 1", b"first 2", b"second 1", b"second 2"]
