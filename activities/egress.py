"""Where outbound calls may go. A journey author names URLs (an `action` step's `http.url`,
a webhook send's `url`), so without a policy a journey could reach the API itself, the
database, or a cloud's metadata service (169.254.169.254) from inside the network.

The rule: a URL under a trusted prefix goes (the services and providers this deployment
is configured with, and `JOURNEYS_EGRESS_ALLOW` prefixes); anything else may only reach
public addresses, or networks `JOURNEYS_EGRESS_ALLOW` names. The address is checked after
DNS resolution, at connect time, and the connection goes to the address checked, so a
name that resolves differently a moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import posixpath
import socket
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from journeys.activities.http import Permanent
from journeys.schemas.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Permanent):
    """The policy does not let this call out: retrying cannot change that."""


class Policy:
    def __init__(self, allow: Iterable[str], trusted: Iterable[str] = (), own: str | None = None):
        """`allow`: the setting's prefixes and networks; `trusted`: configured services'
        URLs; `own`: the API's public URL, refused whatever its address."""
        self.own = httpx.URL(own) if own else None
        self.prefixes: list[httpx.URL] = []
        self.networks: list[Network] = []
        for entry in [*allow, *trusted]:
            if "://" in entry:
                self.prefixes.append(httpx.URL(entry))
            else:
                self.networks.append(ipaddress.ip_network(entry, strict=False))

    def trusted(self, url: httpx.URL) -> bool:
        """Under a trusted prefix (same scheme, host and port, and below its path)."""
        path = url.path or "/"
        if posixpath.normpath(path) != path.rstrip("/") and path != "/":
            return False  # dot segments: judge nothing by the path
        origin = (url.scheme, url.host, url.port)
        return any(
            (p.scheme, p.host, p.port) == origin and _below(path, p.path or "/")
            for p in self.prefixes
        )

    def reachable(self, address: Address) -> bool:
        """A public address, or one in an allowed network."""
        if any(address in network for network in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded(address)):
            return all(self.reachable(a) for a in inner)
        return address.is_global and not address.is_multicast


def _below(path: str, prefix: str) -> bool:
    """`path` is `prefix` or under it, at a segment boundary (`/v1/decisionsX` is not
    under `/v1/decisions`)."""
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
COMPATIBLE = ipaddress.ip_network("::/96")


def embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which are what it reaches: mapped
    (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`), 6to4
    (`2002:AABB:CCDD::`) and Teredo (the client)."""
    found: list[ipaddress.IPv4Address] = []
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    elif address in COMPATIBLE and int(address) > 1 or any(address in n for n in NAT64):
        found.append(low)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.append(address.teredo[1])
    return found


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


def policy(settings: Settings) -> Policy:
    """The deployment's policy: its configured services and providers are trusted."""
    trusted = [
        settings.service_url(settings.twilio_api_url, "/sandbox/twilio") + "/",
        settings.service_url(settings.fcm_api_url, "/sandbox/fcm") + "/",
        settings.service_url(settings.webhook_url, "/sandbox/webhooks"),
        settings.service_url(settings.decisioning_url, "") + "/v1/decisions",
    ]
    return Policy(settings.egress_allow, trusted, own=settings.public_url)


def shared_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's one client (connection pooling; one place for OpenTelemetry's httpx
    instrumentation), every call under the egress policy."""
    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=5.0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    transport = PolicyTransport(policy(settings), limits=limits)
    return httpx.AsyncClient(
        timeout=timeout, transport=transport, headers={"User-Agent": "journeys/1"}
    )
