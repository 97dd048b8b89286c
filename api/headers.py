"""Security headers on every answer: no page of this API can be framed, sniffed into
another type, leak its address to another site, or run a script it did not serve itself.

The funnel page's script is a file (`/static/funnel.js`); the only inline script, Swagger
UI's start-up, is allowed by its hash on that page alone (`csp(scripts=...)`)."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def csp(*, scripts: tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy; `scripts` are inline scripts' texts to allow by hash.
    Styles may be inline (Mermaid and ReDoc style their own elements); ReDoc's search
    runs in a blob worker."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )
    return (
        "default-src 'none'; "
        f"script-src 'self'{hashes}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "worker-src 'self' blob:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def inline_scripts(html: str) -> tuple[str, ...]:
    """The inline scripts of a page this API renders (for `csp(scripts=...)`)."""
    return tuple(_INLINE_SCRIPT.findall(html))


HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"content-security-policy": csp().encode(),
}


class SecurityHeaders:
    """Adds `HEADERS` to every answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in HEADERS.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
