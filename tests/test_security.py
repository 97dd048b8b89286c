"""Secure by default: every route wants a key with its scope, keys are shown once and
revocable, changes are audited, errors are RFC 9457 problems that echo nothing, writes are
rate limited per key, and the docs work offline."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from journeys.api.access import table
from journeys.api.app import create_app
from journeys.schemas.access import SCOPES
from journeys.stack.embedded import Stack
from tests.conftest import unique
from tests.helpers import customer, one_send, publish_copy
from tests.test_funnels import CHROMIUM, dump_dom

pytestmark = pytest.mark.both_databases

SAMPLE = {
    "journey_id": "j-1",
    "customer_id": "c-1",
    "version": "1",
    "message_id": "1",
    "action": "pause",
    "token": "t",
}


def concrete(path: str) -> str:
    """The path with a plausible value for each parameter."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x-1"), path)


def app(stack: Stack, **changes: Any) -> httpx.AsyncClient:
    """A fresh app over the stack's stores, in this process, with `changes` to settings."""
    settings = stack.settings.model_copy(update=changes)
    transport = httpx.ASGITransport(app=create_app(settings, stack.stores, stack.client))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_every_route_is_declared_and_wants_its_scope(
    stack: Stack, anonymous: httpx.AsyncClient
) -> None:
    routes = table(create_app(stack.settings, stack.stores, stack.client)).entries
    keyed = {route: access for route, access in routes.items() if access.scope is not None}
    others = {
        scope: await stack.stores.keys.create(
            f"all but {scope}", [s for s in SCOPES if s not in (scope, "admin")]
        )
        for scope in SCOPES
    }
    checked = 0
    for (method, path), access in keyed.items():
        url = concrete(path)
        refused = await anonymous.request(method, url, json={})
        assert refused.status_code == 401, (method, path, refused.text)
        assert refused.headers["www-authenticate"] == "Bearer"
        lacking = others[access.scope].token
        forbidden = await anonymous.request(
            method, url, json={}, headers={"Authorization": f"Bearer {lacking}"}
        )
        assert forbidden.status_code == 403, (method, path, forbidden.text)
        assert access.scope in forbidden.json()["detail"]
        checked += 1
    assert checked == len(keyed) >= 45
    segment_routes = {("POST", f"/v1/{r}") for r in ("group", "alias", "import")}
    assert segment_routes <= set(keyed)  # the newer Segment routes among those refused


def test_an_app_with_a_route_that_declares_no_access_is_refused(stack: Stack) -> None:
    """A new route left without `requires`/`public` stops the app from being built."""
    from fastapi import APIRouter

    app = create_app(stack.settings, stack.stores, stack.client)
    forgotten = APIRouter()

    @forgotten.get("/v1/forgotten")
    async def forgot() -> dict[str, str]:
        return {}

    app.include_router(forgotten)
    with pytest.raises(RuntimeError, match="GET /v1/forgotten"):
        table(app)


