"""Group commit: concurrent calls share one transaction, and each caller still gets its own
answer (storage/group_commit.py; the event log's accept and routed marks use it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import event

from journeys.schemas.events import CustomerEvent
from journeys.storage.erase import CustomerErasing
from journeys.storage.group_commit import GroupCommit, Outcome
from journeys.storage.stores import Stores
from tests.conftest import POSTGRES_URL, _postgres_schema, unique

# -- the mechanism ---------------------------------------------------------------------------


class Recorder:
    """A unit of work that records each run's items, and can be held mid-run."""

    def __init__(self) -> None:
        self.runs: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, items: list[int]) -> list[Outcome[int]]:
        self.runs.append(items)
        await self.hold.wait()
        return [ValueError(f"no {i}") if i < 0 else i * 10 for i in items]


async def test_a_lone_call_runs_at_once_and_gets_its_own_answer() -> None:
    work = Recorder()
    group = GroupCommit(work)
    assert await group(3) == 30
    assert await group(4) == 40
    assert work.runs == [[3], [4]]


async def test_calls_made_while_a_run_is_busy_share_the_next_run() -> None:
    work = Recorder()
    group = GroupCommit(work)
    work.hold.clear()
    first = asyncio.create_task(group(1))
    while not work.runs:  # the first run starts, and waits on the hold
        await asyncio.sleep(0)
    assert work.runs == [[1]]
    later = [asyncio.create_task(group(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    work.hold.set()
    assert await first == 10
    assert [await t for t in later] == [20, 30, 40]
    assert work.runs == [[1], [2, 3, 4]]


async def test_an_outcome_that_is_an_exception_is_raised_to_its_caller_alone() -> None:
    group = GroupCommit(Recorder())
    results = await asyncio.gather(group(1), group(-2), group(3), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "no -2"


async def test_a_failed_run_fails_its_callers_and_not_the_next_run() -> None:
    calls: list[list[str]] = []

    async def work(items: list[str]) -> list[Outcome[str]]:
        calls.append(items)
        if "boom" in items:
            raise RuntimeError("the database went away")
        return items

    group = GroupCommit(work)
    failed = await asyncio.gather(group("a"), group("boom"), return_exceptions=True)
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert await group("b") == "b"
    assert calls == [["a", "boom"], ["b"]]


async def test_a_run_takes_at_most_its_limit_of_weight() -> None:
    work = Recorder()
    group = GroupCommit(work, weight=lambda i: i, limit=5)
    assert await asyncio.gather(group(4), group(1), group(3), group(9)) == [40, 10, 30, 90]
    assert work.runs == [[4, 1], [3], [9]]  # an item over the limit still runs, alone


# -- the event log ---------------------------------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """An event log of its own, so that its commits are only this test's."""
    if request.param == "sqlite":
        opened = await Stores.open(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", channels=[])
        yield opened
        await opened.close()
        return
    schemas = _postgres_schema()
    opened = await Stores.open(POSTGRES_URL, channels=[], schema=next(schemas))
    yield opened
    await opened.close()
    next(schemas, None)


def commits(stores: Stores) -> list[int]:
    seen: list[int] = []
    event.listen(stores.engine.sync_engine, "commit", lambda _conn: seen.append(1))
    return seen


async def test_concurrent_accepts_share_a_transaction_and_answer_each_call(
    stores: Stores,
) -> None:
    calls = [
        [CustomerEvent.create(unique("c"), "signed_up") for _ in range(1 + k % 3)]
        for k in range(20)
    ]
    counted = commits(stores)
    answers = await asyncio.gather(*(stores.events.accept(c) for c in calls))
    assert len(counted) < len(calls)  # 1 here: all 20 queued before the first ran
    for sent, (events, new, pending, _) in zip(calls, answers, strict=True):
        assert events == sent  # its own events, in its order
        assert new == {e.message_id for e in sent} and pending == set()
    again = await stores.events.accept(calls[0])
    assert again[1] == set() and again[2] == {e.message_id for e in calls[0]}


async def test_one_message_id_in_two_concurrent_calls_is_learned_once(stores: Stores) -> None:
    cid = unique("c")
    retried = CustomerEvent.create(cid, "viewed")
    await asyncio.gather(
        stores.events.accept([retried]),
        stores.events.accept([retried]),
    )
    profile = await stores.profiles.get(cid)
    assert profile is not None and sum(profile.active_hours) == 1


async def test_a_customer_being_erased_refuses_only_the_call_they_are_in(
    stores: Stores,
) -> None:
    erased, kept = unique("erased"), unique("kept")
    async with stores.erasures.window(erased):
        refused, accepted = await asyncio.gather(
            stores.events.accept([CustomerEvent.create(erased, "x")]),
            stores.events.accept([ok := CustomerEvent.create(kept, "x")]),
            return_exceptions=True,
        )
    assert isinstance(refused, CustomerErasing)
    assert not isinstance(accepted, BaseException) and accepted[1] == {ok.message_id}
    assert await stores.profiles.get(erased) is None  # nothing of the refused call stored
    assert await stores.profiles.get(kept) is not None
