"""The pytest plugin of the testing kit (entry point `journeys`): fixtures only, nothing
starts unless a test asks for them.

- `journeys_temporal`: one Temporal dev server with time skipping for the session (its
  address); set `JOURNEYS_TEST_TEMPORAL` to use one already running instead.
- `journey_kit`: a fresh `JourneyKit` for one test (its own SQLite store, task queue, worker
  and SMTP server), on that server. Async: mark the test `@pytest.mark.asyncio` (or set
  pytest-asyncio's `asyncio_mode = "auto"`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from journeys.schemas.settings import Settings
from journeys.testkit.kit import JourneyKit, temporal_server


@pytest.fixture(scope="session")
def journeys_temporal() -> Iterator[str]:
    """The address of the session's time-skipping Temporal dev server."""
    running = Settings().test_temporal
    if running:
        yield running
        return
    with temporal_server() as address:
        yield address


@pytest_asyncio.fixture
async def journey_kit(journeys_temporal: str, tmp_path: Path) -> AsyncIterator[JourneyKit]:
    """A `JourneyKit` for this test alone."""
    async with JourneyKit.start(journeys_temporal, data_dir=tmp_path / "journeys") as kit:
        yield kit
