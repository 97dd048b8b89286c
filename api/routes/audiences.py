"""Audience entry: uploaded lists, and runs that enrol an audience at a set rate with
progress (done/total, rate, ETA), cancellable, never enrolling anyone twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import Field
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from journeys.api.deps import ClientDep, JourneyId, SettingsDep, Slug, StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import MB, requires
from journeys.schemas.audience import AudienceProgress, AudienceRunOut, audience_run_id
from journeys.schemas.base import Schema
from journeys.schemas.events import CUSTOMER_ID
from journeys.schemas.journey import SLUG, JourneySpec
from journeys.usecases.audience_runs import start_run
from journeys.workflows.audience import PROGRESS_MEMO

router = APIRouter(tags=["audiences"])


class MembersIn(Schema):
    customer_ids: list[Annotated[str, Field(min_length=1, max_length=200, pattern=CUSTOMER_ID)]] = (
        Field(min_length=1, max_length=10_000)
    )
    """Up to 10,000 customer ids to add (ids already there are kept once)."""


class AudienceOut(Schema):
    id: str
    """The list's id."""
    size: int
    """How many customers it holds."""


class RunIn(Schema):
    run: str | None = Field(default=None, pattern=SLUG)
    """The run's name; default `v{version}`: starting it again returns the same run."""
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)
    """Default: the journey's `entry.audience.rate_per_second`."""


@router.post("/v1/audiences/{audience_id}/members")
@requires("operate", max_body=4 * MB)
async def add_members(audience_id: Slug, body: MembersIn, stores: StoresDep) -> AudienceOut:
    """Add up to 10,000 customer ids to an uploaded list (ids already in it stay once)."""
    if any(not c or len(c) > 200 for c in body.customer_ids):
        raise problem(422, "customer ids are 1 to 200 characters", "body", "customer_ids")
    return AudienceOut(
        id=audience_id, size=await stores.audiences.add(audience_id, body.customer_ids)
    )


@router.get("/v1/audiences/{audience_id}")
@requires("read")
async def get_audience(audience_id: Slug, stores: StoresDep) -> AudienceOut:
    """An uploaded list and how many customers it holds."""
    return AudienceOut(id=audience_id, size=await stores.audiences.size(audience_id))


async def _journey(stores: StoresDep, journey_id: JourneyId) -> tuple[JourneySpec, int]:
    found = await stores.journeys.get(journey_id, None)
    if found is None:
        raise problem(404, "no such journey", "path", "journey_id")
    return found


@router.post("/v1/journeys/{journey_id}/audience-runs", status_code=status.HTTP_202_ACCEPTED)
@requires("operate")
async def start(
    journey_id: JourneyId, body: RunIn, stores: StoresDep, client: ClientDep, settings: SettingsDep
) -> AudienceRunOut:
    """Enrol the journey's audience (its latest version) at its rate; answers at once with
    the run's progress, which `GET .../audience-runs/{run}` follows."""
    spec, version = await _journey(stores, journey_id)
    if spec.entry.audience is None:
        raise problem(409, "this journey enters on an event, not an audience")
    run = body.run or f"v{version}"
    await start_run(client, spec, version, run, body.rate_per_second, settings.task_queue)
    return await get_run(journey_id, run, client, stores)


async def _described(
    client: ClientDep, journey_id: JourneyId, run: str
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    handle = client.get_workflow_handle(audience_run_id(journey_id, run))
    try:
        return handle, await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise problem(404, "no such audience run of this journey", "path", "run") from err
        raise


@router.get("/v1/journeys/{journey_id}/audience-runs/{run}")
@requires("read")
async def get_run(
    journey_id: JourneyId, run: Slug, client: ClientDep, stores: StoresDep
) -> AudienceRunOut:
    """done/total, entered, rate (customers/s) and ETA (seconds). Read from the run's memo,
    so it answers however busy the workers are."""
    handle, described = await _described(client, journey_id, run)
    memo = await described.memo()
    if PROGRESS_MEMO in memo:
        progress = AudienceProgress.model_validate(memo[PROGRESS_MEMO])
    else:  # its first workflow task has not run yet
        spec, version = await _journey(stores, journey_id)
        at = described.start_time
        progress = AudienceProgress(
            journey_id=spec.id, version=version, started_at=at, updated_at=at
        )
    if described.status == WorkflowExecutionStatus.CANCELED:
        progress.status = "cancelled"
    return AudienceRunOut(run=run, workflow_id=handle.id, progress=progress)


@router.post("/v1/journeys/{journey_id}/audience-runs/{run}/cancel")
@requires("operate")
async def cancel(
    journey_id: JourneyId, run: Slug, client: ClientDep, stores: StoresDep
) -> AudienceRunOut:
    """Stop enrolling; customers already enrolled stay enrolled."""
    handle, described = await _described(client, journey_id, run)
    if described.status != WorkflowExecutionStatus.RUNNING:
        raise problem(409, "the audience run already ended")
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError, TimeoutError):
        await asyncio.wait_for(handle.result(), 10)  # ends after the page's current starts
    return await get_run(journey_id, run, client, stores)
