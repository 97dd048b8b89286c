"""The decisioning service: eligibility, live windows, caps, ranking and reasons (pure),
then over HTTP with idempotency and a total cap under concurrency, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from journeys.schemas.decision import DecisionRequest, Offer
from journeys.schemas.formula import FormulaError, evaluate, parse
from journeys.schemas.journey import Ranking
from journeys.schemas.ranking import rank
from tests.conftest import unique
from tests.helpers import customer

NOW = datetime(2026, 11, 11, 12, tzinfo=UTC)


def offer(oid: str, **kw: Any) -> Offer:
    return Offer(id=oid, name=oid.title(), placements=kw.pop("placements", ["cart"]), **kw)


def decide(offers: list[Offer], *, limit: int = 1, ranking: Ranking | None = None, **kw: Any):
    request = DecisionRequest(
        customer_id="c", placement="cart", limit=limit, ranking=ranking or Ranking(), **kw
    )
    profile = {"attributes": {"city": "Bandung", "affinity": 2}}
    return rank(offers, request, profile, at=NOW, mine=kw.get("mine", {}), totals={})


def test_priority_eligibility_window_and_reasons() -> None:
    catalogue = [
        offer("free-shipping", priority=1),
        offer(
            "bandung-only",
            priority=5,
            eligibility={"field": "profile.attributes.city", "op": "eq", "value": "Bandung"},
        ),
        offer(
            "jakarta-only",
            priority=9,
            eligibility={"field": "profile.attributes.city", "op": "eq", "value": "Jakarta"},
        ),
        offer("festival", priority=10, starts_at=NOW + timedelta(days=1)),
        offer("elsewhere", priority=99, placements=["home"]),
    ]
    result = decide(catalogue, limit=1)
    assert [o.id for o in result.offers] == ["bandung-only"]
    assert result.offers[0].reason == "rank 1 by priority (5)"
    reasons = {d.id: d.reason for d in result.dropped}
    assert reasons["jakarta-only"] == (
        "not eligible: profile.attributes.city eq 'Jakarta' (is 'Bandung')"
    )
    assert reasons["festival"].startswith("not live until 2026-11-12")
    assert reasons["free-shipping"] == "below the top 1 by priority (1)"
    assert "elsewhere" not in reasons  # another placement is not part of this decision


def test_formula_and_score_ranking() -> None:
    catalogue = [
        offer("a", priority=9, score=0.1, fields={"margin": 1}),
        offer("b", priority=1, score=0.9, fields={"margin": 3}),
        offer("c", priority=5, score=0.5, fields={"margin": 2}),
    ]
    formula = Ranking(by="formula", formula="offer.fields.margin * profile.attributes.affinity")
    assert [o.id for o in decide(catalogue, limit=2, ranking=formula).offers] == ["b", "c"]
    assert [o.id for o in decide(catalogue, limit=3, ranking=Ranking(by="score")).offers] == [
        "b",
        "c",
        "a",
    ]


def test_formulas_are_arithmetic_only() -> None:
    assert evaluate("max(offer.x, 2) + -1", {"offer": {"x": 5}}) == 4
    assert evaluate("profile.missing / 0", {"profile": {}}) == 0  # missing is 0, no crash
    for bad in (
        "__import__('os')",
        "offer.x.__class__()",
        "os.system",
        "[1][0]",
        "offer.x if 1 else 2",
    ):
        with pytest.raises(FormulaError):
            parse(bad)
    with pytest.raises(ValueError):
        Ranking(by="formula", formula="open('/etc/passwd')")


async def test_decisions_over_http_are_idempotent_and_count_caps(
    api: httpx.AsyncClient,
) -> None:
    placement = unique("place")
    for oid, priority, cap in (("gold", 10, 1), ("silver", 5, None)):
        body = {
            "name": oid,
            "placements": [placement],
            "priority": priority,
            "cap_per_customer": cap,
        }
        assert (await api.put(f"/v1/offers/{unique(oid)}", json=body)).status_code == 200
    cid = await customer(api)
    request = {"customer_id": cid, "placement": placement}
    first = await api.post("/v1/decisions", json=request, headers={"Idempotency-Key": "k1-" + cid})
    again = await api.post("/v1/decisions", json=request, headers={"Idempotency-Key": "k1-" + cid})
    assert first.json() == again.json()
    assert first.json()["offers"][0]["name"] == "gold"
    # The retry did not count: gold is capped (1 per customer) only after a second decision.
    second = (await api.post("/v1/decisions", json={**request, "key": "k2-" + cid})).json()
    assert second["offers"][0]["name"] == "silver"
    assert any(d["reason"] == "capped for this customer (1/1)" for d in second["dropped"])

    bad = await api.put(f"/v1/offers/{unique('x')}", json={"name": "x", "placements": []})
    assert bad.status_code == 422


async def test_a_total_cap_holds_under_concurrent_decisions(api: httpx.AsyncClient) -> None:
    placement = unique("flash")
    body = {"name": "flash sale", "placements": [placement], "cap_total": 5}
    await api.put(f"/v1/offers/{unique('flash')}", json=body)
    customers = [unique("c") for _ in range(20)]
    results = await asyncio.gather(
        *(
            api.post("/v1/decisions", json={"customer_id": c, "placement": placement, "key": c})
            for c in customers
        )
    )
    won = [r.json() for r in results if r.json()["offers"]]
    assert len(won) == 5
    losers = [r.json()["dropped"][0]["reason"] for r in results if not r.json()["offers"]]
    assert losers == ["capped in total (5/5)"] * 15
