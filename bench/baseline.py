"""The raw Temporal baseline: trivial workflows doing the same number of starts and
signals, and a hand-written wait for an event, with nothing of the journey runner in the
path."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from journeys.runtime.temporal import connect
from journeys.schemas.settings import Settings

with workflow.unsafe.imports_passed_through():
    from journeys.schemas.events import CustomerEvent


@activity.defn(name="bench.noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="BenchTrivial")
class TrivialWorkflow:
    """Started with a signal. With `with_activity` it runs one trivial activity and
    completes (like an enrollment that sends once); otherwise it sleeps a day (like an
    enrollment waiting at its first step)."""

    @workflow.signal(name="event")
    def event(self, _: str) -> None:
        pass

    @workflow.run
    async def run(self, with_activity: bool) -> str:
        if with_activity:
            return await workflow.execute_activity(
                noop, "done", start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.sleep(timedelta(days=1))
        return "done"


@workflow.defn(name="BenchListener")
class ListenerWorkflow:
    """A wait for an event written by hand, as a team would write the ingestion suite's
    journey without the product: it takes customer events by signal (a repeated message
    id is dropped: producers retry), and ends on the first whose `stop` property is true,
    or after `days`."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._matched = False

    @workflow.signal(name="event")
    def event(self, event: CustomerEvent) -> None:
        if event.message_id in self._seen:
            return
        self._seen.add(event.message_id)
        self._matched = self._matched or event.properties.get("stop") is True

    @workflow.run
    async def run(self, days: int) -> bool:
        try:
            await workflow.wait_condition(lambda: self._matched, timeout=timedelta(days=days))
        except TimeoutError:
            return False
        return True


def raw_worker(client: Client, task_queue: str) -> Worker:
    """The baseline's worker, tuned like the journey worker (workers/worker.py), so only
    the work differs."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TrivialWorkflow, ListenerWorkflow],
        activities=[noop],
        max_concurrent_activities=200,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    )


async def serve(task_queue: str) -> None:
    """The baseline's worker in its own process, until SIGTERM: the raw side's
    counterpart of `journeys worker`, measured the same way."""
    client = await connect(Settings())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with raw_worker(client, task_queue):
        await stop.wait()


if __name__ == "__main__":
    # Serve the workflow of the module `bench.baseline`, which the sandbox passes through,
    # not of `__main__`, which it would re-import with everything this file imports.
    from bench.baseline import serve as serve_module

    asyncio.run(serve_module(sys.argv[1]))
    # As `journeys worker` does: a plain exit can abort in the Temporal core's threads.
    os._exit(0)
