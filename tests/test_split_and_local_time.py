"""Pure helpers the interpreter relies on: stable split assignment and local-time waits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

from journeys.schemas.guardrails import next_local_time
from journeys.schemas.journey import SplitPath
from journeys.workflows.split import bucket, choose

PATHS = [
    SplitPath(name="a", weight=45, next="x"),
    SplitPath(name="b", weight=45, next="y"),
    SplitPath(name="holdout", weight=10, next="z"),
]


def test_split_is_stable_and_follows_weights() -> None:
    assert bucket("j", "s", "c1") == bucket("j", "s", "c1")
    assert bucket("j", "s", "c1") != bucket("j", "other-step", "c1")
    counts = Counter(choose(PATHS, bucket("j", "s", f"customer-{i}")).name for i in range(20000))
    assert abs(counts["a"] / 20000 - 0.45) < 0.02
    assert abs(counts["holdout"] / 20000 - 0.10) < 0.01
    assert choose(PATHS, 0.0).name == "a" and choose(PATHS, 0.999999).name == "holdout"


def at(zone_time: str, *, after: datetime, zone: str) -> datetime:
    h, m = map(int, zone_time.split(":"))
    return next_local_time(time(h, m), after, zone)


def test_next_local_time_same_day_and_next_day() -> None:
    after = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)  # 07:00 in Berlin (CEST)
    assert at("09:00", after=after, zone="Europe/Berlin") == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert at("06:00", after=after, zone="Europe/Berlin") == datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
    assert at("09:00", after=after, zone="Asia/Jakarta") == datetime(2026, 6, 2, 2, 0, tzinfo=UTC)


def test_next_local_time_across_dst_changes() -> None:
    # Europe/Berlin springs forward on 2026-03-29 02:00 -> 03:00 and falls back on 10-25.
    before_spring = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert at("09:00", after=before_spring, zone="Europe/Berlin") == datetime(
        2026, 3, 29, 7, 0, tzinfo=UTC
    )
    skipped = at("02:30", after=before_spring, zone="Europe/Berlin")
    assert skipped == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, just after the gap
    before_fall = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert at("09:00", after=before_fall, zone="Europe/Berlin") == datetime(
        2026, 10, 25, 8, 0, tzinfo=UTC
    )
    # New York falls back on 2026-11-01: 09:00 is 13:00 UTC on Saturday, 14:00 on Sunday.
    saturday_10am = datetime(2026, 10, 31, 14, 0, tzinfo=UTC)
    assert at("09:00", after=saturday_10am, zone="America/New_York") == datetime(
        2026, 11, 1, 14, 0, tzinfo=UTC
    )


def test_unknown_zone_falls_back_to_utc() -> None:
    after = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert at("09:00", after=after, zone="Not/AZone") == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