async def test_public_routes_and_offline_docs(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    doc = (await anonymous.get("/openapi.json")).json()
    publish = doc["paths"]["/v1/journeys"]["post"]
    assert publish["x-scope"] == "journeys:write"
    assert {"401", "403", "404", "409", "413", "422", "429"} <= set(publish["responses"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await anonymous.get(page)).text
        assert f"/static/docs/{asset}" in html and "cdn" not in html.lower()
        served = await anonymous.get(f"/static/docs/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000
    assert (await anonymous.get("/static/docs/../../api/app.py")).status_code == 404
    # A signed unsubscribe link is its own authority: a bad one is simply unknown.
    assert (await anonymous.get("/v1/unsubscribe/forged.token")).status_code == 404
    # The tracking routes take no key, and a token this deployment did not sign is a 404
    # that leads nowhere (issue 30); one past the bound is a 422.
    for route in ("open", "click"):
        forged = await anonymous.get(f"/v1/track/{route}/1.0.AAAAAAAAAAAAAAAA")
        assert forged.status_code == 404 and "location" not in forged.headers
        assert (await anonymous.get(f"/v1/track/{route}/1.0.{'A' * 80}")).status_code == 422


async def test_keys_are_shown_once_used_and_revoked(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    made = await api.post("/v1/keys", json={"name": "checkout", "scopes": ["events:write"]})
    assert made.status_code == 201, made.text
    key = made.json()
    token = key["token"]
    assert token.startswith("jk_")
    listed = {k["id"]: k for k in (await api.get("/v1/keys")).json()["items"]}
    assert "token" not in listed[key["id"]] and "hash" not in listed[key["id"]]
    assert token not in (await api.get("/v1/keys")).text
    auth = {"Authorization": f"Bearer {token}"}
    cid = unique("c")
    sent = await anonymous.post("/v1/events", json={"customer_id": cid, "name": "x"}, headers=auth)
    assert sent.status_code == 202
    assert (await anonymous.get(f"/v1/customers/{cid}", headers=auth)).status_code == 403
    used = {k["id"]: k for k in (await api.get("/v1/keys")).json()["items"]}[key["id"]]
    assert used["last_used_at"] is not None

    revoked = await api.delete(f"/v1/keys/{key['id']}")
    assert revoked.json()["revoked_at"] is not None

    async def status() -> int:
        answer = await anonymous.post(
            "/v1/events", json={"customer_id": cid, "name": "x"}, headers=auth
        )
        return answer.status_code

    assert await status() == 401  # at once on the process that revoked it (issue 34)
    actions = [(e["action"], e["key_name"]) for e in (await api.get("/v1/audit")).json()["items"]]
    assert ("POST /v1/keys", "tests") in actions
    assert ("DELETE /v1/keys/{key_id}", "tests") in actions


async def test_changes_are_audited_by_key(api: httpx.AsyncClient) -> None:
    made = (
        await api.post("/v1/keys", json={"name": "author", "scopes": ["journeys:write"]})
    ).json()
    author = {"Authorization": f"Bearer {made['token']}"}
    body = one_send(unique("audited")).model_dump(mode="json")
    assert (await api.post("/v1/journeys", json=body, headers=author)).status_code == 201
    refused = await api.post("/v1/journeys", json={**body, "steps": []}, headers=author)
    assert refused.status_code == 422
    entries = (await api.get("/v1/audit", params={"limit": 50})).json()["items"]
    mine = [e for e in entries if e["key_id"] == made["id"]]
    assert len(mine) == 1  # the refused publish changed nothing, so it is not a change
    [entry] = mine
    assert entry["action"] == "POST /v1/journeys" and entry["target"] == {"id": body["id"]}
    assert entry["key_name"] == "author" and entry["status"] == 201
    assert entry["client"] == "127.0.0.1"
    first = (await api.get("/v1/audit", params={"limit": 1})).json()
    older = (await api.get("/v1/audit", params={"cursor": first["next_cursor"]})).json()
    assert older["items"] and all(e["id"] < first["items"][0]["id"] for e in older["items"])


async def test_errors_are_problems_that_echo_nothing(api: httpx.AsyncClient) -> None:
    secret = "SECRET-" + unique("x")
    bad = await api.put(f"/v1/customers/{unique('c')}", json={"email": secret, "timezone": secret})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    problem = bad.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Entity"
    assert ("body", "email") in {tuple(e["loc"]) for e in problem["errors"]}
    assert secret not in bad.text
    zone = await api.put(f"/v1/customers/{unique('c')}", json={"timezone": secret})
    assert zone.status_code == 422 and secret not in zone.text
    assert zone.json()["errors"][0]["loc"] == ["body", "timezone"]
    strict = await api.post("/v1/events", json={"customer_id": "c", "name": "e", "timestamp": 0})
    assert strict.status_code == 422  # what /openapi.json says, not what pydantic would coerce
    assert strict.json()["errors"][0]["loc"] == ["body", "timestamp"]
    missing = await api.get(f"/v1/customers/{secret.lower()}")
    assert missing.status_code == 404 and secret.lower() not in missing.text
    # 100,000 events: refused by size before parsing, with a small answer.
    events = [{"customer_id": "c", "name": "e", "properties": {"email": "a@b.c"}}] * 100_000
    huge = await api.post("/v1/events", json={"events": events})
    assert huge.status_code == 413 and len(huge.content) < 1000


async def test_writes_are_rate_limited_per_key(stack: Stack, admin_key: str) -> None:
    async with app(stack, rate_limit_per_second=0.01, rate_limit_burst=2) as limited:
        auth = {"Authorization": f"Bearer {admin_key}"}
        body = {"customer_id": unique("c"), "name": "rate"}
        codes = [(await limited.post("/v1/events", json=body, headers=auth)).status_code]
        codes += [(await limited.post("/v1/events", json=body, headers=auth)).status_code]
        over = await limited.post("/v1/events", json=body, headers=auth)
        assert codes == [202, 202] and over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1
        assert (await limited.get("/v1/journeys", headers=auth)).status_code == 200  # reads


async def test_an_app_reads_its_own_inbox_with_a_customer_token(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    cid, other = await customer(api), await customer(api)
    minted = await api.post(f"/v1/customers/{cid}/inbox-token")
    assert minted.status_code == 200
    app_auth = {"Authorization": f"Bearer {minted.json()['token']}"}
    opened = await anonymous.get(f"/v1/customers/{cid}/inbox", headers=app_auth)
    assert opened.json() == {"items": [], "next_cursor": None}
    for url in (f"/v1/customers/{other}/inbox", f"/v1/customers/{cid}"):
        assert (await anonymous.get(url, headers=app_auth)).status_code == 401
    tampered = {"Authorization": app_auth["Authorization"][:-2] + "xx"}
    assert (await anonymous.get(f"/v1/customers/{cid}/inbox", headers=tampered)).status_code == 401


async def test_codec_endpoint_takes_its_token_a_read_key_or_nothing_when_embedded(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    from journeys.runtime.codec import new_key

    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30="}]}
    reader = (await api.post("/v1/keys", json={"name": "ui", "scopes": ["read"]})).json()
    async with app(stack, payload_key=SecretStr(new_key()), codec_token=None) as closed:
        assert (await closed.post("/codec/encode", json=body)).status_code == 401
        read = {"Authorization": f"Bearer {reader['token']}"}
        assert (await closed.post("/codec/encode", json=body, headers=read)).status_code == 200
    async with app(stack, payload_key=SecretStr(new_key()), codec_open=True) as embedded:
        assert (await embedded.post("/codec/encode", json=body)).status_code == 200


async def test_journeys_with_hostile_names_are_refused_or_shown_as_text(
    api: httpx.AsyncClient,
) -> None:
    hostile = '<img src=x onerror="document.body.dataset.pwned=1">'
    spec = one_send(unique("hostile")).model_dump(mode="json")
    arm = {
        "id": "split",
        "type": "split",
        "paths": [{"name": hostile, "weight": 1, "next": "send"}],
    }
    refused = await api.post("/v1/journeys", json={**spec, "steps": [arm, *spec["steps"]]})
    assert refused.status_code == 422 and hostile not in refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", "steps", 0, "paths", 0, "name"]
    for field, value in (("id", "a'b.c"), ("steps", [{**spec["steps"][0], "template": hostile}])):
        assert (await api.post("/v1/journeys", json={**spec, field: value})).status_code == 422
    copy = await publish_copy(api, one_send(unique("hostile")), name=hostile)
    funnel = (await api.get(f"/v1/journeys/{copy.id}/funnel")).json()
    assert funnel["name"] == hostile and hostile not in funnel["mermaid"]


async def test_the_audit_log_names_the_address_that_connected(api: httpx.AsyncClient) -> None:
    """A local caller's X-Forwarded-For is not believed (no trusted proxies by default), and
    a profile write is an operator's change, audited (issue 34)."""
    cid = unique("audited")
    put = await api.put(
        f"/v1/customers/{cid}",
        json={"email": "a@example.com"},
        headers={"X-Forwarded-For": "6.6.6.6"},
    )
    assert put.status_code == 200
    entries = (await api.get("/v1/audit")).json()["items"]
    [entry] = [e for e in entries if e["target"].get("customer_id") == cid]
    assert entry["action"] == "PUT /v1/customers/{customer_id}"
    assert entry["client"] == "127.0.0.1"


async def test_a_write_key_cannot_replace_a_profile(
    stack: Stack, anonymous: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    """`PUT /v1/customers/{id}` wants `operate`; an identify through the write key adds
    traits and fills an empty address, but replaces neither address nor consent."""
    import base64

    write = await stack.stores.keys.create("browser", ["events:write"])
    cid = unique("victim")
    await api.put(
        f"/v1/customers/{cid}", json={"email": "victim@example.com", "unsubscribed": ["all"]}
    )
    refused = await anonymous.put(
        f"/v1/customers/{cid}",
        json={"email": "attacker@example.com"},
        headers={"Authorization": f"Bearer {write.token}"},
    )
    assert refused.status_code == 403
    basic = base64.b64encode(f"{write.token}:".encode()).decode()
    identify = {
        "userId": cid,
        "traits": {"email": "attacker@example.com", "phone": "+15550100", "plan": "pro"},
    }
    sent = await anonymous.post(
        "/v1/identify", json=identify, headers={"Authorization": f"Basic {basic}"}
    )
    assert sent.status_code == 200, sent.text
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["email"] == "victim@example.com"  # kept
    assert profile["phone"] == "+15550100"  # filled: it had none
    assert profile["unsubscribed"] == ["all"] and profile["attributes"]["plan"] == "pro"


async def test_pages_send_security_headers(anonymous: httpx.AsyncClient) -> None:
    """Issue 34, item 10: no page can be framed or sniffed, leaks its address, or runs a
    script it did not serve; the only inline script (Swagger UI's) is allowed by its hash."""
    for path in ("/docs", "/redoc", "/journeys/j-1/funnel", "/v1/unsubscribe/x.y", "/healthz"):
        answer = await anonymous.get(path)
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
        policy = answer.headers["content-security-policy"]
        assert (
            "frame-ancestors 'none'" in policy
            and "'unsafe-inline'" not in policy.split("style-src")[0]
        ), (path, policy)
    funnel = (await anonymous.get("/journeys/j-1/funnel")).text
    assert "<script>" not in funnel and '<script src="/static/funnel.js">' in funnel
    assert (await anonymous.get("/static/funnel.js")).status_code == 200
    docs = await anonymous.get("/docs")
    assert "'sha256-" in docs.headers["content-security-policy"]
    refused = await anonymous.get("/v1/journeys")  # the guard's own answers carry them too
    assert refused.status_code == 401 and refused.headers["x-frame-options"] == "DENY"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev installs it)")
async def test_the_api_docs_render_under_their_policy(api: httpx.AsyncClient) -> None:
    """Swagger UI runs its inline start-up under the page's CSP (allowed by hash)."""
    dom = await asyncio.to_thread(dump_dom, f"{str(api.base_url).rstrip('/')}/docs")
    assert "opblock" in dom and "/v1/journeys" in dom, dom[-2000:]


async def test_reads_failed_keys_and_anonymous_calls_are_rate_limited(
    stack: Stack, admin_key: str
) -> None:
    """Issue 34, item 14: reads per key; failed authentications per address (then even a
    good key from there waits: guessing is slow); the keyless routes per address."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    async with app(stack, read_rate_limit_per_second=0.5, read_rate_limit_burst=2) as limited:
        codes = [(await limited.get("/v1/journeys", headers=auth)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    async with app(stack, auth_failures_per_minute=1, auth_failure_burst=3) as limited:
        bad = {"Authorization": "Bearer jk_000000000000_guess"}
        codes = [(await limited.get("/v1/journeys", headers=bad)).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        locked = await limited.get("/v1/journeys", headers=auth)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        assert "failed authentications" in locked.json()["detail"]
        assert (await limited.get("/healthz")).status_code == 200  # the keyless routes: not
    async with app(
        stack, anonymous_rate_limit_per_second=0.5, anonymous_rate_limit_burst=2
    ) as limited:
        codes = [(await limited.get("/v1/unsubscribe/x.y")).status_code for _ in range(3)]
        assert codes == [404, 404, 429]
        assert (await limited.get("/v1/journeys", headers=auth)).status_code == 200  # keyed


async def test_denied_changes_new_keys_and_dry_runs_are_audited_as_such(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 34, item 9: a refused change (no key, a key without the scope) is on record;
    a new key's entry names it and its scopes; a dry-run migration says it was dry."""
    reader = await stack.stores.keys.create("reader", ["read"])
    journey = one_send(unique("denied")).model_dump(mode="json")
    denied = await anonymous.post(
        "/v1/journeys", json=journey, headers={"Authorization": f"Bearer {reader.token}"}
    )
    assert denied.status_code == 403
    nobody = await anonymous.post("/v1/journeys", json=journey)
    assert nobody.status_code == 401
    made = (await api.post("/v1/keys", json={"name": "ci", "scopes": ["read"]})).json()
    assert (await api.post("/v1/journeys", json=journey)).status_code == 201
    dry = await api.post(f"/v1/journeys/{journey['id']}/migrate", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    entries = (await api.get("/v1/audit", params={"limit": 200})).json()["items"]
    refusals = [
        (e["key_name"], e["status"])
        for e in entries
        if e["action"] == "POST /v1/journeys" and e["status"] in (401, 403)
        and e["key_name"] in ("reader", "no valid key")
    ]  # fmt: skip
    assert ("reader", 403) in refusals and ("no valid key", 401) in refusals
    [key] = [
        e
        for e in entries
        if e["action"] == "POST /v1/keys" and e["target"].get("key_id") == made["id"]
    ]
    assert key["target"] == {"key_id": made["id"], "name": "ci", "scopes": ["read"]}
    [migration] = [
        e for e in entries
        if e["action"] == "POST /v1/journeys/{journey_id}/migrate"
        and e["target"]["journey_id"] == journey["id"]
    ]  # fmt: skip
    assert migration["target"]["dry_run"] is True and migration["target"]["to_version"] == 1
