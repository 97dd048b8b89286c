"""Search attributes operators filter enrollments by in the Temporal UI (no PII)."""

from temporalio.common import SearchAttributeKey

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
JOURNEY_STATUS = SearchAttributeKey.for_keyword("JourneyStatus")

ALL = (JOURNEY_ID, JOURNEY_VERSION, CUSTOMER_ID, JOURNEY_STEP, JOURNEY_STATUS)
