"""Stable split assignment: the same (journey, step, customer) always takes the same path."""

from __future__ import annotations

import hashlib

from journeys.schemas.journey import SplitPath


def bucket(journey_id: str, step_id: str, customer_id: str) -> float:
    """A number in [0, 1) derived only from its inputs, uniform across customers."""
    digest = hashlib.sha256(f"{journey_id}\x1f{step_id}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(paths: list[SplitPath], point: float) -> SplitPath:
    """The arm `point` falls in, by the arms' written weights."""
    return paths[weighted([p.weight for p in paths], point)]


def weighted(weights: list[float], point: float) -> int:
    """The index `point` falls in, with `weights` laid end to end over [0, 1)."""
    mark = point * sum(weights)
    running = 0.0
    for i, weight in enumerate(weights):
        running += weight
        if mark < running:
            return i
    return len(weights) - 1
