"""Run-time wiring that the worker, the API and the CLI share: the Temporal connection and
search attributes, the payload codec, telemetry, and the health endpoints."""
