"""A journey version's experiments, from its funnel's arm counts: each split (fixed or
bandit) and its holdout, compared with `schemas.experiments.compare`, and the exposures
and conversions per enrollment as CSV for analysts."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from temporalio.client import Client

from journeys.clients.arms import runs_of, took
from journeys.schemas.experiments import ArmCounts, Experiment, compare
from journeys.schemas.funnel import ArmFunnel
from journeys.schemas.journey import CONTROL, HOLDOUT, JourneySpec, SendStep, SplitStep
from journeys.storage.tables import SplitDecisionRow
from journeys.workflows import search_attributes as sa

CSV_COLUMNS = [
    "experiment",
    "arm",
    "enrollment",
    "customer_id",
    "entered_at",
    "status",
    "converted",
]
CSV_ROWS = 1_000_000
"""Rows one export holds at most (a bigger one is cut, and says so in its last row)."""


Reacted = dict[str, dict[str, tuple[int, int]]]
"""Per send step judged on opens or clicks: per variant, (messages sent, reacted)."""


def experiments(
    spec: JourneySpec,
    arms: list[ArmFunnel],
    decisions: dict[str, SplitDecisionRow],
    reacted: Reacted | None = None,
) -> list[Experiment]:
    """Every experiment's statistics, from the funnel's arm counts (and for content judged
    on opens or clicks, the ledger's)."""
    counted = {(a.split, a.arm): a for a in arms}
    found = []
    for step in spec.steps:
        if isinstance(step, SendStep) and step.variants:
            found.append(_content(step, counted, (reacted or {}).get(step.id, {})))
        if not isinstance(step, SplitStep) or len(step.paths) < 2:
            continue
        counts = [
            ArmCounts(
                name=p.name,
                weight=p.weight,
                exposures=counted[step.id, p.name].entered,
                conversions=counted[step.id, p.name].converted,
            )
            for p in step.paths
        ]
        bandit = step.mode == "bandit"
        verdict = compare(counts, step.control, check_ratio=not bandit)
        decision = decisions.get(step.id)
        said = None
        if decision is not None:
            said = f"winner: {decision.arm}" if decision.action == "winner" else "frozen"
        found.append(
            Experiment(
                id=step.id,
                kind="bandit" if bandit else "split",
                decision=said,
                **verdict.model_dump(),
            )
        )
    if spec.holdout is not None:
        control, treated = counted[HOLDOUT, "control"], counted[HOLDOUT, "treated"]
        share = spec.holdout.share
        counts = [
            ArmCounts(
                name="control",
                weight=share,
                exposures=control.entered,
                conversions=control.converted,
            ),
            ArmCounts(
                name="treated",
                weight=1 - share,
                exposures=treated.entered,
                conversions=treated.converted,
            ),
        ]
        verdict = compare(counts, "control")
        found.append(Experiment(id=HOLDOUT, kind="holdout", **verdict.model_dump()))
    return found


def _content(
    step: SendStep, counted: dict[tuple[str, str], ArmFunnel], reacted: dict[str, tuple[int, int]]
) -> Experiment:
    """A send step's variants, on the goal (per enrollment) or on opens or clicks (per
    message sent)."""
    counts = []
    for arm in step.arms():
        if step.metric == "goal":
            n, c = counted[step.id, arm.name].entered, counted[step.id, arm.name].converted
        else:
            n, c = reacted.get(arm.name, (0, 0))
        counts.append(ArmCounts(name=arm.name, weight=arm.weight, exposures=n, conversions=c))
    verdict = compare(counts, CONTROL, check_ratio=step.metric == "goal")
    return Experiment(id=step.id, kind="content", metric=step.metric, **verdict.model_dump())


async def exposures_csv(
    client: Client, spec: JourneySpec, version: int, experiment: str
) -> AsyncIterator[str]:
    """One row per enrollment that took part in `experiment` (a split's id or the
    holdout): its arm, when it entered, its status and whether it converted (the journey's
    goal). From visibility, streamed; nothing at all when there is no such experiment."""
    names = dict(_arms(spec)).get(experiment)
    if names is None:
        return
    out = io.StringIO()
    writer = csv.writer(out)

    def row(values: list[object]) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(values)
        return out.getvalue()

    yield row(list(CSV_COLUMNS))
    written = 0
    for arm in names:
        query = f"{runs_of(spec.id, version)} AND {took(experiment, arm)}"
        async for run in client.list_workflows(query, page_size=1000):
            if written >= CSV_ROWS:
                yield row(["# cut", f"at {CSV_ROWS} rows", "", "", "", "", ""])
                return
            attributes = run.typed_search_attributes
            status = attributes.get(sa.JOURNEY_STATUS) or ""
            yield row(
                [
                    experiment,
                    arm,
                    run.id,
                    attributes.get(sa.CUSTOMER_ID) or "",
                    run.start_time.isoformat(),
                    status,
                    int(status == "converted"),
                ]
            )
            written += 1


def _arms(spec: JourneySpec) -> list[tuple[str, list[str]]]:
    found = [
        (s.id, [p.name for p in s.paths])
        for s in spec.steps
        if isinstance(s, SplitStep) and len(s.paths) > 1
    ]
    found += [
        (s.id, [a.name for a in s.arms()])
        for s in spec.steps
        if isinstance(s, SendStep) and s.variants
    ]
    if spec.holdout is not None:
        found.append((HOLDOUT, ["control", "treated"]))
    return found
