"""A journey's experiments: each split's and its holdout's statistics (from the funnel's
counts), the exposures as CSV, and operators' decisions on bandit splits (audited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from journeys.api.deps import MAX_INT, ClientDep, JourneyId, StoresDep
from journeys.api.errors import problem
from journeys.clients.arms import arm_counts
from journeys.schemas.access import requires
from journeys.schemas.base import Schema
from journeys.schemas.experiments import Decision, Experiment, bandit_weights
from journeys.schemas.journey import SLUG, JourneySpec, SplitStep
from journeys.usecases import funnels
from journeys.usecases.experiments import exposures_csv

router = APIRouter(prefix="/v1/journeys/{journey_id}/experiments", tags=["experiments"])
Version = Annotated[int | None, Query(ge=1, le=MAX_INT, description="Default: the latest.")]
SplitId = Annotated[str, Path(pattern=SLUG, description="The split step's id, or `holdout`.")]


class Experiments(Schema):
    journey_id: str
    """The journey."""
    version: int
    """The version counted."""
    counted_at: datetime | None
    """When the counts were taken."""
    experiments: list[Experiment]
    """Each split (fixed or bandit) and the holdout."""


async def _counted(
    request: Request, stores: StoresDep, client: ClientDep, journey_id: str, version: int | None
) -> tuple[JourneySpec, Experiments]:
    try:
        spec, funnel = await funnels.counted(
            request.app.state.funnels, stores, client, journey_id, version
        )
    except LookupError as err:
        raise problem(404, str(err), "path", "journey_id") from err
    found = Experiments(
        journey_id=journey_id,
        version=funnel.version,
        counted_at=funnel.counted_at,
        experiments=funnel.experiments,
    )
    return spec, found


@router.get("")
@requires("read")
async def list_experiments(
    request: Request,
    journey_id: JourneyId,
    stores: StoresDep,
    client: ClientDep,
    version: Version = None,
) -> Experiments:
    """Per split and holdout, per arm: exposures, conversions (the journey's goal), rate,
    the difference and lift against the control arm with 95% intervals, an always-valid
    p-value and confidence sequence (mSPRT), the probability to be best, a sample-ratio
    check, and the verdict in words."""
    return (await _counted(request, stores, client, journey_id, version))[1]


@router.get("/{split_id}")
@requires("read")
async def get_experiment(
    request: Request,
    journey_id: JourneyId,
    split_id: SplitId,
    stores: StoresDep,
    client: ClientDep,
    version: Version = None,
) -> Experiment:
    """One split's (or the holdout's) statistics."""
    _, found = await _counted(request, stores, client, journey_id, version)
    for experiment in found.experiments:
        if experiment.id == split_id:
            return experiment
    raise problem(404, "this journey version has no such experiment", "path", "split_id")


@router.get(
    "/{split_id}/exposures.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The exposures, as CSV."}},
)
@requires("read")
async def export_exposures(
    journey_id: JourneyId,
    split_id: SplitId,
    stores: StoresDep,
    client: ClientDep,
    version: Version = None,
) -> StreamingResponse:
    """One row per exposed enrollment: arm, customer, when it entered, its status and
    whether it converted. Streamed from visibility, for analysts."""
    found = await stores.journeys.get(journey_id, version)
    if found is None:
        raise problem(
            404, "no such journey" + (" version" if version else ""), "path", "journey_id"
        )
    spec, number = found
    rows = exposures_csv(client, spec, number, split_id)
    first = await anext(rows, None)
    if first is None:
        raise problem(404, "this journey version has no such experiment", "path", "split_id")

    async def body() -> AsyncIterator[str]:
        yield first
        async for row in rows:
            yield row

    name = f"{journey_id}-v{number}-{split_id}-exposures.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/{split_id}/decision")
@requires("operate", audit="action")
async def decide(
    request: Request,
    journey_id: JourneyId,
    split_id: SplitId,
    body: Decision,
    stores: StoresDep,
    client: ClientDep,
) -> Experiment:
    """An operator's word on a bandit split of the latest version: `freeze` its weights
    as they are now, declare a `winner` (every later entrant takes that arm), or `release`
    it back to the bandit. Enrollments that already took an arm keep it. Audited."""
    found = await stores.journeys.get(journey_id, None)
    if found is None:
        raise problem(404, "no such journey", "path", "journey_id")
    spec, number = found
    step = next((s for s in spec.steps if s.id == split_id), None)
    if not isinstance(step, SplitStep) or step.mode != "bandit":
        raise problem(404, "the latest version has no bandit split by this id", "path", "split_id")
    names = [p.name for p in step.paths]
    if body.action == "release":
        await stores.splits.release(journey_id, split_id)
    elif body.action == "winner":
        if body.arm not in names:
            raise problem(422, f"the winner must be one of {', '.join(names)}", "body", "arm")
        await stores.splits.decide(journey_id, split_id, "winner", body.reason, arm=body.arm)
    else:
        windowed = step.window is not None
        counts = await arm_counts(client, journey_id, number, split_id, names, windowed=windowed)
        paths = [(p.name, p.weight) for p in step.paths]
        weights, _ = bandit_weights(
            paths, counts, floor=step.exploration, min_sample=step.min_sample
        )
        await stores.splits.decide(journey_id, split_id, "freeze", body.reason, weights=weights)
    request.app.state.funnels.forget((journey_id, number))
    return await get_experiment(request, journey_id, split_id, stores, client, number)
