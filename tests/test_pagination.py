"""Every list pages by cursor: `limit` and `cursor` on each, no bare arrays; walking the
pages finds each item once, even when items arrive between pages; a cursor this API did not
hand out is a 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import unique

pytestmark = pytest.mark.both_databases


async def walk(api: httpx.AsyncClient, url: str, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = (await api.get(url, params=params)).json()
        assert len(page["items"]) <= limit
        seen += page["items"]
        if page["next_cursor"] is None:
            return seen
        params["cursor"] = page["next_cursor"]


async def test_every_list_takes_a_limit_and_a_cursor(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    lists = []
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            answer = operation["responses"].get("200", {}).get("content", {})
            schema = answer.get("application/json", {}).get("schema", {})
            if path.startswith("/sandbox/"):
                continue  # the provider sandboxes mimic their providers' answers
            assert schema.get("type") != "array", f"{method} {path} answers a bare array"
            if schema.get("$ref", "").split("/")[-1].startswith("Page_"):
                names = {p["name"] for p in operation.get("parameters", [])}
                assert {"limit", "cursor"} <= names, f"{method} {path}"
                lists.append(path)
    assert len(lists) == 9, lists


async def test_pages_find_each_item_once_even_as_items_arrive(api: httpx.AsyncClient) -> None:
    prefix = unique("page")
    body = {"body": "Hi"}
    for n in range(5):
        put = await api.put(f"/v1/templates/{prefix}-{n}", json=body)
        assert put.status_code == 200, put.text
    everything = [t["id"] for t in await walk(api, "/v1/templates", 1000)]
    assert everything == sorted(everything)
    mine = [t for t in everything if t.startswith(prefix)]
    assert mine == [f"{prefix}-{n}" for n in range(5)]

    first = (await api.get("/v1/templates", params={"limit": 2})).json()
    after = await api.put(f"/v1/templates/{prefix}-9", json=body)  # lands after the cursor
    before = await api.put("/v1/templates/0-before-everything", json=body)  # before it
    assert after.status_code == before.status_code == 200
    rest = await walk_from(api, "/v1/templates", first["next_cursor"])
    walked = [t["id"] for t in first["items"] + rest]
    assert len(walked) == len(set(walked))
    assert f"{prefix}-9" in walked and "0-before-everything" not in walked

    for bad in ("not-a-cursor", "eyJ4IjogMX0="):  # the second is base64 JSON of another shape
        refused = await api.get("/v1/templates", params={"cursor": bad})
        assert refused.status_code == 422, bad


async def walk_from(api: httpx.AsyncClient, url: str, cursor: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while cursor:
        page = (await api.get(url, params={"limit": 2, "cursor": cursor})).json()
        seen += page["items"]
        cursor = page["next_cursor"]
    return seen
