"""The event router's catalogue refresh (every 2 s in every API process) reads the list of
versions and only versions it has not read before: a version never changes. It still
listens for what older versions listen for, and forgets a withdrawn version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from journeys.schemas.journey import Entry, EventCondition
from journeys.stack.embedded import Stack
from tests.conftest import unique
from tests.helpers import one_send

pytestmark = pytest.mark.both_databases


@contextmanager
def spec_reads(stack: Stack) -> Iterator[list[str]]:
    """The statements that read journey bodies while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "journey_versions.spec" in statement:
            seen.append(statement)

    engine = stack.stores.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_each_version_is_read_once_and_older_listeners_are_kept(stack: Stack) -> None:
    journeys = stack.stores.journeys
    base = one_send(unique("catalogue")).model_copy(update={"entry": Entry(event="go")})
    v1 = base.model_copy(update={"exit_when": [EventCondition(event="left-in-v1")]})
    v2 = base.model_copy(update={"goal": EventCondition(event="bought-in-v2")})
    assert (await journeys.publish(v1))[0] == 1
    assert (await journeys.publish(v2))[0] == 2

    def mine(found: list[Any]) -> tuple[int, set[str]]:
        [(spec, version, listening, _)] = [f for f in found if f[0].id == base.id]
        assert spec.goal == (v2.goal if version == 2 else None)
        return version, listening

    with spec_reads(stack) as reads:
        assert mine(await journeys.latest()) == (2, {"left-in-v1", "bought-in-v2"})
    assert reads  # the new versions, read once
    with spec_reads(stack) as reads:
        assert mine(await journeys.latest()) == (2, {"left-in-v1", "bought-in-v2"})
    assert reads == []  # nothing new: no journey body read again

    await journeys.withdraw(base.id, 2)
    assert mine(await journeys.latest()) == (1, {"left-in-v1"})
