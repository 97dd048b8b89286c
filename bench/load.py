"""A small HTTP/1.1 load generator, run as a process of its own so that the client's work
is not on the measured server's event loop: `python -m bench.load URL N CONCURRENCY
STATUS` prints `{"seconds": ..., "ms": [...]}`. Each of CONCURRENCY keep-alive
connections sends GETs one after another (what a mail client's fetches look like to one
API process); a plain socket client, so its own cost is small beside either server's."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, path: str, count: int, status: int, ms: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            code = int(lines[0].split()[1])
            length = next(
                (int(v) for k, _, v in (h.partition(": ") for h in lines[1:])
                 if k.lower() == "content-length"), 0,
            )  # fmt: skip
            if length:
                await reader.readexactly(length)
            ms.append((time.perf_counter() - started) * 1000)
            if code != status:
                raise SystemExit(f"{path}: {code}, wanted {status}")
    finally:
        writer.close()


async def run(url: str, n: int, concurrency: int, status: int) -> dict[str, object]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    ms: list[float] = []
    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(parts.hostname, parts.port, parts.path, k, status, ms) for k in per if k)
    )
    return {"seconds": time.perf_counter() - started, "ms": ms}


if __name__ == "__main__":
    url, n, concurrency, status = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(asyncio.run(run(url, n, concurrency, status))))
