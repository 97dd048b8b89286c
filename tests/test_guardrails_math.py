"""The arithmetic behind the guardrails: rolling cap windows, quiet hours across DST in two
time zones, and send-time optimisation. Pure functions, so property-based where it pays."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.schemas.guardrails import (
    FrequencyCap,
    QuietHours,
    best_hour,
    counted,
    free_at,
    quiet_until,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NIGHT = QuietHours(start=time(21), end=time(8))

caps = st.builds(
    FrequencyCap,
    limit=st.integers(min_value=1, max_value=6),
    window=st.integers(min_value=60, max_value=7 * 86400).map(lambda s: timedelta(seconds=s)),
)
offsets = st.lists(st.integers(min_value=0, max_value=14 * 86400), max_size=40)


@given(cap=caps, requests=offsets)
@settings(max_examples=300)
def test_greedy_admission_never_exceeds_the_cap_in_any_window(
    cap: FrequencyCap, requests: list[int]
) -> None:
    """Admitting each request when `counted` leaves room keeps every window within the cap."""
    admitted: list[datetime] = []
    for offset in sorted(requests):
        at = T0 + timedelta(seconds=offset)
        if counted(cap, at, admitted) + 1 <= cap.limit:
            admitted.append(at)
    for end in admitted:  # a window's count peaks at one of its sends
        assert sum(1 for s in admitted if end - cap.window < s <= end) <= cap.limit


@given(cap=caps, sent=offsets, probe=st.integers(min_value=0, max_value=14 * 86400))
@settings(max_examples=300)
def test_free_at_is_the_first_instant_a_send_fits(
    cap: FrequencyCap, sent: list[int], probe: int
) -> None:
    at = T0 + timedelta(seconds=probe)
    history = [T0 + timedelta(seconds=s) for s in sent if s <= probe]
    free = free_at(cap, at, history)
    assert free >= at
    assert counted(cap, free, history) < cap.limit
    if free > at:  # just before it, still full
        assert counted(cap, free - timedelta(microseconds=1), history) >= cap.limit
    else:
        assert counted(cap, at, history) < cap.limit


def test_window_is_half_open_and_a_zero_cap_never_frees() -> None:
    cap = FrequencyCap(limit=1, window=timedelta(days=7))
    sent = [T0]
    assert counted(cap, T0 + timedelta(days=7) - timedelta(seconds=1), sent) == 1
    assert counted(cap, T0 + timedelta(days=7), sent) == 0
    # A send recorded on a clock that runs ahead still holds its slot.
    assert counted(cap, T0 - timedelta(hours=1), sent) == 1
    assert free_at(cap, T0 + timedelta(days=1), sent) == T0 + timedelta(days=7)
    never = free_at(FrequencyCap(limit=0, window=timedelta(days=1)), T0, [])
    assert never.year == 9999


@given(start=st.times(), end=st.times(), probe=st.times())
def test_quiet_hours_contain_exactly_their_window(start: time, end: time, probe: time) -> None:
    quiet = QuietHours(start=start, end=end)
    if start == end:
        assert not quiet.contains(probe)
    elif start < end:
        assert quiet.contains(probe) == (start <= probe < end)
    else:  # wraps midnight
        assert quiet.contains(probe) == (probe >= start or probe < end)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_quiet_hours_across_spring_forward_in_two_zones() -> None:
    # Berlin: 2027-03-28 02:00 CET -> 03:00 CEST. 22:00 CET on the 27th is 21:00 UTC;
    # quiet hours end at 08:00 CEST = 06:00 UTC (the night is an hour shorter).
    assert quiet_until(NIGHT, utc(2027, 3, 27, 21), "Europe/Berlin") == utc(2027, 3, 28, 6)
    # New York: 2027-03-14 02:00 EST -> 03:00 EDT. 23:30 EST on the 13th is 04:30 UTC;
    # the quiet hours end at 08:00 EDT = 12:00 UTC.
    assert quiet_until(NIGHT, utc(2027, 3, 14, 4, 30), "America/New_York") == utc(2027, 3, 14, 12)
    # The same UTC instants a week earlier end an hour later in UTC (standard time).
    assert quiet_until(NIGHT, utc(2027, 3, 20, 21), "Europe/Berlin") == utc(2027, 3, 21, 7)
    assert quiet_until(NIGHT, utc(2027, 3, 7, 4, 30), "America/New_York") == utc(2027, 3, 7, 13)


def test_quiet_hours_across_fall_back_in_two_zones() -> None:
    # Berlin: 2026-10-25 03:00 CEST -> 02:00 CET; 08:00 CET = 07:00 UTC.
    assert quiet_until(NIGHT, utc(2026, 10, 24, 20), "Europe/Berlin") == utc(2026, 10, 25, 7)
    # New York: 2026-11-01 02:00 EDT -> 01:00 EST; 08:00 EST = 13:00 UTC.
    assert quiet_until(NIGHT, utc(2026, 11, 1, 2), "America/New_York") == utc(2026, 11, 1, 13)


def test_outside_quiet_hours_nothing_waits() -> None:
    assert quiet_until(NIGHT, utc(2027, 3, 28, 10), "Europe/Berlin") is None  # 12:00 CEST
    assert quiet_until(None, utc(2027, 3, 28, 1), "Europe/Berlin") is None
    # Exactly at the end the window is over; exactly at the start it has begun.
    assert quiet_until(NIGHT, utc(2027, 3, 28, 6), "Europe/Berlin") is None  # 08:00 CEST
    assert quiet_until(NIGHT, utc(2027, 3, 28, 19), "Europe/Berlin") == utc(2027, 3, 29, 6)


@given(
    hours=st.lists(st.integers(min_value=0, max_value=50), min_size=24, max_size=24),
    minute=st.integers(min_value=0, max_value=59),
    within=st.integers(min_value=1, max_value=48),
)
def test_best_hour_stays_within_bound_and_picks_the_busiest(
    hours: list[int], minute: int, within: int
) -> None:
    at = utc(2026, 11, 24, 9, minute)
    best = best_hour(hours, at, timedelta(hours=within))
    assert at <= best <= at + timedelta(hours=within)
    if sum(hours) < 5:
        assert best == at
        return
    reachable = {at.hour} | {(at.hour + k) % 24 for k in range(1, within + 1)}
    assert hours[best.hour] == max(hours[h] for h in reachable)


def test_best_hour_prefers_the_customers_evening() -> None:
    hours = [0] * 24
    hours[19] = 8  # usually active at 19:00 UTC
    assert best_hour(hours, utc(2026, 11, 24, 9, 15), timedelta(hours=24)) == utc(2026, 11, 24, 19)
    # Out of reach within the bound: the busiest reachable hour, else now.
    assert best_hour(hours, utc(2026, 11, 24, 9, 15), timedelta(hours=3)) == utc(
        2026, 11, 24, 9, 15
    )
