"""The send decision without a database: each rule, their order, and properties over random
snapshots (caps never exceeded, priority respected, transactional never capped, consent
always wins). The ledger's wiring of it is tested in test_guardrails_race.py."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import FrequencyCap, QuietHours, counted
from journeys.schemas.journey import MessageContent
from journeys.schemas.profile import Profile
from journeys.schemas.send_decision import (
    Earlier,
    Rules,
    Slot,
    Snapshot,
    Verdict,
    arbitrate,
    caps_for,
    decide,
)

NOON = datetime(2026, 11, 2, 12, tzinfo=UTC)  # a Monday, midday UTC
NIGHT = datetime(2026, 11, 2, 23, tzinfo=UTC)
QUIET = QuietHours(start=time(21), end=time(8))
WEEKLY = FrequencyCap(limit=2, window=timedelta(days=7))
ALICE = Profile(customer_id="c1", email="a@example.com", phone="+15550100")


def request(**fields: Any) -> Any:
    from journeys.schemas.delivery import SendRequest

    base: dict[str, Any] = {
        "idempotency_key": "k1",
        "journey_id": "j1",
        "version": 1,
        "step_id": "s",
        "customer_id": "c1",
        "channel": "email",
        "content": MessageContent(body="x"),
        "event": CustomerEvent.create("c1", "go", timestamp=NOON, message_id="m1"),
    }
    return SendRequest(**(base | fields))


def slot(at: datetime, *, key: str = "other", journey: str = "j2", priority: int = 0) -> Slot:
    return Slot(at=at, channel="email", journey_id=journey, priority=priority, since=at, key=key)


def snap(profile: Profile = ALICE, slots: list[Slot] | None = None, earlier: Any = None) -> Any:
    return Snapshot(profile, earlier, slots or [])


# -- each rule, and the order between them ------------------------------------------------


def test_a_settled_key_answers_its_first_outcome_before_any_rule() -> None:
    gone = Profile(customer_id="c1", consent={"email": False})
    verdict = decide(snap(gone, earlier=Earlier("sent", "email")), request(), Rules(), NOON)
    assert verdict == Verdict("earlier", "email")


def test_a_granted_key_is_granted_again_on_retry_even_when_capped_now() -> None:
    full = [slot(NOON - timedelta(hours=h), key=f"o{h}") for h in (1, 2)]
    verdict = decide(
        snap(slots=full, earlier=Earlier("pending", "sms")), request(), Rules([WEEKLY]), NOON
    )
    assert verdict == Verdict("again", "sms")


def test_an_abandoned_send_is_suppressed_before_consent_is_looked_at() -> None:
    nobody = Profile(customer_id="c1")
    assert decide(snap(nobody), request(abandon=True), Rules(), NOON) == Verdict(
        "suppress", reason="ended"
    )


def test_consent_wins_over_a_dry_run_and_over_transactional() -> None:
    refused = Profile(customer_id="c1", email="a@example.com", consent={"email": False})
    for topic in ("marketing", "transactional"):
        verdict = decide(snap(refused), request(dry_run=True, topic=topic), Rules(), NOON)
        assert (verdict.kind, verdict.channel) == ("suppress", None)
        assert verdict.reason != "dry_run"


def test_consent_reasons_and_what_a_transactional_send_may_override() -> None:
    """Channel consent binds every topic; a marketing opt-out binds marketing only."""
    berlin = Profile(
        customer_id="c1",
        timezone="Europe/Berlin",
        email="a@example.com",
        consent={"sms": False},
        unsubscribed=["email"],
        preferred_channel="sms",
    )

    def to(channel: str, topic: str = "marketing", **more: Any) -> Verdict:
        return decide(snap(berlin), request(channel=channel, topic=topic, **more), Rules(), NOON)

    assert to("sms").reason == "no_consent"
    assert to("sms", "transactional").reason == "no_consent"
    assert to("email").reason == "unsubscribed"
    assert to("email", "transactional") == Verdict("grant", "email")
    assert to("push").reason == "no_address"
    assert to("best_channel", fallbacks=["email", "in_app"]) == Verdict("grant", "in_app")
    assert to("best_channel", fallbacks=["push"]) == Verdict("suppress", reason="no_consent")
    in_app_nights = QuietHours(start=time(21), end=time(8), channels=["in_app"])
    night = datetime(2026, 11, 24, 22, tzinfo=UTC)  # 23:00 in Berlin
    held = decide(
        snap(berlin), request(channel="in_app", quiet_hours=in_app_nights), Rules(), night
    )
    assert held == Verdict("defer", "in_app", "quiet_hours", datetime(2026, 11, 25, 7, tzinfo=UTC))


def test_the_best_channel_is_the_first_reachable_one() -> None:
    no_email = Profile(customer_id="c1", phone="+15550100")
    best = request(channel="best_channel", fallbacks=["email", "sms"])
    assert decide(snap(no_email), best, Rules(), NOON) == Verdict("grant", "sms")
    assert decide(snap(ALICE), best, Rules(), NOON) == Verdict("grant", "email")


def test_a_dry_run_names_its_channel_and_sends_nothing() -> None:
    assert decide(snap(), request(dry_run=True), Rules(), NIGHT) == Verdict(
        "suppress", "email", "dry_run"
    )


def test_best_time_defers_before_a_transactional_send_goes() -> None:
    hours = [0] * 24
    hours[15] = 10
    active = ALICE.model_copy(update={"active_hours": hours})
    verdict = decide(
        snap(active),
        request(best_time_within=timedelta(hours=6), topic="transactional"),
        Rules(),
        NOON,
    )
    assert (verdict.kind, verdict.reason, verdict.until) == (
        "defer",
        "best_time",
        NOON.replace(hour=15),
    )


def test_a_transactional_send_ignores_quiet_hours_and_caps() -> None:
    full = [slot(NIGHT - timedelta(hours=h), key=f"o{h}") for h in (1, 2)]
    verdict = decide(
        snap(slots=full), request(topic="transactional"), Rules([WEEKLY], QUIET), NIGHT
    )
    assert verdict == Verdict("grant", "email")


def test_quiet_hours_defer_to_the_morning_in_the_customers_zone() -> None:
    jakarta = ALICE.model_copy(update={"timezone": "Asia/Jakarta"})  # 23:00 UTC = 06:00 there
    verdict = decide(snap(jakarta), request(), Rules(quiet_hours=QUIET), NIGHT)
    assert (verdict.kind, verdict.reason) == ("defer", "quiet_hours")
    assert verdict.until == datetime(2026, 11, 3, 1, tzinfo=UTC)  # 08:00 in Jakarta


def test_quiet_hours_come_before_caps() -> None:
    full = [slot(NIGHT - timedelta(hours=h), key=f"o{h}") for h in (1, 2)]
    verdict = decide(snap(slots=full), request(), Rules([WEEKLY], QUIET), NIGHT)
    assert verdict.reason == "quiet_hours"


def test_a_full_cap_suppresses_or_defers_to_when_a_slot_frees() -> None:
    full = [slot(NOON - timedelta(days=d), key=f"o{d}") for d in (1, 2)]
    assert decide(snap(slots=full), request(), Rules([WEEKLY]), NOON) == Verdict(
        "suppress", "email", "capped"
    )
    deferred = decide(snap(slots=full), request(when_capped="defer"), Rules([WEEKLY]), NOON)
    assert deferred == Verdict("defer", "email", "capped", NOON + timedelta(days=5))


def test_a_deferral_past_the_deadline_is_suppressed() -> None:
    verdict = decide(
        snap(), request(deadline=NIGHT + timedelta(hours=1)), Rules(quiet_hours=QUIET), NIGHT
    )
    assert verdict == Verdict("suppress", "email", "quiet_hours")


def test_a_journeys_own_cap_counts_only_its_own_sends() -> None:
    own = FrequencyCap(limit=1, window=timedelta(days=1))
    others = [slot(NOON - timedelta(hours=1), journey="j2")]
    assert decide(snap(slots=others), request(journey_caps=[own]), Rules(), NOON).kind == "grant"
    mine = [slot(NOON - timedelta(hours=1), journey="j1")]
    assert decide(snap(slots=mine), request(journey_caps=[own]), Rules(), NOON).reason == "capped"


def test_a_send_that_can_be_outranked_contends_unless_at_the_top_priority() -> None:
    rules = Rules([WEEKLY], arbitration=timedelta(seconds=1), top_priority=5)
    assert decide(snap(), request(priority=1), rules, NOON).kind == "contend"
    assert decide(snap(), request(priority=5), rules, NOON).kind == "grant"
    alone = request().event.model_copy(update={"contested": False})  # reached no rival
    assert decide(snap(), request(priority=1, event=alone), rules, NOON).kind == "grant"


# -- properties ---------------------------------------------------------------------------

hours = st.integers(min_value=0, max_value=21 * 24)
caps = st.builds(
    FrequencyCap,
    limit=st.integers(min_value=0, max_value=4),
    window=st.integers(min_value=1, max_value=10 * 24).map(lambda h: timedelta(hours=h)),
    channel=st.sampled_from([None, "email", "sms"]),
)
channels = st.sampled_from(["email", "sms", "push", "in_app"])
consents = st.dictionaries(channels, st.booleans(), max_size=4)
profiles = st.builds(
    Profile,
    customer_id=st.just("c1"),
    email=st.sampled_from([None, "a@example.com"]),
    phone=st.sampled_from([None, "+15550100"]),
    consent=consents,
    unsubscribed=st.lists(st.sampled_from(["email", "sms", "all"]), max_size=2),
    timezone=st.sampled_from(["UTC", "Asia/Jakarta", "America/New_York"]),
)


@st.composite
def requests(draw: st.DrawFn) -> Any:
    return request(
        channel=draw(st.sampled_from(["email", "sms", "push", "in_app", "best_channel"])),
        fallbacks=draw(st.lists(channels, max_size=2, unique=True)),
        topic=draw(st.sampled_from(["marketing", "transactional"])),
        priority=draw(st.integers(min_value=0, max_value=3)),
        when_capped=draw(st.sampled_from(["suppress", "defer"])),
        journey_caps=draw(st.lists(caps, max_size=1)),
        dry_run=draw(st.booleans()),
    )


@given(
    rule_caps=st.lists(caps, max_size=3),
    journey_caps=st.lists(caps, max_size=1),
    wanted=st.lists(st.tuples(hours, requests()), min_size=1, max_size=25),
    quiet=st.sampled_from([None, QUIET]),
)
@settings(max_examples=200, deadline=None)
def test_sends_granted_one_after_another_never_exceed_any_cap(
    rule_caps: list[FrequencyCap],
    journey_caps: list[FrequencyCap],
    wanted: list[tuple[int, Any]],
    quiet: QuietHours | None,
) -> None:
    """Replaying random requests through `decide`, the granted marketing sends stay within
    every cap that applies to them, in every window. (The requests are one journey's, so
    they carry its caps: the journey's own.)"""
    rules = Rules(rule_caps, quiet)
    granted: list[tuple[datetime, Slot, Any]] = []
    for i, (hour, req) in enumerate(sorted(wanted, key=lambda w: w[0])):
        at = NOON + timedelta(hours=hour)
        req = req.model_copy(update={"idempotency_key": f"k{i}", "journey_caps": journey_caps})
        slots = [s for _, s, r in granted if r.topic == "marketing"]
        verdict = decide(snap(ALICE, slots), req, rules, at)
        if verdict.kind == "grant":
            assert verdict.channel is not None
            mine = Slot(at, verdict.channel, req.journey_id, req.priority, at, req.idempotency_key)
            granted.append((at, mine, req))
    marketing = [(at, s, r) for at, s, r in granted if r.topic == "marketing"]
    for at, mine, req in marketing:  # each cap on the channel it went out on
        for scoped in caps_for(req, rules, mine.channel):
            sent = [s.at for _, s, _ in marketing if scoped.counts(s) and s.at <= at]
            assert counted(scoped.cap, at, sent) <= scoped.cap.limit


@given(profile=profiles, req=requests(), hour=hours, slots_at=st.lists(hours, max_size=6))
@settings(max_examples=300, deadline=None)
def test_consent_always_wins_and_transactional_is_never_capped(
    profile: Profile, req: Any, hour: int, slots_at: list[int]
) -> None:
    at = NOON + timedelta(hours=hour)
    slots = [slot(NOON + timedelta(hours=h), key=f"o{i}") for i, h in enumerate(slots_at)]
    verdict = decide(snap(profile, slots), req, Rules([WEEKLY], QUIET), at)
    candidates = [req.channel, *req.fallbacks]
    if verdict.channel is not None:  # a chosen channel always has consent and an address
        assert profile.refusal(verdict.channel, req.topic) is None
        assert profile.address(verdict.channel)
        assert verdict.channel in candidates or req.channel == "best_channel"
    else:
        assert verdict.kind == "suppress"
    if req.topic == "transactional":
        assert verdict.reason not in ("capped", "quiet_hours")


@given(
    priorities=st.lists(st.integers(min_value=0, max_value=3), min_size=2, max_size=6),
    room=st.integers(min_value=1, max_value=3),
)
@settings(max_examples=200, deadline=None)
def test_arbitration_grants_the_highest_priorities_first(priorities: list[int], room: int) -> None:
    """Contenders for `room` free slots: exactly the `room` best ranked are granted, whatever
    order they are decided in."""
    cap = FrequencyCap(limit=room, window=timedelta(days=7))
    contenders = [
        Slot(NOON, "email", f"j{i}", p, NOON + timedelta(seconds=i), f"k{i}")
        for i, p in enumerate(priorities)
    ]
    best = sorted(contenders, key=Slot.rank)[:room]
    for mine in reversed(contenders):
        others = [c for c in contenders if c is not mine]
        req = request(idempotency_key=mine.key, journey_id=mine.journey_id, priority=mine.priority)
        verdict = arbitrate(req, Rules([cap]), NOON, mine, [], others)
        assert (verdict.kind == "grant") == (mine in best)
