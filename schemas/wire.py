"""How times and durations look in API bodies (and so in `/openapi.json`, which the API
holds bodies to): a time is an ISO 8601 string; a duration an ISO 8601 string or seconds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema


def _iso_only(value: Any) -> Any:
    """A time is an ISO 8601 string, as the schema says: not a bare number."""
    if isinstance(value, int | float):
        raise ValueError("a time is an ISO 8601 string")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]
"""A point in time in an API body."""

Duration = Annotated[
    timedelta,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "duration"}, {"type": "number"}],
            "description": "ISO 8601 (`PT1H`, `P2D`) or seconds",
        }
    ),
]
"""A length of time in an API body or journey."""
