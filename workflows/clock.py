"""Local time for what an operator reads, computed inside the workflow sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_time(moment: datetime, zone: str | None) -> str:
    """`moment` as "2026-11-24 10:00 Europe/Berlin" (UTC when the zone is unknown).

    The sandbox hands out a proxy of ZoneInfo that `astimezone` refuses, so this applies
    the zone's offsets itself: of the offsets in force around `moment`, the one whose
    local wall time maps back to it (PEP 495: in a gap fold 0 gives the earlier offset and
    fold 1 the later; in a repeated hour, the other way round)."""
    name = zone or "UTC"
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        name, tz = "UTC", ZoneInfo("UTC")
    naive = moment.astimezone(UTC).replace(tzinfo=None)
    day = timedelta(days=1)
    for offset in {_offset(tz, naive + d) for d in (-day, timedelta(0), day)}:
        local = naive + offset
        first, second = _offset(tz, local), _offset(tz, local.replace(fold=1))
        if first == second == offset or (first > second and offset in (first, second)):
            return f"{local:%Y-%m-%d %H:%M} {name}"
    return f"{naive:%Y-%m-%d %H:%M} UTC"  # pragma: no cover (no zone has no valid offset)


def _offset(tz: tzinfo, wall: datetime) -> timedelta:
    return tz.utcoffset(wall) or timedelta(0)
