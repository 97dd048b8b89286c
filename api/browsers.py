"""What browsers and Segment's libraries see at the edge: CORS for the paths a browser
calls (the Temporal UI's codec calls, analytics.js's Segment calls), each with its own
origins; and Segment's error shape (`code`, `message`) beside the problem details on the
Segment routes, since Segment's libraries read those."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeys.schemas.segment import PATHS

SEGMENT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class CORSFor:
    """Starlette's CORS middleware, for `paths` (exact, or prefixes ending in `/`) only:
    other paths are not cross-origin callable, whatever these origins are."""

    def __init__(self, app: ASGIApp, /, *, paths: Iterable[str], **cors: Any) -> None:
        self.app = app
        self.paths = tuple(paths)
        self.cors = CORSMiddleware(app, **cors)

    def _covers(self, path: str) -> bool:
        return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._covers(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class SegmentErrors:
    """On the Segment routes, an error's problem details also carry Segment's `code` and
    `message` (the same words as `detail`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await _send_with_code(start, b"".join(chunks), send)

        await self.app(scope, receive, capture)


async def _send_with_code(start: Message, body: bytes, send: Send) -> None:
    try:
        problem = json.loads(body)
        problem["code"] = SEGMENT_CODES.get(start["status"], "error")
        problem["message"] = problem.get("detail", "")
        body = json.dumps(problem).encode()
    except (ValueError, AttributeError, TypeError):
        pass  # not a problem document: sent as it is
    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})
