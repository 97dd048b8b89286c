"""Tracing and metrics, one setup per process.

Traces: OpenTelemetry, configured by the standard `OTEL_` variables (`OTEL_TRACES_EXPORTER`
= console, the default, or otlp or none; `OTEL_SERVICE_NAME`; `OTEL_EXPORTER_OTLP_*`;
`OTEL_SDK_DISABLED`). Temporal's tracing interceptor carries one trace from an API request
through the workflow and its activities; the FastAPI and httpx instrumentations add the
request and every outbound service and provider call.

Metrics: Prometheus, served by the Temporal SDK's runtime at `metrics_address`: the SDK's
own (task latencies, schedule-to-start, cache) and the journeys' (workflows/metrics.py).
"""

from __future__ import annotations

import sys
from typing import TextIO

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanProcessor,
)
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from journeys.schemas.settings import Settings

_runtimes: dict[str, Runtime] = {}


def tracing_enabled(settings: Settings) -> bool:
    off = settings.otel_sdk_disabled
    return settings.tracing and not off and exporters(settings) != ["none"]


def exporters(settings: Settings) -> list[str]:
    """The trace exporters `OTEL_TRACES_EXPORTER` names (console by default)."""
    raw = settings.otel_traces_exporter
    return [name.strip() for name in raw.split(",") if name.strip()]


def install_tracing(
    settings: Settings, *, console: TextIO | None = None, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """Set the process's tracer provider from the `OTEL_` variables (`console` says where
    the console exporter writes; stdout by default). A `processor` replaces the exporters
    (tests collect spans in memory)."""
    if not tracing_enabled(settings):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "journeys"}))
    if processor is not None:
        provider.add_span_processor(processor)
    else:
        for name in exporters(settings):
            provider.add_span_processor(BatchSpanProcessor(_exporter(name, console)))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(name: str, console: TextIO | None) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=console or sys.stdout)
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as err:
            raise SystemExit(
                "OTEL_TRACES_EXPORTER=otlp needs `pip install 'journeys[otlp]'`"
            ) from err
        return OTLPSpanExporter()
    raise SystemExit(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (console, otlp, none)")


def interceptors(settings: Settings) -> list[Interceptor]:
    """The Temporal client's interceptors (workers built on the client inherit them)."""
    return [TracingInterceptor()] if tracing_enabled(settings) else []


def instrument_app(app: FastAPI, settings: Settings) -> None:
    if tracing_enabled(settings):
        # One span per request: not the ASGI layer's per-message ones. No span for the
        # tracking pixel and links: customers' mail clients fetch them by the million, and
        # the instrumentor finds each request's route by walking every route (~0.8 ms).
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,/v1/track/", exclude_spans=["receive", "send"]
        )


def instrument_http(client: httpx.AsyncClient, settings: Settings) -> None:
    if tracing_enabled(settings):
        HTTPXClientInstrumentor.instrument_client(client)


def runtime(settings: Settings) -> Runtime | None:
    """The SDK runtime exporting Prometheus metrics at `metrics_address` (one per address
    and process), or None for the SDK's default runtime without metrics."""
    address = settings.metrics_address
    if not address:
        return None
    if address not in _runtimes:
        config = TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
        _runtimes[address] = Runtime(telemetry=config)
    return _runtimes[address]
