"""Tracing and metrics: one trace from the API request that enters a customer, through the
workflow and its send activity, to the SMS provider's HTTP endpoint (the Twilio sandbox,
which joins the same trace); Prometheus metrics for enrollments, steps and sends, beside
the Temporal SDK's own."""

from __future__ import annotations

import re
import time

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeys.stack.embedded import Stack
from tests.conftest import eventually, unique, write_key
from tests.helpers import customer, ended, event, one_send, publish_copy

TWILIO_PATH = "/2010-04-01/Accounts/"


def trace_of(spans: InMemorySpanExporter, cid: str) -> list[ReadableSpan]:
    """The spans of the trace whose Temporal client call started `cid`'s enrollment."""
    finished = spans.get_finished_spans()
    starts = [
        s.context.trace_id
        for s in finished
        if s.name.startswith("SignalWithStartWorkflow:Journey")
        and cid in str((s.attributes or {}).get("temporalWorkflowID", ""))
    ]
    return [s for s in finished if s.context.trace_id in starts]


async def test_one_trace_from_the_api_request_to_the_provider_call(
    api: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    phone = f"+1555{int(time.time() * 1000) % 10_000_000:07d}"
    cid = await customer(api, phone=phone)
    journey = await publish_copy(api, one_send(unique("traced"), channel="sms", body="Hi"))
    await event(api, cid, journey.entry)
    await ended(api, journey.id, cid)

    def names(found: list[ReadableSpan]) -> set[str]:
        return {s.name for s in found}

    expected = {
        "POST /v1/events",
        "SignalWithStartWorkflow:Journey",
        "RunWorkflow:Journey",
        "StartActivity:journeys.send",
        "RunActivity:journeys.send",
    }

    async def traced() -> list[ReadableSpan]:
        return trace_of(spans, cid)

    found = await eventually(traced, lambda t: expected <= names(t), timeout=10)
    by_id = {s.context.span_id: s for s in found}
    request = next(s for s in found if s.name == "POST /v1/events" and s.parent is None)
    # The provider call: httpx's client span, and the sandbox's server span under it.
    outbound = [
        s
        for s in found
        if s.name == "POST" and TWILIO_PATH in str((s.attributes or {}).get("http.url", ""))
    ]
    assert outbound, sorted(names(found))
    provider = [
        s
        for s in found
        if s.parent is not None
        and s.parent.span_id in {o.context.span_id for o in outbound}
        and s.name.startswith("POST /sandbox/twilio" + TWILIO_PATH)
    ]
    assert provider, sorted(names(found))

    # Walk up from the provider's span: it descends from the API request.
    chain = []
    at: ReadableSpan | None = provider[0]
    while at is not None:
        chain.append(at.name)
        at = by_id.get(at.parent.span_id) if at.parent else None
    assert chain[-1] == request.name
    assert "RunActivity:journeys.send" in chain and "StartActivity:journeys.send" in chain
    assert not any(s.name.endswith(("http send", "http receive")) for s in found)


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} ([0-9.e+]+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def test_prometheus_counts_enrollments_steps_and_sends(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    journey = await publish_copy(api, one_send(unique("metered"), channel="email", body="Hi"))
    with_email, without = await customer(api), await customer(api, email=None)
    for cid in (with_email, without):
        await event(api, cid, journey.entry)
        await ended(api, journey.id, cid)
    url = f"http://{stack.settings.metrics_address}/metrics"

    async def scrape() -> str:
        async with httpx.AsyncClient() as http:
            return (await http.get(url)).text

    j = journey.id
    text = await eventually(
        scrape, lambda t: samples(t, "journey_enrollments_ended", journey=j) == 2, timeout=10
    )
    assert samples(text, "journey_enrollments", journey=j, version="1") == 2
    assert samples(text, "journey_steps", journey=j, step="send", type="send") == 2
    assert samples(text, "journey_steps", journey=j, step="end", type="exit") == 2
    assert samples(text, "journey_sends", journey=j, channel="email", status="sent") == 1
    suppressed = samples(text, "journey_sends", journey=j, status="suppressed", reason="no_address")
    assert suppressed == 1
    assert samples(text, "journey_enrollments_ended", journey=j, status="completed") == 2
    # The SDK's own metrics are on the same endpoint.
    assert "temporal_workflow_completed" in text and "temporal_activity_execution_latency" in text


async def test_prometheus_counts_ingestion_by_outcome(api: httpx.AsyncClient, stack: Stack) -> None:
    url = f"http://{stack.settings.metrics_address}/metrics"

    async def scrape() -> str:
        async with httpx.AsyncClient() as http:
            return (await http.get(url)).text

    def counts(text: str, source: str) -> dict[str, float]:
        outcomes = ("accepted", "duplicate", "refused", "routed", "entered")
        return {o: samples(text, "journeys_events", outcome=o, source=source) for o in outcomes}

    before = await scrape()
    journey = await publish_copy(api, one_send(unique("counted"), body="Hi"))
    cid = await customer(api)
    message = {"customer_id": cid, "name": journey.entry, "message_id": unique("m")}
    for _ in range(2):  # the second is a duplicate
        assert (await api.post("/v1/events", json=message)).status_code == 202
    batch = {"batch": [{"type": "track", "userId": cid, "event": "seen"}, {"type": "track"}]}
    answer = await api.post("/v1/batch", json=batch, auth=(write_key(stack), ""))
    assert answer.status_code == 200 and len(answer.json()["rejected"]) == 1

    want_events = {"accepted": 1, "duplicate": 1, "refused": 0, "routed": 1, "entered": 1}
    want_segment = {"accepted": 1, "duplicate": 0, "refused": 1, "routed": 1, "entered": 0}

    def grew(text: str) -> bool:
        deltas = {
            s: {k: v - counts(before, s)[k] for k, v in counts(text, s).items()}
            for s in ("events", "segment")
        }
        return deltas == {"events": want_events, "segment": want_segment}

    await eventually(scrape, grew, timeout=10)
