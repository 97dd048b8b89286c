"""The stack every benchmark suite runs on: its own Temporal dev server (in memory), SMTP
mailbox, database in a temporary folder, worker and API, with the global guardrails off so
only the work measured differs."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cli.embedded import Stack, dev_server, dev_server_command, running_stack
from schemas.settings import Settings
from services.mailbox import Mailbox, start_smtp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def bench_stack(
    *, examples: bool = False, **overrides: Any
) -> AsyncIterator[tuple[Stack, str, int]]:
    """(the stack, its API's base URL, the dev server's pid); `examples` loads the
    example journeys' templates and offers."""
    port = free_port()
    smtp = start_smtp(Mailbox(), port=free_port())
    command = dev_server_command(port=port, ui_port=None, db_file=None)
    try:
        with tempfile.TemporaryDirectory() as data, dev_server(command) as server:
            api_port = free_port()
            settings = Settings(
                data_dir=Path(data),
                temporal_address=f"127.0.0.1:{port}",
                api_port=api_port,
                public_url=f"http://127.0.0.1:{api_port}",
                smtp_port=smtp.port,
                task_queue="bench-journeys",
                **(
                    {"frequency_caps": [], "quiet_hours": None, "arbitration_seconds": 0}
                    | overrides
                ),
            )
            async with running_stack(settings, examples=examples) as stack:
                yield stack, f"http://127.0.0.1:{api_port}", server.pid
    finally:
        smtp.stop()
