"""The `journeys` command line: the embedded default (`journeys up`), the worker and API
processes for a real deployment, and journey authoring helpers."""
