"""The egress policy (`schemas.egress`) on the worker's HTTP client. A journey author
names URLs (an `action` step's `http.url`, a webhook send's `url`), so without it a
journey could reach the API itself, the database, or a cloud's metadata service
(169.254.169.254) from inside the network. The address is checked after DNS resolution,
at connect time, and the connection goes to the address checked, so a name that resolves
differently a moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from journeys.activities.http import Permanent
from journeys.schemas.egress import Policy, policy
from journeys.schemas.settings import Settings


class EgressRefused(Permanent):
    """The policy does not let this call out: retrying cannot change that."""


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host, refuses addresses the policy does not reach, and connects to
    the address it checked."""

    def __init__(self, policy: Policy, inner: httpcore.AsyncNetworkBackend):
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise httpcore.ConnectError(f"cannot resolve {host}") from err
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        allowed = [a for a in addresses if self._policy.reachable(a)]
        if not allowed:
            raise EgressRefused(
                f"egress refused: {host} is a private, loopback or link-local address "
                "(allow it with JOURNEYS_EGRESS_ALLOW)"
            )
        return await self._inner.connect_tcp(
            str(allowed[0]), port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PolicyTransport(httpx.AsyncBaseTransport):
    """Trusted URLs go through a plain pool; every other one through a checked one."""

    def __init__(self, policy: Policy, **options: Any):
        self._policy = policy
        self._trusted = httpx.AsyncHTTPTransport(**options)
        self._checked = httpx.AsyncHTTPTransport(**options)
        pool = self._checked._pool  # httpx keeps its httpcore pool here (httpx < 1)
        pool._network_backend = _CheckedBackend(policy, pool._network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url, own = request.url, self._policy.own
        if self._policy.trusted(url):
            return await self._trusted.handle_async_request(request)
        if own is not None and (url.host, url.port) == (own.host, own.port):
            raise EgressRefused("egress refused: that is this deployment's own API")
        return await self._checked.handle_async_request(request)

    async def aclose(self) -> None:
        await self._trusted.aclose()
        await self._checked.aclose()


def shared_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's one client (connection pooling; one place for OpenTelemetry's httpx
    instrumentation), every call under the egress policy."""
    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=5.0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    transport = PolicyTransport(policy(settings), limits=limits)
    return httpx.AsyncClient(
        timeout=timeout, transport=transport, headers={"User-Agent": "journeys/1"}
    )
