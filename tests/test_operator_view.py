"""What an operator reads in the Temporal UI: the run's static summary, its current details
in plain words with the wait's end in the customer's own time zone, the search attributes,
and activity summaries that name the step and channel."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata

from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.schemas.journey import (
    Entry,
    JourneySpec,
    MessageContent,
    SendStep,
)
from journeys.stack.embedded import Stack
from journeys.workflows import search_attributes as sa
from journeys.workflows.clock import local_time
from tests.conftest import eventually, unique
from tests.helpers import customer, event, state, wait_then_end


async def test_the_ui_shows_the_run_in_words_and_local_time(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    spec = JourneySpec(
        id=unique("view"),
        name="Checkout reminder",
        entry=Entry(event=unique("cart")),
        steps=[
            SendStep(id="remind", channel="in_app", content=MessageContent(body="Hi"), next="wait"),
            *wait_then_end("checkout.completed", timedelta(days=2)),
        ],
    )
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    cid = await customer(api, timezone="Europe/Berlin")
    await event(api, cid, str(spec.entry.event))
    entered = await eventually(lambda: state(api, spec.id, cid), lambda s: s["step"] == "wait")
    handle = stack.client.get_workflow_handle(enrollment_workflow_id(spec.id, cid))

    async def details() -> str:
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        return meta.current_details

    found = await eventually(details, lambda d: "waiting for" in d)
    match = re.fullmatch(
        r"step wait, waiting for checkout\.completed until "
        r"(\d{4}-\d\d-\d\d \d\d:\d\d) Europe/Berlin",
        found,
    )
    assert match, found
    berlin = ZoneInfo("Europe/Berlin")
    shown = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=berlin)
    expected = datetime.fromisoformat(entered["entered_at"]) + timedelta(days=2)
    assert abs(shown - expected) < timedelta(minutes=2)

    # The UI explains each way to act on the run (its signal, updates and queries).
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    handlers = {
        h.name: h.description
        for h in [
            *meta.definition.signal_definitions,
            *meta.definition.update_definitions,
            *meta.definition.query_definitions,
        ]
        if not h.name.startswith("__")
    }
    assert set(handlers) == {
        "event", "exit", "pause", "resume", "skip", "migrate", "state", "plan_migration"
    }  # fmt: skip
    assert all(handlers.values()), handlers

    described = await handle.describe()
    assert await described.static_summary() == f"Checkout reminder (v1) for customer {cid}"
    attributes = described.typed_search_attributes
    assert attributes.get(sa.JOURNEY_STEP) == "wait"
    assert attributes.get(sa.JOURNEY_STATUS) == "active"
    assert list(attributes.get(sa.JOURNEY_REACHED) or []) == ["remind", "wait"]

    history = await handle.fetch_history()
    converter = stack.client.data_converter
    summaries = [
        await converter.decode([e.user_metadata.summary], [str])
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert [s[0] for s in summaries] == ["remind: in_app"]


def test_local_time_matches_the_zone_across_dst_changes() -> None:
    """Every quarter hour around both 2026 DST changes, in zones east and west of UTC."""
    for zone in ("Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"):
        tz = ZoneInfo(zone)
        days = ((2026, 3, 28), (2026, 10, 24), (2026, 11, 1), (2026, 4, 4))
        for day in (datetime(*d, tzinfo=UTC) for d in days):
            for quarter in range(4 * 72):
                moment = day + timedelta(minutes=15 * quarter)
                expected = f"{moment.astimezone(tz):%Y-%m-%d %H:%M} {zone}"
                assert local_time(moment, zone) == expected, moment
    assert local_time(datetime(2026, 1, 1, 12, tzinfo=UTC), None) == "2026-01-01 12:00 UTC"
    assert local_time(datetime(2026, 1, 1, 12, tzinfo=UTC), "Mars/Base") == "2026-01-01 12:00 UTC"


def test_the_reached_list_fills_up_to_its_limit_then_says_more() -> None:
    """`JourneyReached` keeps every step reached while it fits Temporal's size limit for a
    keyword list, then ends with `MORE` and stays as it is."""
    steps = [f"step-{i:04d}-{'x' * 40}" for i in range(200)]
    listed = sa.reached([], steps)
    assert listed is not None and listed[-1] == sa.MORE
    assert listed[:-1] == steps[: len(listed) - 1]
    assert sa.reached(listed, ["later"]) is None  # full: nothing changes
    assert sa.reached(["a"], []) is None and sa.reached(["a"], ["b"]) == ["a", "b"]
