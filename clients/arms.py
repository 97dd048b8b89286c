"""Each experiment arm's exposures and conversions, counted in visibility: an enrollment
that took an arm lists `split:arm` in `JourneyReached` (the holdout's groups
`holdout:control` and `holdout:treated`); a conversion is `JourneyStatus = 'converted'`
or, for an experiment with an attribution window, `split!converted` in the same list. No
table and no activity per exposure: the funnel and the bandit read the same counts."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from journeys.workflows import search_attributes as sa

CONVERTED = f"{sa.JOURNEY_STATUS.name} = 'converted'"


def runs_of(journey_id: str, version: int) -> str:
    """A version's enrollments, one record each (not the runs continued as new)."""
    return (
        f"WorkflowType = 'Journey' AND {sa.JOURNEY_ID.name} = {sa.quoted(journey_id)}"
        f" AND {sa.JOURNEY_VERSION.name} = {version}"
        " AND ExecutionStatus != 'ContinuedAsNew'"
    )


def took(experiment: str, arm: str) -> str:
    """The enrollments that took `arm` of `experiment` (a split's id, or the holdout)."""
    return f"{sa.JOURNEY_REACHED.name} = {sa.quoted(sa.arm(experiment, arm))}"


def converted(experiment: str, windowed: bool) -> str:
    """The enrollments that converted: within the experiment's attribution window when it
    has one (`sa.attributed`), else at any time while enrolled."""
    if not windowed:
        return CONVERTED
    return f"{sa.JOURNEY_REACHED.name} = {sa.quoted(sa.attributed(experiment))}"


async def arm_counts(
    client: Client,
    journey_id: str,
    version: int,
    experiment: str,
    arms: list[str],
    *,
    windowed: bool = False,
) -> list[tuple[int, int]]:
    """(exposures, conversions) per arm, in order."""
    base = runs_of(journey_id, version)
    won = converted(experiment, windowed)

    async def count(*clauses: str) -> int:
        return (await client.count_workflows(" AND ".join((base, *clauses)))).count

    counts = await asyncio.gather(
        *(count(took(experiment, a)) for a in arms),
        *(count(took(experiment, a), won) for a in arms),
    )
    return list(zip(counts[: len(arms)], counts[len(arms) :], strict=True))
