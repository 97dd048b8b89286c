"""The send queues: each paced bucket's waiting sends, rate and drain time, and an
operator's ceiling changes (they hold on every worker at once: the ceiling is read from
the bucket's row as each slot is booked)."""

from __future__ import annotations

from journeys.schemas.pace import PROVIDERS, QueueView
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores


async def queues(stores: Stores, settings: Settings) -> list[QueueView]:
    """Every provider bucket this deployment sends through, and every bucket with a row
    or a queued send (journeys' paces among them, at their latest version's pace)."""
    senders = [b for c in PROVIDERS for b in settings.senders(c)]
    found = await stores.pace.queues(settings.bucket_limit, senders)
    for view in found:
        if view.per_second is None and view.bucket.startswith("journey:"):
            view.per_second = await _journey_pace(stores, view.bucket)
            view.limit_from = "journey" if view.per_second else view.limit_from
    return found


async def _journey_pace(stores: Stores, bucket: str) -> float | None:
    journey_id, _, step_id = bucket.removeprefix("journey:").partition("/")
    found = await stores.journeys.get(journey_id, None)
    if found is None:
        return None
    spec = found[0]
    step = next((s for s in spec.steps if s.id == step_id), None) if step_id else None
    pace = getattr(step, "pace", None) if step_id else spec.pace
    return pace.per_minute / 60 if pace is not None else None


async def journey_queues(stores: Stores, settings: Settings, journey_id: str) -> list[QueueView]:
    """The queues a journey's sends wait in: its own pace's, and the providers' (whose
    waiting count is everyone's)."""
    own = f"journey:{journey_id}"
    return [
        q
        for q in await queues(stores, settings)
        if q.bucket == own or q.bucket.startswith(f"{own}/") or not q.bucket.startswith("journey:")
    ]
