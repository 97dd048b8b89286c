"""FastAPI dependencies as `Annotated` aliases; the app keeps one of each on `app.state`.

They are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread
hop per dependency on every request (a tenth of the event path's CPU, bench/RESULTS.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from temporalio.client import Client

from journeys.schemas.events import CUSTOMER_ID
from journeys.schemas.journey import SLUG
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.usecases.routing import EventRouter


async def _stores(request: Request) -> Stores:
    return request.app.state.stores


async def _client(request: Request) -> Client:
    return request.app.state.client


async def _router(request: Request) -> EventRouter:
    return request.app.state.router


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


StoresDep = Annotated[Stores, Depends(_stores)]
ClientDep = Annotated[Client, Depends(_client)]
RouterDep = Annotated[EventRouter, Depends(_router)]
SettingsDep = Annotated[Settings, Depends(_settings)]

# Path parameters, bounded: a value outside these is a 422 naming the parameter, never a
# database overflow or a lookup of something that cannot exist.
MAX_INT = 2**31 - 1
JourneyId = Annotated[str, Path(pattern=SLUG, description="A journey id.")]
CustomerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=CUSTOMER_ID,
        description="A customer id: 1 to 200 characters; no whitespace, control "
        "characters, `/`, `\\`, `\"` or `'`.",
    ),
]
Slug = Annotated[str, Path(pattern=SLUG)]
VersionNo = Annotated[int, Path(ge=1, le=MAX_INT)]
RowId = Annotated[int, Path(ge=1, le=2**62)]
