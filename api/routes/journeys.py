"""Publishing and reading journey versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from journeys.api.deps import ClientDep, JourneyId, RouterDep, SettingsDep, StoresDep, VersionNo
from journeys.api.errors import problem
from journeys.api.models import JourneySummary, JourneyVersionOut, Published
from journeys.api.pages import Cursor, Limit, Page, paginate
from journeys.schemas.access import MB, requires
from journeys.schemas.journey import JourneySpec
from journeys.storage.journeys import KeyReused
from journeys.usecases import publishing

router = APIRouter(prefix="/v1/journeys", tags=["journeys"])


@router.post("", status_code=status.HTTP_201_CREATED)
@requires("journeys:write", max_body=MB, audit="id")
async def publish(
    spec: JourneySpec,
    stores: StoresDep,
    events: RouterDep,
    client: ClientDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Published:
    """Validate and publish `spec` as the journey's next version. Running enrollments keep
    the version they entered with. A scheduled audience entry's Temporal Schedule now
    starts runs of this version. A retry with the same `Idempotency-Key` and body answers
    the version the first made; the same key with another body is 422."""
    try:
        version = await publishing.publish(
            spec,
            idempotency_key,
            stores=stores,
            events=events,
            client=client,
            task_queue=settings.task_queue,
        )
    except KeyReused as err:
        raise problem(422, str(err), "header", "idempotency-key") from err
    except publishing.ScheduleRefused as err:
        raise problem(422, "Temporal refused this schedule", "body", "entry", "schedule") from err
    return Published(id=spec.id, version=version)


@router.get("")
@requires("read")
async def list_journeys(
    stores: StoresDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[JourneySummary]:
    """Every journey's latest version, by id."""
    found = [
        JourneySummary(
            id=spec.id,
            name=spec.name,
            version=version,
            entry_event=spec.entry.event,
            steps=len(spec.steps),
        )
        for spec, version, *_ in await stores.journeys.latest()
    ]
    return paginate(sorted(found, key=lambda j: j.id), lambda j: j.id, limit, cursor)


async def _version_out(
    stores: StoresDep, journey_id: JourneyId, version: int | None
) -> JourneyVersionOut:
    found = await stores.journeys.get(journey_id, version)
    if found is None:
        what = "no such journey" + (" version" if version else "")
        raise problem(404, what, "path", "id")
    spec, number = found
    return JourneyVersionOut(
        id=journey_id,
        version=number,
        versions=await stores.journeys.versions(journey_id),
        spec=spec,
    )


@router.get("/{journey_id}")
@requires("read")
async def get_journey(journey_id: JourneyId, stores: StoresDep) -> JourneyVersionOut:
    """The latest version of a journey."""
    return await _version_out(stores, journey_id, None)


@router.get("/{journey_id}/versions/{version}")
@requires("read")
async def get_version(
    journey_id: JourneyId, version: VersionNo, stores: StoresDep
) -> JourneyVersionOut:
    """One version of a journey, as published, with the list of its versions."""
    return await _version_out(stores, journey_id, version)
