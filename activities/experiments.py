"""The bandit split's weights: Thompson sampling on each arm's exposures and conversions
(visibility counts, read at most once a minute per split), unless an operator froze them or
declared a winner. The result goes into the enrollment's history, so its arm never moves."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client

from journeys.clients.arms import arm_counts
from journeys.schemas.activities import SPLIT_WEIGHTS, Experiments
from journeys.schemas.experiments import SplitWeights, WeightsRequest, bandit_weights
from journeys.storage.splits import SplitDecisions

Key = tuple[str, int, str]


class ExperimentActivities(Experiments):
    def __init__(self, client: Client, decisions: SplitDecisions, refresh_seconds: float = 60):
        """`refresh_seconds`: how old a split's counts may be before they are read again."""
        self._client = client
        self._decisions = decisions
        self._refresh = refresh_seconds
        self._counted: dict[Key, tuple[float, datetime, list[tuple[int, int]]]] = {}
        self._counting: dict[Key, asyncio.Lock] = {}

    @activity.defn(name=SPLIT_WEIGHTS)
    async def weights(self, request: WeightsRequest) -> SplitWeights:
        names = [name for name, _ in request.paths]
        decision = await self._decisions.get(request.journey_id, request.split_id)
        if decision is not None and decision.action == "winner" and decision.arm in names:
            one_hot = [1.0 if n == decision.arm else 0.0 for n in names]
            return SplitWeights(weights=one_hot, basis="winner", computed_at=decision.decided_at)
        if decision is not None and decision.weights and len(decision.weights) == len(names):
            held = decision.weights
            return SplitWeights(weights=held, basis="frozen", computed_at=decision.decided_at)
        at, counts = await self._counts(request)
        weights, ready = bandit_weights(
            request.paths, counts, floor=request.exploration, min_sample=request.min_sample
        )
        return SplitWeights(weights=weights, basis="thompson" if ready else "prior", computed_at=at)

    async def _counts(self, request: WeightsRequest) -> tuple[datetime, list[tuple[int, int]]]:
        """The split's counts as of at most `refresh_seconds` before this call. One read at
        a time per split: calls made while one is under way share the next one."""
        asked = time.monotonic()
        key = (request.journey_id, request.version, request.split_id)
        lock = self._counting.setdefault(key, asyncio.Lock())
        async with lock:
            held = self._counted.get(key)
            if held is not None and held[0] >= asked - self._refresh:
                return held[1], held[2]
            started, at = time.monotonic(), datetime.now(UTC)
            counts = await arm_counts(
                self._client,
                request.journey_id,
                request.version,
                request.split_id,
                [name for name, _ in request.paths],
                windowed=request.windowed,
            )
            self._counted[key] = (started, at, counts)
            return at, counts
