"""The activity contract holds: each implementation is its contract's methods under the same
names and types, and a retry policy names only error kinds that an activity raises."""

from __future__ import annotations

import ast
import inspect
import typing
from types import UnionType

import pytest
from temporalio import activity
from temporalio.common import RetryPolicy

from journeys.activities.actions import ActionActivities
from journeys.activities.audiences import AudienceActivities
from journeys.activities.decisioning import DecisioningActivities
from journeys.activities.delivery import DeliveryActivities
from journeys.activities.experiments import ExperimentActivities
from journeys.activities.profiles import ProfileActivities
from journeys.schemas import activities as contract
from journeys.workflows import audience, journey
from tests.conftest import repo_root

IMPLEMENTATIONS = [
    ActionActivities,
    AudienceActivities,
    DecisioningActivities,
    DeliveryActivities,
    ExperimentActivities,
    ProfileActivities,
]


def defined(cls: type) -> dict[str, tuple[str, typing.Callable[..., object]]]:
    """attribute -> (activity name, function) for the class's activity methods."""
    found = {}
    for attr, fn in inspect.getmembers(cls, inspect.isfunction):
        definition = activity._Definition.from_callable(fn)
        if definition is not None:
            found[attr] = (definition.name, fn)
    return found


def accepts(implementation: object, wanted: object) -> bool:
    """The implementation's parameter takes what the contract sends (the same type, or a
    union with it: a form older workflows sent, kept for their histories)."""
    if implementation == wanted:
        return True
    return isinstance(implementation, UnionType) and wanted in typing.get_args(implementation)


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_each_implementation_is_its_contract(cls: type) -> None:
    [base] = [b for b in cls.__mro__ if b in contract.CONTRACTS]
    wanted, have = defined(base), defined(cls)
    assert set(have) == set(wanted)
    for attr, (name, stub) in wanted.items():
        assert have[attr][0] == name, f"{cls.__name__}.{attr} runs as {have[attr][0]}"
        impl = have[attr][1]
        assert impl is not stub, f"{cls.__name__}.{attr} is not implemented"
        stub_hints, impl_hints = typing.get_type_hints(stub), typing.get_type_hints(impl)
        assert impl_hints["return"] == stub_hints["return"]
        first = next(p for p in inspect.signature(stub).parameters if p != "self")
        impl_first = next(p for p in inspect.signature(impl).parameters if p != "self")
        assert accepts(impl_hints[impl_first], stub_hints[first]), f"{cls.__name__}.{attr}"


def test_every_contract_has_one_implementation() -> None:
    implemented = {b for cls in IMPLEMENTATIONS for b in cls.__mro__ if b in contract.CONTRACTS}
    assert implemented == set(contract.CONTRACTS)
    names = [name for c in contract.CONTRACTS for name, _ in defined(c).values()]
    assert len(names) == len(set(names))


def test_each_contract_method_takes_one_input_model() -> None:
    for c in contract.CONTRACTS:
        for attr, (_, stub) in defined(c).items():
            params = [p for p in inspect.signature(stub).parameters if p != "self"]
            assert len(params) == 1, f"{c.__name__}.{attr} takes {params}"


def retry_policies() -> list[tuple[str, RetryPolicy]]:
    return [
        (f"{module.__name__}.{name}", value)
        for module in (journey, audience)
        for name, value in vars(module).items()
        if isinstance(value, RetryPolicy)
    ]


def test_a_retry_policy_names_only_errors_that_something_raises() -> None:
    policies = retry_policies()
    assert policies, "the workflows have retry policies"
    for where, policy in policies:
        for kind in policy.non_retryable_error_types or ():
            assert kind in contract.ERROR_KINDS, f"{where} names {kind!r}, which nothing raises"


@pytest.mark.parametrize(
    "kind, raised_by",
    [("INVALID_REQUEST", "invalid_request"), ("RATE_LIMITED", "RATE_LIMITED")],
)
def test_every_error_kind_is_raised_by_an_activity(kind: str, raised_by: str) -> None:
    """Each kind in `ERROR_KINDS` is used by some activity (so the list is not stale)."""
    assert getattr(contract, kind) in contract.ERROR_KINDS
    used = set()
    for path in (repo_root() / "activities").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == raised_by:
                used.add(path.name)
    assert used, f"no activity raises {kind}"
    assert {getattr(contract, k) for k in ("INVALID_REQUEST", "RATE_LIMITED")} == set(
        contract.ERROR_KINDS
    )


async def test_get_profile_takes_the_request_and_the_older_two_argument_form(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Workflows scheduled before the contract sent (customer id, fields); the SDK hands a
    lone request over as JSON (its hints are two): all three answer the same."""
    from journeys.schemas.profile import Profile
    from journeys.storage.stores import Stores

    stores = await Stores.open(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", channels=[])
    try:
        await stores.profiles.put(Profile(customer_id="c1", email="a@example.com"))
        profiles = ProfileActivities(stores.profiles)
        request = contract.ProfileRequest(customer_id="c1", fields=["profile.email"])
        answers = [
            await profiles.get_profile(request),
            await profiles.get_profile(request.model_dump()),  # type: ignore[arg-type]
            await profiles.get_profile("c1", ["profile.email"]),
        ]
    finally:
        await stores.close()
    assert answers[0] == answers[1] == answers[2]
    assert "a@example.com" in str(answers[0])
