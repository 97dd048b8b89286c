"""The time-zone rule, once: a zone a caller sends must be an IANA name this machine knows
(`TimeZone`), and a zone read back that is not (an old profile, a zone tzdata dropped)
falls back to UTC (`zone`), so a local-time wait or quiet hours never fail on it."""

from __future__ import annotations

from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator

FALLBACK = "UTC"


@cache
def known() -> frozenset[str]:
    """Every IANA zone name tzdata has here, and UTC."""
    return frozenset(available_timezones()) | {FALLBACK}


def is_known(name: object) -> bool:
    return isinstance(name, str) and name in known()


def check(name: str) -> str:
    """`name`, or ValueError (a pydantic validator's clear 422) for an unknown zone."""
    if not is_known(name):
        raise ValueError("unknown time zone (use an IANA name like Asia/Jakarta)")
    return name


TimeZone = Annotated[str, AfterValidator(check)]
"""An IANA time zone name, validated."""


def zone(name: str | None) -> ZoneInfo:
    """The zone `name` names, or UTC when it is missing or unknown."""
    return ZoneInfo(zone_name(name))


def zone_name(name: str | None) -> str:
    """`name` if it is a zone this machine knows, else UTC."""
    if not name:
        return FALLBACK
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return FALLBACK
    return name
