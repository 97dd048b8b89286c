"""Property-based tests of the predicate language: it is total (never raises on any data),
composes like boolean logic, and survives the JSON round trip unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from journeys.schemas.predicates import (
    AllOf,
    AnyOf,
    Comparison,
    Not,
    Predicate,
    compare,
    evaluate,
    resolve,
)

OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
keys = st.sampled_from(["a", "b", "c"])
documents = st.dictionaries(keys, values | st.dictionaries(keys, values, max_size=3), max_size=3)
scopes = st.fixed_dictionaries(
    {
        "profile": documents,
        "event": documents,
        "last_event": documents | st.none(),
        "context": documents,
    }
)
paths = st.builds(
    lambda root, parts: ".".join([root, *parts]),
    st.sampled_from(["profile", "event", "last_event", "context"]),
    st.lists(keys, max_size=2),
)
comparisons = st.builds(Comparison, field=paths, op=st.sampled_from(OPS), value=values)
predicates = st.recursive(
    comparisons,
    lambda inner: (
        st.builds(AllOf, all=st.lists(inner, max_size=3))
        | st.builds(AnyOf, any=st.lists(inner, max_size=3))
        | st.builds(lambda p: Not(**{"not": p}), inner)
    ),
    max_leaves=8,
)
adapter: TypeAdapter[Any] = TypeAdapter(Predicate)


@given(predicates, scopes)
def test_total_and_boolean(predicate: Any, scope: dict[str, Any]) -> None:
    assert evaluate(predicate, scope) in (True, False)


@given(predicates, scopes)
def test_not_inverts(predicate: Any, scope: dict[str, Any]) -> None:
    assert evaluate(Not(**{"not": predicate}), scope) is (not evaluate(predicate, scope))


@given(st.lists(predicates, max_size=4), scopes)
def test_all_any_and_de_morgan(items: list[Any], scope: dict[str, Any]) -> None:
    each = [evaluate(p, scope) for p in items]
    assert evaluate(AllOf(all=items), scope) is all(each)
    assert evaluate(AnyOf(any=items), scope) is any(each)
    negated = [Not(**{"not": p}) for p in items]
    assert evaluate(Not(**{"not": AllOf(all=items)}), scope) is evaluate(AnyOf(any=negated), scope)


@given(predicates, scopes)
def test_json_round_trip_keeps_meaning(predicate: Any, scope: dict[str, Any]) -> None:
    again = adapter.validate_json(adapter.dump_json(predicate, by_alias=True))
    assert again == predicate
    assert evaluate(again, scope) is evaluate(predicate, scope)


@given(values, values)
def test_ordering_is_antisymmetric_and_eq_ne_complementary(a: Any, b: Any) -> None:
    if compare(a, "lt", b):
        assert not compare(a, "gte", b) and compare(b, "gt", a)
    assert compare(a, "eq", b) is not compare(a, "ne", b)


@given(documents)
def test_exists_matches_resolution(doc: dict[str, Any]) -> None:
    for key in ("a", "b", "zzz"):
        present = resolve({"event": doc}, f"event.{key}") is not None
        assert evaluate(Comparison(field=f"event.{key}", op="exists"), {"event": doc}) is present
        assert (
            evaluate(Comparison(field=f"event.{key}", op="exists", value=False), {"event": doc})
            is not present
        )


def test_examples_of_each_operator() -> None:
    scope = {"profile": {"attributes": {"city": "Bandung", "age": 31, "tags": ["vip"]}}}
    cases = [
        ("profile.attributes.city", "eq", "Bandung", True),
        ("profile.attributes.city", "ne", "Jakarta", True),
        ("profile.attributes.age", "gt", 30, True),
        ("profile.attributes.age", "lte", 30, False),
        ("profile.attributes.age", "gt", "30", False),  # no cross-type ordering
        ("profile.attributes.city", "in", ["Bandung", "Bogor"], True),
        ("profile.attributes.tags", "contains", "vip", True),
        ("profile.attributes.city", "contains", "dun", True),
        ("profile.attributes.missing", "exists", True, False),
        ("profile.attributes.missing", "eq", None, True),
    ]
    for field, op, value, expected in cases:
        assert evaluate(Comparison(field=field, op=op, value=value), scope) is expected, (field, op)
    assert evaluate(None, scope) is True
