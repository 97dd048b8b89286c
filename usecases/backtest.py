"""Backtest a journey version: every enrollment it would have started over the recorded
events of a time range, simulated by the step engine in virtual time
(workflows/simulation.py), with nothing sent, stored or started; and the report, per step
and per customer, or the difference between two versions over the same events.

Reads only: the event log, the customers' profiles, and the marketing messages they
really received from other journeys (their cap slots). Customers are simulated one after
another, each with their own events; the report is built as they go.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from journeys.schemas.backtest import (
    BacktestComparison,
    BacktestJob,
    BacktestReport,
    BacktestRequest,
    Frequency,
    StepDifference,
    StepReport,
    TopCustomer,
)
from journeys.schemas.enrollment import EnrollmentInput, EnrollmentOptions
from journeys.schemas.events import RESERVED_PREFIX, CustomerEvent
from journeys.schemas.funnel import StepFunnel
from journeys.schemas.guardrails import FrequencyCap
from journeys.schemas.journey import JourneySpec
from journeys.schemas.predicates import evaluate
from journeys.schemas.send_decision import Rules
from journeys.storage.stores import Stores
from journeys.usecases.funnels import mermaid
from journeys.workflows.simulation import ASSUMPTIONS, Outcome, Simulation, World

Progress = Callable[[int, int], None]
"""Called with (customers simulated, customers in all) as a backtest goes."""
WEEK = timedelta(days=7)
TOP = 10


@dataclass
class Recorded:
    """The events of a range, by customer, in the order they happened."""

    by_customer: dict[str, list[CustomerEvent]]
    count: int


async def recorded(
    stores: Stores,
    since: datetime,
    until: datetime,
    customers: Sequence[str] | None = None,
    sample: int | None = None,
) -> Recorded:
    """The range's events, read a page at a time; `sample` keeps that many customers (the
    first in a stable hash order, so two versions and a rerun see the same ones)."""
    by_customer: dict[str, list[CustomerEvent]] = defaultdict(list)
    after = 0
    while True:
        page = await stores.events.recorded(since, until, customers, after_id=after)
        for _, event in page:
            if not event.name.startswith(RESERVED_PREFIX):  # (see ASSUMPTIONS)
                by_customer[event.customer_id].append(event)
        if len(page) < 5000:
            break
        after = page[-1][0]
    if sample is not None and len(by_customer) > sample:
        kept = sorted(by_customer, key=lambda c: hashlib.sha256(c.encode()).digest())[:sample]
        by_customer = {c: by_customer[c] for c in kept}
    for events in by_customer.values():
        events.sort(key=lambda e: e.timestamp)  # (stable: the log's order among equals)
    return Recorded(dict(by_customer), sum(len(e) for e in by_customer.values()))


@dataclass
class _Tally:
    """The report, as customers are simulated."""

    spec: JourneySpec
    steps: dict[str, StepReport] = field(default_factory=dict)
    by_status: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    per_customer: Counter[str] = field(default_factory=Counter)
    suppressed: int = 0
    enrolled: int = 0

    def __post_init__(self) -> None:
        self.steps = {s.id: StepReport(id=s.id, type=s.type) for s in self.spec.steps}

    def add(self, customer_id: str, outcome: Outcome) -> None:
        self.enrolled += 1
        self.by_status[outcome.status] += 1
        for step_id in dict.fromkeys(p.step for p in outcome.path):
            self.steps[step_id].reached += 1
        at = self.steps[outcome.step]
        match outcome.status:
            case "waiting":
                at.waiting += 1
            case "converted":
                at.converted += 1
            case "exited":
                at.exited += 1
            case "completed":
                at.completed += 1
        for send in outcome.sends:
            step, channel = self.steps[send.step], send.channel or "none"
            if send.status == "sent":
                step.sent[channel] = step.sent.get(channel, 0) + 1
                self.messages[channel] += 1
                self.per_customer[customer_id] += 1
            else:
                why = step.suppressed.setdefault(channel, {})
                why[send.reason or "unknown"] = why.get(send.reason or "unknown", 0) + 1
                self.suppressed += 1
        for held in outcome.held:
            step = self.steps[held.step]
            step.held[held.reason or "unknown"] = step.held.get(held.reason or "unknown", 0) + 1

    def report(
        self,
        label: str,
        since: datetime,
        until: datetime,
        customers: int,
        events: int,
        rules: Rules,
        seconds: float,
    ) -> BacktestReport:
        weeks = max((until - since) / WEEK, 1 / 7)
        rates = sorted(
            [n / weeks for n in self.per_customer.values()]
            + [0.0] * max(0, customers - len(self.per_customer))
        )
        cap = _tightest(rules.caps)
        cap_rate = cap.limit / (cap.window / WEEK) if cap else None
        steps = list(self.steps.values())
        converted = self.by_status["converted"]
        return BacktestReport(
            journey_id=self.spec.id,
            label=label,
            since=since,
            until=until,
            customers=customers,
            events=events,
            enrolled=self.enrolled,
            by_status=dict(self.by_status),
            messages=dict(self.messages),
            suppressed=self.suppressed,
            conversion=round(converted / self.enrolled, 4) if self.enrolled else None,
            steps=steps,
            per_week=Frequency(
                mean=round(sum(rates) / len(rates), 3) if rates else 0.0,
                p50=_quantile(rates, 0.5),
                p95=_quantile(rates, 0.95),
                max=round(rates[-1], 3) if rates else 0.0,
                cap=f"{cap.limit} per {_days(cap.window)}" if cap else None,
                over_cap=sum(1 for r in rates if cap_rate is not None and r > cap_rate),
            ),
            top_customers=[
                TopCustomer(customer_id=c, messages=n)
                for c, n in sorted(self.per_customer.items(), key=lambda i: (-i[1], i[0]))[:TOP]
            ],
            assumptions=list(ASSUMPTIONS),
            mermaid=mermaid(self.spec, [_funnel_step(s) for s in steps], []),
            seconds=round(seconds, 3),
        )


async def backtest(
    stores: Stores,
    spec: JourneySpec,
    events: Recorded,
    since: datetime,
    until: datetime,
    *,
    rules: Rules,
    label: str = "draft",
    version: int = 0,
    progress: Progress | None = None,
) -> BacktestReport:
    """Simulate `spec` over `events` (from `recorded`): every enrollment it would have
    started, with the re-entry rule, against each customer's profile and the cap slots
    their real marketing messages from other journeys held."""
    started = time.monotonic()
    entry = spec.entry
    entering = {
        c: evs
        for c, evs in events.by_customer.items()
        if entry.event is not None and any(_enters(spec, e) for e in evs)
    }
    ids = list(entering)
    profiles = await stores.profiles.many(ids)
    widest = max((c.window for c in [*rules.caps, *spec.frequency_caps]), default=timedelta(0))
    slots = await stores.ledger.slots_held(ids, since - widest, besides=spec.id)
    total = len(events.by_customer)

    async def every_customer() -> _Tally:
        tally = _Tally(spec)
        done = total - len(ids)
        for customer_id in ids:
            world = World(
                profile=profiles[customer_id],
                events=[],
                slots=slots.get(customer_id, []),
                rules=rules,
                until=until,
            )
            for outcome in await simulate(spec, version, customer_id, entering[customer_id], world):
                tally.add(customer_id, outcome)
            done += 1
            if progress is not None and done % 200 == 0:
                progress(done, total)
        return tally

    # The simulation never waits on I/O, so it runs on an event loop of its own in a
    # thread: the API's loop keeps answering (the interpreter switches threads every
    # few milliseconds) however long a backtest takes.
    tally = await asyncio.to_thread(asyncio.run, every_customer())
    if progress is not None:
        progress(total, total)
    return tally.report(label, since, until, total, events.count, rules, time.monotonic() - started)


async def simulate(
    spec: JourneySpec,
    version: int,
    customer_id: str,
    events: Sequence[CustomerEvent],
    world: World,
) -> list[Outcome]:
    """One customer's enrollments, in order: an entry event enters them unless an
    enrollment is running (then it is that enrollment's event) or they were enrolled
    before and the journey is `reentry: never`."""
    outcomes: list[Outcome] = []
    options = EnrollmentOptions()
    i = 0
    while i < len(events):
        trigger = events[i]
        if not _enters(spec, trigger):
            i += 1
            continue
        if outcomes and spec.reentry == "never":
            break
        world.events = events[i + 1 :]
        enrollment = EnrollmentInput.model_construct(
            journey=spec,
            version=version,
            customer_id=customer_id,
            trigger=trigger,
            options=options,
            carry=None,
            timezone=world.profile.timezone,
            patch_set=None,
        )
        key = f"backtest/{spec.id}/{customer_id}"
        run = Simulation(enrollment, world, now=trigger.timestamp, key=f"{key}/{len(outcomes)}")
        outcome = await run.run()
        outcomes.append(outcome)
        if outcome.status == "waiting":
            break
        i += 1 + outcome.next_event
    return outcomes


def compare(baseline: BacktestReport, candidate: BacktestReport) -> BacktestComparison:
    """`candidate` minus `baseline`: per step (by id, the candidate's order first), in
    messages per channel and in conversions."""
    old = {s.id: s for s in baseline.steps}
    new = {s.id: s for s in candidate.steps}
    empty = StepReport(id="", type="")
    steps = []
    for step_id in dict.fromkeys([*new, *old]):
        a, b = old.get(step_id, empty), new.get(step_id, empty)
        steps.append(
            StepDifference(
                id=step_id,
                reached=b.reached - a.reached,
                sent=_minus(b.sent, a.sent),
                converted=b.converted - a.converted,
            )
        )
    return BacktestComparison(
        baseline=baseline,
        candidate=candidate,
        steps=steps,
        messages=_minus(candidate.messages, baseline.messages),
        converted=candidate.by_status.get("converted", 0) - baseline.by_status.get("converted", 0),
    )


def _enters(spec: JourneySpec, event: CustomerEvent) -> bool:
    entry = spec.entry
    return event.name == entry.event and evaluate(entry.where, {"event": event.scope()})


def _minus(b: dict[str, int], a: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in dict.fromkeys([*b, *a])}


def _tightest(caps: Sequence[FrequencyCap]) -> FrequencyCap | None:
    """The cap with the lowest weekly rate, of those on every channel or on marketing."""
    return min(caps, key=lambda c: c.limit / (c.window / WEEK), default=None)


def _days(window: timedelta) -> str:
    days = window / timedelta(days=1)
    return f"{days:g} day{'s' if days != 1 else ''}"


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)], 3)


def _funnel_step(step: StepReport) -> StepFunnel:
    """A report's step as the funnel diagram draws one (its predicted counts)."""
    suppressed: Counter[str] = Counter()
    for reasons in step.suppressed.values():
        suppressed.update(reasons)
    return StepFunnel(
        id=step.id,
        type=step.type,
        reached=step.reached,
        here=step.waiting,
        sent=sum(step.sent.values()),
        suppressed=dict(suppressed),
        converted=step.converted,
    )


class Busy(Exception):
    """As many backtests as the process runs at once are running: try again later."""


class Jobs:
    """Backtests run in the background of the API process, one at a time by default (a
    big one takes minutes of CPU), polled by id; the last `kept` are remembered."""

    def __init__(self, stores: Stores, rules: Rules, *, at_once: int = 1, kept: int = 20):
        self._stores, self._rules = stores, rules
        self._at_once, self._kept = at_once, kept
        self._jobs: dict[str, BacktestJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> BacktestJob | None:
        return self._jobs.get(job_id)

    def start(
        self, request: BacktestRequest, baseline: tuple[JourneySpec, str] | None
    ) -> BacktestJob:
        """A job for `request` (Busy when `at_once` are running); `baseline`: the version
        to compare with and its label."""
        if len(self._tasks) >= self._at_once:
            raise Busy("a backtest is running; poll it, then try again")
        job = BacktestJob(id=f"bt-{uuid.uuid4().hex[:12]}", status="running")
        self._jobs[job.id] = job
        for old in list(self._jobs)[: -self._kept]:
            if self._jobs[old].status != "running":
                del self._jobs[old]
        task = asyncio.create_task(self._run(job, request, baseline))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(
        self,
        job: BacktestJob,
        request: BacktestRequest,
        baseline: tuple[JourneySpec, str] | None,
    ) -> None:
        until = request.until or datetime.now(UTC)
        runs = 2 if baseline else 1

        def progress(part: int) -> Progress:
            return lambda done, total: setattr(
                job, "progress", round((part + done / max(total, 1)) / runs, 3)
            )

        try:
            events = await recorded(
                self._stores, request.since, until, request.customers, request.sample
            )
            run = functools.partial(
                backtest, self._stores, events=events, since=request.since, until=until,
                rules=self._rules,
            )  # fmt: skip
            job.report = await run(request.journey, progress=progress(0))
            if baseline is not None:
                spec, label = baseline
                old = await run(spec, label=label, progress=progress(1))
                job.comparison = compare(old, job.report)
            job.status, job.progress = "done", 1.0
        except Exception as err:  # the job says so; the API goes on
            job.status, job.error = "failed", f"{type(err).__name__}: {err}"[:500]
