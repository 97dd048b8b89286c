"""The pace rule (`schemas.pace.take`), pure: sends 1/rate apart, a queue in order of
priority then arrival, tickets that take their slot, deadlines; and the pace book that
keeps it under a bucket's lock, on SQLite and PostgreSQL."""

from __future__ import annotations

import heapq
import itertools
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.schemas.pace import TICKET_WAIT, Turn, take
from journeys.stack.embedded import Stack

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
POLL = timedelta(seconds=1)
RATE = 2.0  # a slot every 0.5 s


def book(
    state: tuple[datetime | None, dict[int, datetime]], now: datetime, priority: int = 0
) -> tuple[Turn, tuple[datetime | None, dict[int, datetime]]]:
    turn = take(*state, now, RATE, ticket=False, poll=POLL, priority=priority)
    return turn, (turn.tat, turn.tails)


def test_a_crowd_goes_at_the_rate_within_the_poll_and_queues_after_it() -> None:
    state: tuple[datetime | None, dict[int, datetime]] = (None, {})
    turns = []
    for _ in range(6):
        turn, state = book(state, NOW)
        turns.append(turn)
    assert [t.kind for t in turns] == ["go", "go", "go", "queue", "queue", "queue"]
    assert [t.slot - NOW for t in turns] == [timedelta(seconds=s / 2) for s in range(6)]


def test_a_higher_priority_send_queues_ahead_of_lower_ones_and_pushes_them_back() -> None:
    state: tuple[datetime | None, dict[int, datetime]] = (None, {})
    for _ in range(8):  # 3 go (0, 0.5, 1 s), five queue at 1.5 .. 3.5 s
        _, state = book(state, NOW, priority=0)
    low_end = state[1][0]
    urgent, state = book(state, NOW, priority=10)
    assert urgent.kind == "queue"
    assert urgent.slot == NOW + timedelta(seconds=1.5)  # first in the queue
    assert state[1][0] == low_end + timedelta(seconds=0.5)  # the low ones one slot back
    second, state = book(state, NOW, priority=10)
    assert second.slot == NOW + timedelta(seconds=2)  # after the first urgent one
    low, _ = book(state, NOW, priority=0)
    assert low.slot == low_end + timedelta(seconds=1)


def test_a_ticket_takes_the_next_send_slot_or_waits_again() -> None:
    tat = NOW + timedelta(seconds=3)
    back = take(tat, {}, NOW, RATE, ticket=True, poll=POLL)
    assert (back.kind, back.slot, back.tat) == ("go", tat, tat + timedelta(seconds=0.5))
    held = NOW + TICKET_WAIT + timedelta(seconds=5)  # a provider's hold
    again = take(held, {}, NOW, RATE, ticket=True, poll=POLL)
    assert (again.kind, again.slot, again.tat) == ("queue", held, held)


def test_a_send_whose_turn_comes_after_its_deadline_takes_nothing() -> None:
    tails = {0: NOW + timedelta(minutes=5)}
    turn = take(NOW, tails, NOW, RATE, ticket=False, poll=POLL, deadline=NOW + timedelta(1 / 24))
    assert turn.kind == "queue"
    late = take(NOW, tails, NOW, RATE, ticket=False, poll=POLL, deadline=NOW + timedelta(minutes=1))
    assert (late.kind, late.tat, late.tails) == ("expired", NOW, tails)


def simulate(
    arrivals: list[tuple[int, float]],
) -> list[tuple[datetime, int, datetime, int, datetime | None]]:
    """Fresh sends (priority, seconds after the previous one) through the rule, each one
    back with its ticket when called: (slot it went at, priority, arrival, index, when
    it was given its slot back with a ticket (None: it went at once))."""
    state: tuple[datetime | None, dict[int, datetime]] = (None, {})
    events: list[tuple[datetime, int, bool, int, datetime]] = []
    at = NOW
    for k, (priority, gap) in enumerate(arrivals):
        at += timedelta(seconds=gap)
        heapq.heappush(events, (at, k, False, priority, at))
    gone = []
    while events:
        now, k, ticket, priority, arrived = heapq.heappop(events)
        turn = take(*state, now, RATE, ticket=ticket, poll=POLL, priority=priority)
        state = (turn.tat, turn.tails)
        if turn.kind == "go":
            gone.append((turn.slot, priority, arrived, k, now if ticket else None))
        else:
            heapq.heappush(events, (turn.slot, k, True, priority, arrived))
    return sorted(gone)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 0.4)),  # (priority, seconds since the last)
        min_size=1,
        max_size=60,
    )
)
def test_slots_keep_the_rate_and_a_higher_priority_goes_ahead(
    arrivals: list[tuple[int, float]],
) -> None:
    """Any stream of sends, each back when its ticket calls it: every send goes, 1/rate
    apart at least; a send of a higher priority goes before every lower one that was
    queued and given its slot after the higher one arrived, and of equal priorities the
    earlier arrival goes first, once queued (sends called back at the same moment take
    their slots in the order they reach the bucket)."""
    gone = simulate(arrivals)
    assert len(gone) == len(arrivals)
    slots = [g[0] for g in gone]
    assert all(b - a >= timedelta(seconds=1 / RATE) for a, b in itertools.pairwise(slots))
    for slot, p, arrived, k, called in gone:
        for slot2, p2, _, k2, given2 in gone:
            if called is not None and given2 is None and k < k2 and p >= p2:
                assert slot < slot2  # a later one never jumps the queue by going at once
            if given2 is None or given2 <= arrived or given2 == called:
                continue  # (called back together: they take slots in the order they come)
            if p > p2 or (p == p2 and k < k2):
                assert slot < slot2


async def test_the_pace_book_queues_by_priority_across_sessions(stack: Stack) -> None:
    """The book keeps the rule in the database (SQLite and PostgreSQL): a bucket's queue
    ends by priority survive between bookings, as two workers would see them."""
    bucket = f"journey:prio-{uuid.uuid4().hex[:8]}"
    pace, rate = stack.stores.pace, (lambda _: 1.0)
    slots = [(await pace.book([bucket], rate, poll=POLL)) for _ in range(5)]
    assert [b.kind for b in slots if b] == ["go", "go", "queue", "queue", "queue"]
    urgent = await pace.book([bucket], rate, poll=POLL, priority=5)
    assert urgent is not None and urgent.kind == "queue"
    first_low = next(b for b in slots if b and b.kind == "queue")
    assert urgent.slot <= first_low.slot + timedelta(milliseconds=50)
    later = await pace.book([bucket], rate, poll=POLL)
    assert later is not None and later.slot - slots[-1].slot >= timedelta(seconds=1.9)  # type: ignore[union-attr]
