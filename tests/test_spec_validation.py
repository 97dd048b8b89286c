"""Publishing rejects broken journeys with errors that name the step and the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from journeys.activities.channels import CHANNEL_NAMES
from journeys.examples import JOURNEYS, TEMPLATES
from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.schemas.journey import JourneySpec
from journeys.schemas.validation import JourneyInvalid, check_journey, ensure_valid
from tests.conftest import unique

DESIGN_EXAMPLE = {
    "id": "onboarding-nudge",
    "name": "Onboarding nudge",
    "entry": {"event": "registration.completed"},
    "goal": {"event": "bag.club_added"},
    "exit_when": [{"event": "unsubscribed"}],
    "reentry": "never",
    "steps": [
        {
            "id": "wait-club",
            "type": "wait_for_event",
            "event": "bag.club_added",
            "timeout": "P1D",
            "on_event": "done",
            "on_timeout": "push",
        },
        {
            "id": "push",
            "type": "send",
            "channel": "push",
            "template": "come-back",
            "next": "wait-more",
        },
        {
            "id": "wait-more",
            "type": "wait_for_event",
            "event": "bag.club_added",
            "timeout": "P2D",
            "on_event": "done",
            "on_timeout": "email",
        },
        {
            "id": "email",
            "type": "send",
            "channel": "email",
            "template": "add-your-clubs",
            "next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}


def spec(*steps: dict[str, Any], **extra: Any) -> JourneySpec:
    return JourneySpec.model_validate(
        {"id": "j", "name": "J", "entry": {"event": "e"}, "steps": list(steps), **extra}
    )


def test_design_contract_parses_and_matches_the_python_form() -> None:
    parsed = JourneySpec.model_validate(DESIGN_EXAMPLE)
    assert check_journey(parsed) == []
    ours = ONBOARDING.model_dump(mode="json")
    theirs = parsed.model_dump(mode="json")
    # The Python example differs only where it documents why: push, else in-app for a
    # customer without a device token.
    assert ours["steps"][1]["channel"] == "best_channel" and theirs["steps"][1]["channel"] == "push"
    assert ours["steps"][1]["fallbacks"] == ["push", "in_app"]
    ours["steps"][1].update(channel="push", fallbacks=[])
    # ... and sends at the customer's usual active hour (scenario 1; the guardrails issue).
    assert ours["steps"][1]["send_at"] == "best_time"
    ours["steps"][1].update(send_at="now", best_time_within=theirs["steps"][1]["best_time_within"])
    assert {k: v for k, v in ours.items() if k != "description"} == {
        k: v for k, v in theirs.items() if k != "description"
    }
    assert JourneySpec.model_validate_json(parsed.model_dump_json()) == parsed


def test_examples_are_valid() -> None:
    """Graph, channels, and every variable their templates use."""
    templates = {t.id: t for t in TEMPLATES}
    for journey in JOURNEYS:
        ensure_valid(journey, channels=CHANNEL_NAMES, templates=templates)


def locs(problems: list[Any]) -> list[tuple[Any, ...]]:
    return [p.loc for p in problems]


def test_unknown_step_id() -> None:
    problems = check_journey(spec({"id": "a", "type": "wait", "duration": 5, "next": "nowhere"}))
    assert locs(problems) == [("steps", 0, "next")]
    assert "step 'a': unknown step id 'nowhere'" in problems[0].msg


def test_unreachable_step() -> None:
    problems = check_journey(spec({"id": "a", "type": "exit"}, {"id": "orphan", "type": "exit"}))
    assert locs(problems) == [("steps", 1, "id")]
    assert "'orphan' is unreachable" in problems[0].msg


def test_loop_without_a_wait_and_loop_with_one() -> None:
    looping = spec(
        {
            "id": "b",
            "type": "branch",
            "cases": [{"when": {"field": "event.x", "op": "eq", "value": 1}, "next": "end"}],
            "default": "s",
        },
        {"id": "s", "type": "send", "channel": "in_app", "content": {"body": "hi"}, "next": "b"},
        {"id": "end", "type": "exit"},
    )
    problems = check_journey(looping)
    assert len(problems) == 1 and "loop without a wait" in problems[0].msg
    assert "b -> s" in problems[0].msg or "s -> b" in problems[0].msg

    waiting = spec(
        {"id": "w", "type": "wait", "duration": "PT1H", "next": "s"},
        {"id": "s", "type": "send", "channel": "in_app", "content": {"body": "hi"}, "next": "w"},
    )
    assert check_journey(waiting) == []


def test_duplicate_ids_channels_and_templates() -> None:
    journey = spec(
        {"id": "a", "type": "send", "channel": "push", "template": "missing", "next": "a2"},
        {"id": "a2", "type": "exit"},
        {"id": "a2", "type": "exit"},
    )
    problems = check_journey(journey, channels=["email", "in_app"], templates=["other"])
    assert set(locs(problems)) == {
        ("steps", 2, "id"),
        ("steps", 0, "channel"),
        ("steps", 0, "template"),
    }
    with pytest.raises(JourneyInvalid) as raised:
        ensure_valid(journey, channels=["email", "in_app"], templates=["other"])
    assert "channel 'push' is not configured" in str(raised.value)


@pytest.mark.parametrize(
    ("step", "loc_tail"),
    [
        (
            {"id": "a", "type": "send", "channel": "fax", "content": {"body": "x"}, "next": "a"},
            "channel",
        ),
        ({"id": "a", "type": "send", "channel": "email", "next": "a"}, None),
        ({"id": "a", "type": "wait", "next": "a"}, None),
        ({"id": "a", "type": "teleport"}, None),
        ({"id": "Bad Id", "type": "exit"}, "id"),
        (
            {
                "id": "a",
                "type": "branch",
                "cases": [{"when": {"field": "secrets.x", "op": "eq"}, "next": "a"}],
                "default": "a",
            },
            "field",
        ),
    ],
)
def test_structural_errors_name_the_field(step: dict[str, Any], loc_tail: str | None) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(step)
    error = raised.value.errors()[0]
    assert error["loc"][:2] == ("steps", 0)
    if loc_tail:
        assert error["loc"][-1] == loc_tail


async def test_publish_over_api_reports_step_and_field(api: httpx.AsyncClient) -> None:
    body = {**copy.deepcopy(DESIGN_EXAMPLE), "id": unique("bad")}
    assert (await api.post("/v1/journeys", json=body)).status_code == 201
    body["steps"][3]["template"] = "no-such-template"
    response = await api.post("/v1/journeys", json=body)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["errors"]] == [["body", "steps", 3, "template"]]
    body["steps"][3]["template"] = "add-your-clubs"
    body["steps"][3]["next"] = "gone"
    response = await api.post("/v1/journeys", json=body)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["errors"]] == [["body", "steps", 3, "next"]]

    structural = await api.post(
        "/v1/journeys", json={**body, "steps": [{"id": "x", "type": "send"}]}
    )
    assert structural.status_code == 422
    assert structural.json()["errors"][0]["loc"][:3] == ["body", "steps", 0]

    garbage = await api.post(
        "/v1/journeys", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422


async def test_publish_versions_and_read_back(api: httpx.AsyncClient) -> None:
    body = json.loads(ONBOARDING.model_dump_json())
    body["id"] = unique("versions")
    first = await api.post("/v1/journeys", json=body)
    body["name"] = "Renamed"
    second = await api.post("/v1/journeys", json=body)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    latest = (await api.get(f"/v1/journeys/{body['id']}")).json()
    assert latest["version"] == 2 and latest["versions"] == [1, 2]
    assert latest["spec"]["name"] == "Renamed"
    v1 = (await api.get(f"/v1/journeys/{body['id']}/versions/1")).json()
    assert v1["spec"]["name"] == "Onboarding nudge"
    assert (await api.get(f"/v1/journeys/{body['id']}/versions/9")).status_code == 404
    everything = (await api.get("/v1/journeys", params={"limit": 1000})).json()["items"]
    listed = {j["id"]: j for j in everything}
    assert listed[body["id"]]["version"] == 2


async def test_bad_customer_and_event_input(api: httpx.AsyncClient) -> None:
    bad_zone = await api.put("/v1/customers/c", json={"timezone": "Mars/Olympus"})
    assert bad_zone.status_code == 422
    assert bad_zone.json()["errors"][0]["loc"] == ["body", "timezone"]
    bad_consent = await api.put("/v1/customers/c", json={"consent": {"fax": True}})
    assert bad_consent.status_code == 422
    no_name = await api.post("/v1/events", json={"customer_id": "c"})
    assert no_name.status_code == 422
    empty_batch = await api.post("/v1/events", json={"events": []})
    assert empty_batch.status_code == 422
    bad_template = await api.put("/v1/templates/t1", json={"body": "{{ oops"})
    assert bad_template.status_code == 422
    assert bad_template.json()["errors"][0]["loc"] == ["body", "body"]
    assert (await api.get("/v1/customers/nobody-at-all")).status_code == 404


def test_a_missing_action_step_is_named_with_its_article() -> None:
    """Issue 33's small things: "needs a action step" read wrong."""
    from journeys.schemas.templating import problems

    assert problems("{{ context.actions.coupon.code }}", {}) == [
        "'context.actions.coupon' needs an action step 'coupon' in this journey"
    ]
