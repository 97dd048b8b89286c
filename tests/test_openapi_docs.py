"""A described API: every field and operation in /openapi.json says what it is, and the
main request bodies carry examples that the API takes as they are."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from journeys.api.models import EventBatchIn, EventIn, ProfileIn, TemplateIn
from journeys.schemas.access import KeyIn
from journeys.schemas.journey import JourneySpec
from journeys.schemas.segment import SegmentBatchDoc, SegmentMessage
from tests.conftest import unique

EXAMPLED: list[type[BaseModel]] = [
    JourneySpec, EventIn, EventBatchIn, ProfileIn, TemplateIn, KeyIn, SegmentMessage,
    SegmentBatchDoc,
]  # fmt: skip


async def openapi(api: httpx.AsyncClient) -> dict[str, Any]:
    doc: dict[str, Any] = (await api.get("/openapi.json")).json()
    return doc


async def test_every_field_and_operation_is_described(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    bare = [
        f"{name}.{field}"
        for name, schema in doc["components"]["schemas"].items()
        for field, spec in (schema.get("properties") or {}).items()
        if not spec.get("description")
    ]
    assert bare == []
    silent = [
        f"{method.upper()} {path}"
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
        if not operation.get("description")
    ]
    assert silent == []


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_the_main_request_bodies_have_examples_that_validate(model: type[BaseModel]) -> None:
    examples = model.model_json_schema().get("examples")
    assert examples, model.__name__
    for example in examples:
        model.model_validate(example)


async def test_the_journey_example_publishes(api: httpx.AsyncClient) -> None:
    [example] = JourneySpec.model_json_schema()["examples"]
    published = await api.post("/v1/journeys", json={**example, "id": unique("example")})
    assert published.status_code == 201, published.text
    doc = await openapi(api)
    assert doc["components"]["schemas"]["EventIn"]["examples"]
