"""Where outbound calls may go, as a rule with no I/O: the worker applies it at connect
time (`activities.egress`, after DNS), and publishing applies it to the URLs an author
wrote (`Policy.refusal`), so a journey that could only fail at send time is refused first.

The rule: a URL under a trusted prefix goes (the services and providers this deployment
is configured with, and `JOURNEYS_EGRESS_ALLOW` prefixes); anything else may only reach
public addresses, or networks `JOURNEYS_EGRESS_ALLOW` names.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
from collections.abc import Iterable

import httpx

from journeys.schemas.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    def refusal(self, url: str) -> str | None:
        """Why a URL an author wrote (a template) will be refused when it is called, or
        None when it may go (a name is resolved and checked then too). A template may fill
        a URL's path and query only: never its scheme, host or port."""
        templated = _TEMPLATE.search(url)
        if templated:
            origin = _ORIGIN.match(url[: templated.start()])
            if origin is None:
                return "a template may fill a URL's path or query, not its scheme, host or port"
            url = _TEMPLATE.sub("x", url)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as err:
            return f"not a valid URL ({err})"
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return "not an http(s) URL with a host"
        if self.trusted(parsed):
            return None
        own = self.own
        if own is not None and (parsed.host, parsed.port) == (own.host, own.port):
            return "that is this deployment's own API"
        host = parsed.host.rstrip(".").lower()
        address: Address | None = None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-w]", host):
                try:  # 0177.0.0.1, 2130706433, 0x7f.1: what a resolver makes of them
                    address = ipaddress.IPv4Address(socket.inet_aton(host))
                except OSError:
                    address = None
            if host == "localhost" or host.endswith(".localhost"):
                address = ipaddress.IPv4Address("127.0.0.1")
        if address is not None and not self.reachable(address):
            return (
                f"{host} is a private, loopback or link-local address "
                "(allow it with JOURNEYS_EGRESS_ALLOW)"
            )
        return None


def _below(path: str, prefix: str) -> bool:
    """`path` is `prefix` or under it, at a segment boundary (`/v1/decisionsX` is not
    under `/v1/decisions`)."""
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


_TEMPLATE = re.compile(r"\{\{|\{%")
_ORIGIN = re.compile(r"^https?://[^/?#{]+[/?]")
"""A URL's scheme, host and port, ended by the start of its path or query."""
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


def policy(settings: Settings) -> Policy:
    """The deployment's policy: its configured services and providers are trusted."""
    trusted = [
        settings.service_url(settings.twilio_api_url, "/sandbox/twilio") + "/",
        settings.service_url(settings.fcm_api_url, "/sandbox/fcm") + "/",
        settings.service_url(settings.webhook_url, "/sandbox/webhooks"),
        settings.service_url(settings.decisioning_url, "") + "/v1/decisions",
    ]
    return Policy(settings.egress_allow, trusted, own=settings.public_url)
