"""Local time for what an operator reads."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from journeys.schemas.zones import zone_name


def local_time(moment: datetime, zone: str | None) -> str:
    """`moment` as "2026-11-24 10:00 Europe/Berlin" (UTC when the zone is unknown). The
    sandbox lets `ZoneInfo` through (workers/sandbox.py)."""
    name = zone_name(zone)
    return f"{moment.astimezone(ZoneInfo(name)):%Y-%m-%d %H:%M} {name}"
