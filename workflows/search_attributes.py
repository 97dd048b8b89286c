"""Search attributes operators filter enrollments by in the Temporal UI (no PII)."""

from temporalio.common import SearchAttributeKey

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
JOURNEY_STATUS = SearchAttributeKey.for_keyword("JourneyStatus")
JOURNEY_REACHED = SearchAttributeKey.for_keyword_list("JourneyReached")
"""Every step the enrollment has reached, and each split arm it took as `split:arm`: the
funnel counts these in visibility, so counting costs no storage and no activity. Written
from the first step change on (absent: still at, or ended at, the first step)."""

ALL = (JOURNEY_ID, JOURNEY_VERSION, CUSTOMER_ID, JOURNEY_STEP, JOURNEY_STATUS, JOURNEY_REACHED)


def quoted(value: str) -> str:
    """`value` as a string literal in a visibility list query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def arm(split_id: str, path: str) -> str:
    """The `JourneyReached` entry of a split's arm."""
    return f"{split_id}:{path}"
