"""Profile lookups the interpreter needs: branch predicates, local-time waits and
send-time optimisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import activity

from journeys.schemas import activities as names
from journeys.schemas.activities import (
    LocalTimeRequest,
    ProfileRequest,
    Profiles,
    ProfileUpdate,
    SendTimeRequest,
)
from journeys.schemas.guardrails import best_hour, next_local_time
from journeys.storage.profiles import ProfileStore


class ProfileActivities(Profiles):
    def __init__(self, profiles: ProfileStore):
        self._profiles = profiles

    @activity.defn(name=names.GET_PROFILE)
    async def get_profile(  # type: ignore[override]
        self, request: ProfileRequest | str, old_fields: list[str] | None = None
    ) -> dict[str, Any]:
        """Only the profile fields the branch reads (and, for `group.*` fields, the
        traits of the customer's group under `group`): the result goes into history.
        A workflow scheduled before the contract sent (customer id, fields): taken too,
        until no history within retention has such a call (README, "Changing workflow
        code"). With the optional second parameter, the SDK decodes a lone
        `ProfileRequest` without type hints (their count differs), so it comes as JSON."""
        if isinstance(request, str):
            request = ProfileRequest(customer_id=request, fields=old_fields)
        elif not isinstance(request, ProfileRequest):  # one payload for two hints: raw JSON
            request = ProfileRequest.model_validate(request)
        customer_id, fields = request.customer_id, request.fields
        profile = await self._profiles.get_or_default(customer_id)
        view = profile.view(fields)
        if fields and any(f.startswith("group.") for f in fields):
            view["group"] = await self._profiles.group_traits(profile.group_id)
        return view

    @activity.defn(name=names.UPDATE_PROFILE)
    async def update_profile(self, update: ProfileUpdate) -> None:
        """Nothing comes back: the profile stays out of history."""
        await self._profiles.update(update.customer_id, update.attributes, update.lifecycle_stage)

    @activity.defn(name=names.NEXT_LOCAL_TIME)
    async def next_local_time(self, request: LocalTimeRequest) -> datetime:
        profile = await self._profiles.get_or_default(request.customer_id)
        return next_local_time(request.at, request.after, profile.timezone)

    @activity.defn(name=names.BEST_SEND_TIME)
    async def best_send_time(self, request: SendTimeRequest) -> datetime:
        profile = await self._profiles.get_or_default(request.customer_id)
        return best_hour(profile.active_hours, request.at, request.within)
