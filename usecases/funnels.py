"""Funnels from what already exists: visibility counts over the enrollments' search
attributes (`JourneyReached`, `JourneyStep`, `JourneyStatus`) and the delivery ledger's
send outcomes and its messages' reactions. No event table, no extra activity per step."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from urllib.parse import quote

from temporalio.client import Client

from journeys.clients.arms import CONVERTED, runs_of, took
from journeys.clients.arms import converted as converted_in
from journeys.schemas.funnel import ArmFunnel, Funnel, StepFunnel, StepReactions
from journeys.schemas.journey import HOLDOUT, JourneySpec, SendStep, SplitStep
from journeys.storage.ledger import DeliveryLedger
from journeys.storage.reactions import ReactionStore
from journeys.storage.stores import Stores
from journeys.storage.tables import SplitDecisionRow
from journeys.usecases.experiments import experiments
from journeys.workflows import search_attributes as sa

STATUSES = ("active", "paused", "completed", "converted", "exited")
COUNTS_AT_ONCE = 16
"""Visibility counts in flight per funnel: a 1,000-step journey asks 2,000 of them."""
LIVE = {s: ("ExecutionStatus = 'Running'",) for s in ("active", "paused")}


class Shared:
    """Funnels counted lately, shared between callers. While a funnel is being counted,
    others asking for it wait for that count (one in flight per funnel, however many pages
    refresh it), and the answer is reused for `fresh` seconds, or for twice as long as it
    took to count (a 1,000-step journey's funnel is thousands of visibility counts)."""

    def __init__(self, fresh: float = 2.0) -> None:
        self.fresh = fresh
        self._counts: dict[tuple[str, int], tuple[float, asyncio.Task[Funnel]]] = {}

    def forget(self, key: tuple[str, int]) -> None:
        """Count it again next time (an operator changed what it shows)."""
        held = self._counts.get(key)
        if held is not None and held[1].done():
            del self._counts[key]

    async def get(self, key: tuple[str, int], count: Callable[[], Awaitable[Funnel]]) -> Funnel:
        now = time.monotonic()
        held = self._counts.get(key)
        if held is not None:
            until, task = held
            if not task.done() or (now < until and task.exception() is None):
                return await asyncio.shield(task)  # (one caller's cancel leaves the others')
        for stale in [k for k, (until, t) in self._counts.items() if t.done() and until < now]:
            del self._counts[stale]

        async def timed() -> Funnel:
            started = time.monotonic()
            found = await count()
            took = time.monotonic() - started
            self._counts[key] = (time.monotonic() + max(self.fresh, 2 * took), task)
            return found

        task = asyncio.ensure_future(timed())
        self._counts[key] = (float("inf"), task)
        return await asyncio.shield(task)


async def funnel(
    client: Client,
    ledger: DeliveryLedger,
    reactions: ReactionStore,
    spec: JourneySpec,
    version: int,
    versions: list[int],
    ui: str | None = None,
    decisions: dict[str, SplitDecisionRow] | None = None,
) -> Funnel:
    """`ui`: the Temporal UI's address, for the links to each step's list of enrollments;
    `decisions`: operators' words on its bandit splits."""
    decisions = decisions or {}
    base = runs_of(spec.id, version)

    at_once = asyncio.Semaphore(COUNTS_AT_ONCE)

    async def count(*clauses: str) -> int:
        query = " AND ".join((base, *clauses))
        async with at_once:
            return (await client.count_workflows(query)).count

    reached = f"{sa.JOURNEY_REACHED.name} = "
    running = "ExecutionStatus = 'Running'"  # a run ended in the UI still says active
    live = f"{sa.JOURNEY_STATUS.name} IN ('active', 'paused') AND {running}"
    stopped = f"{sa.JOURNEY_STATUS.name} IN ('active', 'paused') AND ExecutionStatus != 'Running'"
    arms = [(s.id, p.name) for s in spec.steps if isinstance(s, SplitStep) for p in s.paths]
    arms += [(s.id, a.name) for s in spec.steps if isinstance(s, SendStep) for a in s.arms()]
    if spec.holdout is not None:
        arms += [(HOLDOUT, "control"), (HOLDOUT, "treated")]
    windowed = spec.windowed()
    converted = CONVERTED
    reaching = {
        s.id: reached + sa.quoted(s.id) if i else
        f"({reached}{sa.quoted(s.id)} OR {sa.JOURNEY_REACHED.name} IS NULL)"
        for i, s in enumerate(spec.steps)
    }  # fmt: skip
    at_step = {s.id: f"{sa.JOURNEY_STEP.name} = {sa.quoted(s.id)}" for s in spec.steps}
    goal_steps = spec.steps if spec.goal else []
    counts = await asyncio.gather(
        count(),
        *(count(f"{sa.JOURNEY_STATUS.name} = {sa.quoted(s)}", *LIVE.get(s, ())) for s in STATUSES),
        count(stopped),
        count(reached + sa.quoted(sa.MORE)),
        # An enrollment still at (or ended at) its first step has no list yet.
        *(count(reaching[s.id]) for s in spec.steps),
        *(count(at_step[s.id], live) for s in spec.steps),
        *(count(at_step[s.id], converted) for s in goal_steps),
        *(count(took(*a)) for a in arms),
        *(count(took(*a), converted_in(a[0], a[0] in windowed)) for a in arms),
    )
    it = iter(counts)
    entered = next(it)
    by_status = {s: next(it) for s in STATUSES}
    ended_outside = next(it)
    unlisted = next(it)
    steps = [StepFunnel(id=s.id, type=s.type, reached=next(it), here=0) for s in spec.steps]
    for step in steps:
        step.here = next(it)
    for step in steps[: len(goal_steps)]:
        step.converted = next(it)
    if ui:
        for step in steps:
            step.ui_reached = _list(ui, base, reaching[step.id])
            step.ui_here = _list(ui, base, at_step[step.id], live)
    arm_entered = [next(it) for _ in arms]
    arm_funnels = [
        ArmFunnel(split=split, arm=arm, entered=n, converted=c, conversion=_rate(c, n))
        for (split, arm), n, c in zip(arms, arm_entered, it, strict=True)
    ]
    by_id = {s.id: s for s in steps}
    for step_id, status, reason, n in await ledger.step_counts(spec.id, version):
        at = by_id.get(step_id)
        if at is None:
            continue
        if status == "suppressed":
            why = reason or "unknown"
            at.suppressed[why] = at.suppressed.get(why, 0) + n
        elif status in ("sent", "failed", "deferred", "queued", "unknown"):
            setattr(at, status, getattr(at, status) + n)
    for step_id, reaction, machine, messages, _ in await reactions.step_counts(spec.id, version):
        at = by_id.get(step_id)
        field = f"{reaction}_machine" if machine else reaction
        if at is None or field not in StepReactions.model_fields:
            continue
        found = at.reactions or StepReactions()
        at.reactions = found.model_copy(update={field: getattr(found, field) + messages})
    for step in steps:
        if step.reactions is not None:
            step.reactions = step.reactions.rated(step.sent)
    judged = [
        s for s in spec.steps if isinstance(s, SendStep) and s.variants and s.metric != "goal"
    ]
    reacted = {
        s.id: await reactions.variant_counts(spec.id, version, s.id, s.metric) for s in judged
    }
    return Funnel(
        journey_id=spec.id,
        name=spec.name,
        version=version,
        versions=versions,
        counted_at=datetime.now(UTC),
        entered=entered,
        **by_status,
        stopped=ended_outside,
        unlisted=unlisted,
        conversion=_rate(by_status["converted"], entered),
        steps=steps,
        arms=arm_funnels,
        experiments=experiments(spec, arm_funnels, decisions, reacted),
        goal=spec.goal.event if spec.goal else None,
        ui_entered=_list(ui, base) if ui else None,
        mermaid=mermaid(spec, steps, arm_funnels),
    )


async def counted(
    shared: Shared,
    stores: Stores,
    client: Client,
    journey_id: str,
    version: int | None,
    ui: str | None = None,
) -> tuple[JourneySpec, Funnel]:
    """The version's spec (the latest by default) and its funnel, counted lately or now.
    LookupError when there is no such journey or version."""
    found = await stores.journeys.get(journey_id, version)
    if found is None:
        raise LookupError("no such journey" + (" version" if version else ""))
    spec, number = found
    versions = await stores.journeys.versions(journey_id)
    decisions = await stores.splits.of_journey(journey_id)
    counted = await shared.get(
        (journey_id, number),
        lambda: funnel(
            client, stores.ledger, stores.reactions, spec, number, versions, ui, decisions
        ),
    )
    return spec, counted


def _list(ui: str, *clauses: str) -> str:
    """A link to the Temporal UI's workflow list for this visibility query."""
    return f"{ui}/workflows?query={quote(' AND '.join(clauses), safe='')}"


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def mermaid(spec: JourneySpec, steps: Iterable[StepFunnel], arms: Iterable[ArmFunnel]) -> str:
    """A top-down flowchart: one node per step with its counts, one edge per transition,
    split edges labelled with the arm and its conversion, and the goal with a dotted edge
    from each step customers converted at."""
    node = {s.id: f"s{i}" for i, s in enumerate(spec.steps)}
    arm_of = {(a.split, a.arm): a for a in arms}
    lines = ["flowchart TD"]
    for s in steps:
        figures = [f"reached {s.reached}", f"here {s.here}"]
        if s.type == "send":
            figures.append(f"sent {s.sent}")
            figures += [f"suppressed {n} ({why})" for why, n in sorted(s.suppressed.items())]
            held = (("failed", s.failed), ("deferred", s.deferred))
            figures += [f"{k} {v}" for k, v in held if v]
        label = f"<b>{s.id}</b><br/>{s.type}<br/>" + "<br/>".join(figures)
        lines.append(f'    {node[s.id]}["{_escape(label)}"]')
    for step in spec.steps:
        for field, target in step.edges():
            label = _edge_label(step, field, arm_of)
            arrow = f"-->|{_escape(label)}|" if label else "-->"
            lines.append(f"    {node[step.id]} {arrow} {node[target]}")
    if spec.goal:  # conversions: a dotted edge from each step where customers converted
        converted = [s for s in steps if s.converted]
        total = sum(s.converted for s in converted)
        goal = f"<b>goal</b><br/>{_text(spec.goal.event)}<br/>converted {total}"
        lines.append(f'    goal(["{_escape(goal)}"])')
        lines += [f"    {node[s.id]} -.->|{s.converted}| goal" for s in converted]
    return "\n".join(lines)


def _edge_label(step: object, field: str, arm_of: dict[tuple[str, str], ArmFunnel]) -> str:
    if isinstance(step, SplitStep):
        path = step.paths[int(field.split(".")[1])]
        arm = arm_of.get((step.id, path.name))
        rate = f", {arm.conversion:.0%} converted" if arm and arm.conversion is not None else ""
        return f"{_text(path.name)}: {arm.entered if arm else 0}{rate}"
    if field.startswith("cases."):
        return f"case {field.split('.')[1]}"
    return {"next": "", "on_event": _text(getattr(step, "event", "event"))}.get(
        field, field.removeprefix("on_")
    )


def _text(value: str) -> str:
    """An author's or a caller's words (an event name, an arm's name) as text in a label
    whose markup is HTML: never markup of their own."""
    return html.escape(value, quote=False)


def _escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")
