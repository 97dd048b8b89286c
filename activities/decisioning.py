"""The `decide` step's activity: a call to the decisioning service (built in by default)."""

from __future__ import annotations

import httpx
from temporalio import activity

from journeys.activities.http import Permanent, call
from journeys.schemas import activities as names
from journeys.schemas.activities import Decisions, invalid_request
from journeys.schemas.decision import DecisionRequest, DecisionResult
from journeys.schemas.settings import Settings
from journeys.storage.secrets import services_key


class DecisioningActivities(Decisions):
    def __init__(self, settings: Settings, http: httpx.AsyncClient):
        self._url = settings.service_url(settings.decisioning_url, "") + "/v1/decisions"
        self._http = http
        self._auth = {"Authorization": f"Bearer {services_key(settings).decode()}"}

    @activity.defn(name=names.DECIDE)
    async def decide(self, request: DecisionRequest) -> DecisionResult:
        try:
            response = await call(
                self._http,
                "POST",
                self._url,
                what="decisioning",
                idempotency_key=request.key,
                json=request.model_dump(mode="json"),
                headers=self._auth,
            )
        except Permanent as err:
            raise invalid_request(str(err)) from err
        return DecisionResult.model_validate(response.json())
