"""The API's front door, in front of every route (an ASGI middleware, so it runs before
FastAPI reads a body): who is calling and may they (401, 403), how often (429), and how much
they send (413, 400). It audits each change it lets through.

Order matters: the key is checked before a byte of the body is read, and a compressed body
is inflated only up to the route's limit, so a gzip bomb costs its compressed size.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeys.api import customer_tokens
from journeys.api.access import Matched, table
from journeys.api.contract import Contract
from journeys.api.errors import respond
from journeys.schemas.access import Access, Caller
from journeys.schemas.rates import Bucket
from journeys.schemas.settings import Settings
from journeys.storage.access import AuditLog, KeyStore

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
"""Bodies that are not JSON (Twilio's callbacks): no JSON checks."""
AUDITED = frozenset({"journeys:write", "operate", "admin"})
_ESCAPES = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        msg: str,
        *loc: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        caller: Caller | None = None,
    ):
        super().__init__(msg)
        self.status, self.msg, self.headers, self.caller = status, msg, headers, caller
        self.errors = errors or [{"loc": list(loc), "msg": msg}]


def too_deep(raw: bytes, limit: int) -> bool:
    """Whether JSON `raw` nests objects and arrays deeper than `limit`. Escapes, then
    strings, are cut out and only brackets kept, each a step up or down: C-speed passes
    (a 350 KB batch in about 2 ms) before anything parses the body."""
    brackets = _STRINGS.sub(b"", _ESCAPES.sub(b"", raw).translate(None, _NOT_STRUCTURE))
    if len(brackets) <= limit:
        return False
    return max(accumulate(array("b", brackets.translate(_STEPS)))) > limit


def lone_surrogate(raw: bytes) -> bool:
    """Whether JSON `raw` escapes half a UTF-16 surrogate pair (no text can hold it)."""
    if b"\\ud" not in raw.lower():
        return False
    return _LONE_SURROGATE.search(raw) is not None


