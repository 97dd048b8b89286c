"""The OpenAPI document, completed from what each route declares (`api.access`): each
operation's scope and security scheme, and the problem responses (400, 401, 403, 404, 409,
413, 415, 422, 429) every route may answer with, all in RFC 9457's shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from journeys.api import access as declared
from journeys.api.errors import MEDIA_TYPE, Problem
from journeys.schemas.access import Access
from journeys.schemas.segment import BATCHES, CALLS, SegmentBatchDoc, SegmentMessage

ERRORS = {
    "400": "The body is malformed (not JSON, nested too deep, bad gzip).",
    "404": "Nothing there.",
    "409": "The change conflicts with the current state (the problem says why).",
    "413": "The body is over the route's limit (as sent or inflated).",
    "415": "A compressed body where none is taken.",
    "422": "A field is invalid (each in `errors`, with its path).",
}
KEYED = {
    "401": "No valid API key (`Authorization: Bearer <key>`).",
    "403": "The key lacks the route's scope.",
    "429": "Over the key's rate limit, or too many failed authentications from this address; "
    "`Retry-After` says when to try again.",
}
ANONYMOUS = {
    "429": "Over the rate limit of an address without a key; `Retry-After` says when to try again.",
}
ERASING = {
    "503": "A customer of the request is being erased: nothing was taken; send it again "
    "after `Retry-After` seconds.",
}


BODIES: dict[str, type[BaseModel]] = {
    "SegmentMessage": SegmentMessage,
    "SegmentBatch": SegmentBatchDoc,
}
PAYLOADS = {
    "type": "object",
    "description": "Temporal's remote codec protocol: payloads as protobuf JSON.",
    "required": ["payloads"],
    "additionalProperties": False,
    "properties": {
        "payloads": {
            "description": "The payloads to decode or encode, in order.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "byte"},
                    },
                    "data": {"type": "string", "format": "byte"},
                },
            },
        }
    },
}
REQUESTS = {
    **{("POST", f"/v1/{call}"): "SegmentMessage" for call in CALLS},
    **{("POST", f"/v1/{route}"): "SegmentBatch" for route in BATCHES},
    ("POST", "/codec/decode"): "Payloads",
    ("POST", "/codec/encode"): "Payloads",
}
"""Routes that read their body themselves (Segment's, the codec's), described here."""


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        routes = declared.table(app)
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        components["securitySchemes"] = {
            "key": {"type": "http", "scheme": "bearer", "description": "An API key."},
            "writeKey": {
                "type": "http",
                "scheme": "basic",
                "description": "Segment's way: an `events:write` key as the Basic-auth user.",
            },
        }
        for name, model in BODIES.items():
            found = model.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            schemas.update(found.pop("$defs", {}))
            schemas[name] = found
        schemas["Payloads"] = PAYLOADS
        for (method, path), name in REQUESTS.items():
            operation = doc["paths"][path][method.lower()]
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                _complete(operation, routes.entries.get((method.upper(), path)))
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]


def _complete(operation: dict[str, Any], access: Access | None) -> None:
    responses = operation.setdefault("responses", {})
    wanted = dict(ERRORS)
    if access is not None and access.scope is not None:
        operation["x-scope"] = access.scope
        operation["security"] = [{"key": []}, *([{"writeKey": []}] if access.basic else [])]
        wanted.update(KEYED)
        if access.scope == "events:write":
            wanted.update(ERASING)
    else:
        operation["security"] = []
        wanted.update(ANONYMOUS)
    for code, description in wanted.items():
        responses[code] = {
            "description": description,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
