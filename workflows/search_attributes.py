"""Search attributes operators filter enrollments by in the Temporal UI (no PII)."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.converter import encode_typed_search_attribute_value

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
JOURNEY_STATUS = SearchAttributeKey.for_keyword("JourneyStatus")
JOURNEY_REACHED = SearchAttributeKey.for_keyword_list("JourneyReached")
"""Every step the enrollment has reached, and each split arm it took as `split:arm`: the
funnel counts these in visibility, so counting costs no storage and no activity. Written
from the first step change on (absent: still at, or ended at, the first step). Kept within
`VALUE_BYTES`: a longer list would make Temporal terminate the run, so once the next entry
does not fit, `MORE` ends the list and later steps go unlisted."""

VALUE_BYTES = 2048
"""Temporal's default limit on one search attribute's value (dynamic config
`limit.searchAttributesSizeOfValue`)."""
MORE = "*"
"""The last `JourneyReached` entry of a full list (no step id or arm can be `*`)."""

ALL = (JOURNEY_ID, JOURNEY_VERSION, CUSTOMER_ID, JOURNEY_STEP, JOURNEY_STATUS, JOURNEY_REACHED)


def at_start(journey_id: str, version: int, customer_id: str, step: str) -> TypedSearchAttributes:
    """What an enrollment starts with: active at its first step (`JourneyReached` comes
    with the first step change)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOURNEY_ID, journey_id),
            SearchAttributePair(JOURNEY_VERSION, version),
            SearchAttributePair(CUSTOMER_ID, customer_id),
            SearchAttributePair(JOURNEY_STEP, step),
            SearchAttributePair(JOURNEY_STATUS, "active"),
        ]
    )


def quoted(value: str) -> str:
    """`value` as a string literal in a visibility list query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def arm(split_id: str, path: str) -> str:
    """The `JourneyReached` entry of a split's arm."""
    return f"{split_id}:{path}"


def attributed(experiment: str) -> str:
    """The `JourneyReached` entry of a conversion within `experiment`'s attribution window
    (`!` is in no step id or arm name)."""
    return f"{experiment}!converted"


def reached(listed: list[str], new: list[str]) -> list[str] | None:
    """`listed` with as many of `new` as fit in `VALUE_BYTES` (then `MORE`), or None when
    nothing changes (the list was already full)."""
    if MORE in listed:
        return None
    kept = list(listed)
    for entry in new:
        if _size([*kept, entry, MORE]) > VALUE_BYTES:
            return [*kept, MORE]
        kept.append(entry)
    return kept if kept != listed else None


def _size(values: list[str]) -> int:
    return len(encode_typed_search_attribute_value(JOURNEY_REACHED, values).data)