class Buckets:
    """One token bucket per key (a key id, a client address); 429 when one is empty.
    Full buckets are dropped now and then, so a flood of addresses costs no memory."""

    def __init__(self, rate: float, burst: int, what: str) -> None:
        self.rate, self.burst, self.what = rate, burst, what
        self._held: dict[Any, Bucket] = {}

    def _bucket(self, key: Any) -> Bucket | None:
        if self.rate <= 0:
            return None
        bucket = self._held.get(key)
        if bucket is None:
            if len(self._held) >= 10_000:
                now = time.monotonic()
                full = [k for k, b in self._held.items() if (now - b.at) * b.rate >= b.burst]
                for k in full:
                    del self._held[k]
            bucket = self._held[key] = Bucket(self.rate, self.burst)
        return bucket

    def take(self, key: Any) -> None:
        """Count one request for `key`, or refuse it (429)."""
        bucket = self._bucket(key)
        if bucket is not None:
            self._refuse_after(bucket.take())

    def check(self, key: Any) -> None:
        """Refuse (429) while `key`'s bucket is empty; count nothing."""
        bucket = self._bucket(key)
        if bucket is not None:
            self._refuse_after(bucket.wait())

    def _refuse_after(self, wait: float) -> None:
        if wait > 0:
            raise Refusal(
                429,
                f"over the rate limit ({self.rate:g} {self.what})",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


@dataclass
class Secrets:
    """The non-key credentials some routes take."""

    services: bytes
    inbox: bytes
    codec: bytes | None


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        routes: FastAPI,
        settings: Settings,
        keys: KeyStore,
        audit: AuditLog,
        secrets: Secrets,
        contract: Contract,
    ) -> None:
        self.app = app
        self.contract = contract
        self.settings = settings
        self.keys = keys
        self.audit = audit
        self.secrets = secrets
        self.table = table(routes)  # built when the app first serves: every route is in
        s = settings
        self.writes = Buckets(s.rate_limit_per_second, s.rate_limit_burst, "writes a second a key")
        self.reads = Buckets(
            s.read_rate_limit_per_second, s.read_rate_limit_burst, "reads a second a key"
        )
        self.anonymous = Buckets(
            s.anonymous_rate_limit_per_second,
            s.anonymous_rate_limit_burst,
            "requests a second an address, without a key",
        )
        self.failures = Buckets(
            s.auth_failures_per_minute / 60,
            s.auth_failure_burst,
            "failed authentications a second an address",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        matched = self.table.match(scope["method"], scope["path"])
        if matched is None:
            allowed = self.table.methods(scope["path"])
            if not allowed:  # the app answers 404
                await self.app(scope, receive, send)
                return
            msg = f"this path takes {', '.join(allowed)}"
            headers = {"Allow": ", ".join(allowed)}
            await respond(405, msg, [{"loc": ["method"], "msg": msg}], headers)(
                scope, receive, send
            )
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        audited = matched.access.scope in AUDITED and scope["method"] in WRITES
        try:
            caller, body = await self._admit(scope, receive, headers, matched)
        except Refusal as refused:
            if audited and refused.status in (401, 403):  # a denied change is on record too
                who = refused.caller or Caller(key_id="-", name="no valid key", scopes=frozenset())
                await self._audit(who, scope, matched, b"", refused.status)
            response = respond(refused.status, refused.msg, refused.errors, refused.headers)
            await response(scope, receive, send)
            return
        if caller is not None:
            scope.setdefault("state", {})["caller"] = caller
        scope["headers"] = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]

        async def before_the_end(status: int) -> None:
            """The audit entry is written before the caller has the whole answer: a
            change the caller saw succeed is in the audit log."""
            if caller is not None and audited and status < 400:
                await self._audit(caller, scope, matched, body, status)

        await self._forward(scope, receive, send, body, before_the_end)

    async def _admit(
        self, scope: Scope, receive: Receive, headers: dict[str, str], matched: Matched
    ) -> tuple[Caller | None, bytes]:
        """The caller (None on a public route) and the body, or a `Refusal`."""
        raw: bytes | None = None
        caller = None
        access = matched.access
        address = _address(scope)
        if access.scope is None or (access.codec_token and self.settings.codec_open):
            self.anonymous.take(address)
        else:
            self.failures.check(address)  # before a key is looked at: no guessing at speed
            caller = await self._caller(headers, matched)
            plain = "content-encoding" not in headers  # a writeKey is read from plain bodies
            if caller is None and access.basic and plain and "authorization" not in headers:
                raw = await self._read(receive, headers, access)
                caller = await self._write_key(raw)
            if caller is None:
                self.failures.take(address)
                raise Refusal(
                    401,
                    "an API key is required: Authorization: Bearer <key>",
                    "header",
                    "authorization",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not caller.may(access.scope):
                raise Refusal(403, f"this key lacks the '{access.scope}' scope", caller=caller)
            # A customer app's token is its customer's: its reads count per address.
            who = caller.key_id if caller.key_id != "customer" else ("customer", address)
            (self.writes if scope["method"] in WRITES else self.reads).take(who)
        body = raw if raw is not None else await self._read(receive, headers, access)
        body = self._inflate(body, headers, access)
        kind = headers.get("content-type", "application/json").lower()  # parsers ignore case
        if body and not kind.startswith(FORMS):  # whatever a JSON parser might be handed
            limit = self.settings.max_json_depth
            if too_deep(body, limit):
                raise Refusal(400, f"the JSON nests deeper than {limit} levels", "body")
            if lone_surrogate(body):
                raise Refusal(400, "the JSON has a lone UTF-16 surrogate (\\uD800-\\uDFFF)", "body")
        if body and "json" in kind:
            errors = self.contract.problems(scope["method"], matched.template, body)
            if errors:  # Segment's API answers 400 for a message it will not take
                where = ".".join(str(p) for p in errors[0]["loc"])
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                summary = f"{where}: {errors[0]['msg']}{more}"
                raise Refusal(400 if access.basic else 422, summary, errors=errors)
        return caller, body

    async def _caller(self, headers: dict[str, str], matched: Matched) -> Caller | None:
        """Who the Authorization header says is calling, if anyone valid."""
        header = headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and matched.access.basic:
            try:
                value = base64.b64decode(value, validate=True).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
        elif scheme.lower() != "bearer" or not value:
            return None
        return await self._token(value, matched)

    async def _token(self, token: str, matched: Matched) -> Caller | None:
        access = matched.access
        if access.customer_token and token.startswith(customer_tokens.PREFIX):
            owner = customer_tokens.customer(self.secrets.inbox, token)
            if owner is not None and owner == matched.params.get("customer_id"):
                return Caller(key_id="customer", name="customer app", scopes=frozenset({"read"}))
            return None
        codec = self.secrets.codec
        if access.codec_token and codec is not None and hmac.compare_digest(token.encode(), codec):
            return Caller(key_id="codec", name="codec token", scopes=frozenset({"read"}))
        if hmac.compare_digest(token.encode(), self.secrets.services):
            return Caller(key_id="services", name="worker", scopes=frozenset({"decide"}))
        return await self.keys.caller(token)

    async def _write_key(self, raw: bytes) -> Caller | None:
        """A Segment `writeKey` in an uncompressed JSON body (analytics.js sends it so)."""
        match = re.search(rb'"writeKey"\s*:\s*"([A-Za-z0-9_\-]{1,120})"', raw)
        return await self.keys.caller(match.group(1).decode()) if match else None

    async def _read(self, receive: Receive, headers: dict[str, str], access: Access) -> bytes:
        """The body, refused once it passes the route's limit (checked as it streams)."""
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > access.max_body):
            raise Refusal(413, f"the body is over {access.max_body} bytes", "body")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > access.max_body:
                raise Refusal(413, f"the body is over {access.max_body} bytes", "body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _inflate(self, body: bytes, headers: dict[str, str], access: Access) -> bytes:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding != "gzip" or not access.gzip:
            raise Refusal(415, "this route takes no compressed body", "header", "content-encoding")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(body, access.max_body + 1)
        except zlib.error as err:
            raise Refusal(400, "the body is not valid gzip", "body") from err
        if len(out) > access.max_body or inflater.unconsumed_tail:
            raise Refusal(413, f"the body inflates to over {access.max_body} bytes", "body")
        if not inflater.eof:
            raise Refusal(400, "the gzip body is truncated", "body")
        return out

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        before_the_end: Callable[[int], Awaitable[None]],
    ) -> None:
        """Run the app on the body already read; `before_the_end(status)` runs before the
        answer's last part is sent."""
        sent = False
        status = 500

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await before_the_end(status)
            await send(message)

        await self.app(scope, replay, watch)

    async def _audit(
        self, caller: Caller, scope: Scope, matched: Matched, body: bytes, status: int
    ) -> None:
        target: dict[str, Any] = dict(matched.params)
        if matched.access.audit:
            try:
                found = json.loads(body).get(matched.access.audit)
            except (ValueError, AttributeError):
                found = None
            if isinstance(found, str):
                target[matched.access.audit] = found[:200]
        said = scope.get("state", {}).get("audit")  # what the route adds (a new key's id)
        if isinstance(said, dict):
            target.update(said)
        await self.audit.record(
            caller, f"{scope['method']} {matched.template}", target, status, _address(scope)
        )


def _address(scope: Scope) -> str | None:
    """The client's address: the one that connected, or the one a trusted proxy named
    (uvicorn's `forwarded_allow_ips`, from `Settings.trusted_proxies`)."""
    client = scope.get("client")
    return client[0] if client else None
