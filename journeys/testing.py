"""Test journeys like code: the stable testing API.

`JourneyKit` runs a journey in virtual time with the real interpreter and event router: send
events, move time, assert on what was sent. With pytest, installing `journeys[testing]`
registers the fixtures `journey_kit` and `journeys_temporal` (README, "Testing your
journeys").

    from journeys.testing import JourneyKit
"""

from journeys.testkit.kit import JourneyKit, Run, Sent, temporal_server

__all__ = ["JourneyKit", "Run", "Sent", "temporal_server"]
