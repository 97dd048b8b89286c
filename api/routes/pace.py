"""Send queues: what waits for a provider's ceiling or a journey's pace, and an operator's
change of a ceiling at run time, without a restart (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from journeys.api.deps import SettingsDep, StoresDep
from journeys.schemas.access import requires
from journeys.schemas.base import Schema
from journeys.schemas.pace import QueueView
from journeys.usecases import pace

router = APIRouter(prefix="/v1/pace", tags=["pace"])
_SLUG = r"[a-z0-9][a-z0-9_\-]{0,79}"
BUCKET = (
    rf"^(?:email|push|webhook|(?:sms|whatsapp):\+[1-9]\d{{6,14}}|journey:{_SLUG}(?:/{_SLUG})?)$"
)


class Queues(Schema):
    queues: list[QueueView]
    """Each paced bucket: its ceiling, waiting sends, oldest wait and drain time."""


class LimitChange(Schema):
    bucket: Annotated[str, Field(pattern=BUCKET, max_length=200)]
    """`email`, `push`, `webhook`, `sms:+15005550006`, `whatsapp:+14155238886`,
    `journey:<id>` or `journey:<id>/<step>`."""
    per_second: Annotated[float | None, Field(gt=0, le=1_000_000)]
    """The new ceiling, sends a second across every worker; null: back to the settings'
    (a journey's: its spec's)."""


@router.get("")
@requires("read")
async def queues(stores: StoresDep, settings: SettingsDep) -> Queues:
    """Every send queue: per provider (and SMS number) and per paced journey."""
    return Queues(queues=await pace.queues(stores, settings))


@router.put("")
@requires("operate", audit="action")
async def set_limit(body: LimitChange, stores: StoresDep, settings: SettingsDep) -> Queues:
    """Change a bucket's ceiling now, on every worker (the next slot booked uses it)."""
    await stores.pace.set_limit(body.bucket, body.per_second)
    return Queues(queues=await pace.queues(stores, settings))
