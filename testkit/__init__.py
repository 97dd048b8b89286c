"""The journey authors' testing kit: run a journey in virtual time with the real interpreter
and event router, send events, move time, and assert on what was sent.

With pytest, the plugin (`testkit.plugin`, registered on install) gives the fixtures
`journey_kit` (a fresh `JourneyKit` per test) and `journeys_temporal` (one time-skipping
Temporal dev server per session). See the README, "Testing your journeys".
"""

from journeys.testkit.kit import JourneyKit, Run, Sent, temporal_server

__all__ = ["JourneyKit", "Run", "Sent", "temporal_server"]
