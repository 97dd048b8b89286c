"""Funnels: per journey version and step, over the API and on a small live page."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from journeys.api.deps import MAX_INT, ClientDep, JourneyId, SettingsDep, StoresDep
from journeys.api.errors import problem
from journeys.schemas.access import public, requires
from journeys.schemas.funnel import Funnel
from journeys.usecases import funnels, pace

router = APIRouter(tags=["funnels"])
STATIC = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC / "funnel.html"


@router.get("/v1/journeys/{journey_id}/funnel")
@requires("read")
async def get_funnel(
    request: Request,
    journey_id: JourneyId,
    stores: StoresDep,
    client: ClientDep,
    settings: SettingsDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Funnel:
    """Entered, reached, sent, suppressed by reason, converted and exited per step of one
    version (the latest by default), conversion per split arm, and the journey as a
    Mermaid diagram with those counts, its goal's conversions per step, and links to each
    step's enrollments in the Temporal UI. Counts are live: visibility lags by about a
    second."""
    ui = f"{settings.temporal_ui().rstrip('/')}/namespaces/{client.namespace}"
    try:
        _, counted = await funnels.counted(
            request.app.state.funnels, stores, client, journey_id, version, ui
        )
    except LookupError as err:
        raise problem(404, str(err), "path", "journey_id") from err
    queues = await pace.journey_queues(stores, settings, journey_id)
    return counted.model_copy(update={"queues": queues})


@router.get("/journeys/{journey_id}/funnel", response_class=HTMLResponse, include_in_schema=False)
@public()
async def funnel_page(journey_id: JourneyId) -> HTMLResponse:
    """The diagram page; it reads the funnel API and redraws every few seconds."""
    return HTMLResponse(PAGE.read_text())


@router.get("/static/mermaid.js", include_in_schema=False)
@public()
async def mermaid_js() -> FileResponse:
    """Mermaid, served from the installed package (nothing is fetched from a CDN)."""
    path = resources.files("mermaidx") / "assets" / "mermaid.js"
    return FileResponse(str(path), media_type="text/javascript")


@router.get("/static/funnel.js", include_in_schema=False)
@public()
async def funnel_js() -> FileResponse:
    """The page's script, a file of its own: the page's CSP runs no inline script."""
    return FileResponse(str(STATIC / "funnel.js"), media_type="text/javascript")
