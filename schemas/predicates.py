"""The predicate language: data (all / any / not over typed comparisons), never eval().

Predicates appear in branch cases, entry and event filters. Evaluation is a pure function of
a scope dict rooted at `profile`, `group` (the traits of the customer's group, in branches),
`event`, `last_event` and `context`, so the same code runs
inside workflows (deterministic) and in the API's event router.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from journeys.schemas.base import Schema

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]
ROOTS = ("profile", "group", "event", "last_event", "context")
FIELD_PATTERN = r"^(profile|group|event|last_event|context)(\.[A-Za-z0-9_\-]+)*$"


class Comparison(Schema):
    """`{"field": "profile.attributes.city", "op": "eq", "value": "Bandung"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str = Field(pattern=FIELD_PATTERN)
    """A dotted path: `profile.*`, `group.*`, `event.*`, `last_event.*`, `context.*`."""
    op: Op
    """`eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `contains` or `exists`."""
    value: Any = None
    """What the field is compared with."""


class AllOf(Schema):
    """Holds when every predicate in `all` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    all: list[Predicate]
    """Holds when every one holds."""


class AnyOf(Schema):
    """Holds when any predicate in `any` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    any: list[Predicate]
    """Holds when one holds."""


class Not(Schema):
    """Holds when `not` does not."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )
    not_: Predicate = Field(alias="not")
    """Holds when this does not."""


Predicate = Comparison | AllOf | AnyOf | Not

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()

_MISSING = object()


def resolve(scope: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when any part is missing."""
    current: Any = scope
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is _MISSING:
            return None
    return current


def _ordered(actual: Any, op: str, expected: Any) -> bool:  # values are JSON, so Any
    # Numbers compare with numbers, strings with strings; anything else is simply false,
    # so a typo in a profile attribute never crashes an enrollment.
    numeric = (int, float)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return False
    if not (
        (isinstance(actual, numeric) and isinstance(expected, numeric))
        or (isinstance(actual, str) and isinstance(expected, str))
    ):
        return False
    a: Any = actual
    b: Any = expected
    if op == "gt":
        return bool(a > b)
    if op == "gte":
        return bool(a >= b)
    if op == "lt":
        return bool(a < b)
    return bool(a <= b)


def compare(actual: Any, op: str, expected: Any) -> bool:
    """Apply one comparison operator; type mismatches are false, never errors."""
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op in ("gt", "gte", "lt", "lte"):
        return _ordered(actual, op, expected)
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        return isinstance(actual, list) and expected in actual
    if op == "exists":
        wanted = True if expected is None else bool(expected)
        return (actual is not None) == wanted
    raise ValueError(f"unknown operator {op!r}")


def evaluate(predicate: Predicate | None, scope: dict[str, Any]) -> bool:
    """True when the predicate holds in the scope; no predicate always holds."""
    if predicate is None:
        return True
    if isinstance(predicate, Comparison):
        return compare(resolve(scope, predicate.field), predicate.op, predicate.value)
    if isinstance(predicate, AllOf):
        return all(evaluate(p, scope) for p in predicate.all)
    if isinstance(predicate, AnyOf):
        return any(evaluate(p, scope) for p in predicate.any)
    return not evaluate(predicate.not_, scope)


def fields(predicate: Predicate | None) -> set[str]:
    """Every field path a predicate reads (to know whether a profile must be loaded)."""
    if predicate is None:
        return set()
    if isinstance(predicate, Comparison):
        return {predicate.field}
    if isinstance(predicate, AllOf):
        return set().union(*(fields(p) for p in predicate.all))
    if isinstance(predicate, AnyOf):
        return set().union(*(fields(p) for p in predicate.any))
    return fields(predicate.not_)


def why_not(predicate: Predicate | None, scope: dict[str, Any]) -> str | None:
    """None when the predicate holds, else the part that failed, in words
    (`profile.attributes.city eq 'Jakarta' (is 'Bandung')`)."""
    if evaluate(predicate, scope):
        return None
    if isinstance(predicate, Comparison):
        actual = resolve(scope, predicate.field)
        return f"{predicate.field} {predicate.op} {predicate.value!r} (is {actual!r})"
    if isinstance(predicate, AllOf):
        return next(r for p in predicate.all if (r := why_not(p, scope)) is not None)
    if isinstance(predicate, AnyOf):
        return "none of: " + "; ".join(str(why_not(p, scope)) for p in predicate.any)
    assert isinstance(predicate, Not)
    return f"not ({', '.join(sorted(fields(predicate.not_)))} matched)"
