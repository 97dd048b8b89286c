"""The raw Temporal baseline: trivial workflows doing the same number of starts and
signals, with nothing of the journey runner in the path."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


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
