"""Profile lookups the interpreter needs: branch predicates and local-time waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import activity

from schemas import activities as names
from schemas.activities import LocalTimeRequest
from schemas.profile import Profile
from storage.profiles import ProfileStore


def next_local_time(request: LocalTimeRequest, timezone: str) -> datetime:
    """The first instant after `request.after` when the wall clock in `timezone` reads
    `request.at`. A wall time skipped by a DST change resolves to the instant after it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local_now = request.after.astimezone(zone)
    for days in range(0, 3):
        day = (local_now + timedelta(days=days)).date()
        candidate = datetime.combine(day, request.at, tzinfo=zone)
        # Round-trip through UTC to normalise non-existent (spring-forward) wall times.
        instant = candidate.astimezone(UTC)
        if instant > request.after:
            return instant
    raise AssertionError("unreachable: a wall time recurs within two days")


class ProfileActivities:
    def __init__(self, profiles: ProfileStore):
        self._profiles = profiles

    @activity.defn(name=names.GET_PROFILE)
    async def get_profile(self, customer_id: str) -> Profile:
        return await self._profiles.get_or_default(customer_id)

    @activity.defn(name=names.NEXT_LOCAL_TIME)
    async def next_local_time(self, request: LocalTimeRequest) -> datetime:
        profile = await self._profiles.get_or_default(request.customer_id)
        return next_local_time(request, profile.timezone)
