"""Issue 31: the experiment statistics, checked by simulation against known true rates
(thousands of experiments, no Temporal): intervals cover the truth 95% of the time, the
sequential test survives peeking where a fixed-horizon one does not, and Thompson sampling
loses less than a uniform split."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from journeys.schemas.experiments import (
    ALPHA,
    Z95,
    ArmCounts,
    compare,
    default_tau,
    msprt,
    newcombe,
    probability_best,
    thompson_weights,
)

RNG_SEED = 31


def test_the_interval_covers_the_true_difference_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(RNG_SEED)
    runs, n, p0, p1 = 2000, 3000, 0.10, 0.12
    c0s, c1s = rng.binomial(n, p0, runs), rng.binomial(n, p1, runs)
    covered = 0
    for c0, c1 in zip(c0s, c1s, strict=True):
        interval = newcombe(int(c1), n, int(c0), n)
        covered += interval.low <= p1 - p0 <= interval.high
    assert 0.93 <= covered / runs <= 0.97, covered / runs


def test_the_interval_holds_at_low_rates_too() -> None:
    """Push opens of 1%, a few hundred customers an arm: where Wald's interval fails."""
    rng = np.random.default_rng(RNG_SEED + 1)
    runs, n, p = 2000, 400, 0.01
    c0s, c1s = rng.binomial(n, p, runs), rng.binomial(n, p, runs)
    covered = sum(
        newcombe(int(c1), n, int(c0), n).low <= 0 <= newcombe(int(c1), n, int(c0), n).high
        for c0, c1 in zip(c0s, c1s, strict=True)
    )
    assert covered / runs >= 0.93


def _peeking(runs: int, n: int, every: int, p: float) -> tuple[float, float]:
    """A/A experiments read every `every` customers an arm: the share that some read
    called significant, for the mSPRT and for a naive z-test."""
    rng = np.random.default_rng(RNG_SEED + 2)
    looks = range(every, n + 1, every)
    naive = sequential = 0
    for _ in range(runs):
        a = np.cumsum(rng.random(n) < p)
        b = np.cumsum(rng.random(n) < p)
        z_hit = av_hit = False
        for m in looks:
            c1, c0 = int(a[m - 1]), int(b[m - 1])
            pooled = (c1 + c0) / (2 * m)
            se = math.sqrt(2 * pooled * (1 - pooled) / m) if 0 < pooled < 1 else 0
            if se and abs(c1 - c0) / m / se > Z95:
                z_hit = True
            if msprt(c1, m, c0, m, default_tau(c0, m))[0] < ALPHA:
                av_hit = True
            if z_hit and av_hit:
                break
        naive += z_hit
        sequential += av_hit
    return sequential / runs, naive / runs


def test_peeking_every_hundred_customers_keeps_the_sequential_test_at_5_percent() -> None:
    sequential, naive = _peeking(runs=2000, n=3000, every=100, p=0.1)
    assert sequential <= 0.05, sequential
    assert naive > 0.05, naive  # the fixed-horizon test, read as often, is fooled


def test_the_sequential_test_still_finds_a_real_difference() -> None:
    rng = np.random.default_rng(RNG_SEED + 3)
    found = 0
    for _ in range(200):
        c0, c1 = int(rng.binomial(20000, 0.10)), int(rng.binomial(20000, 0.12))
        found += msprt(c1, 20000, c0, 20000, default_tau(c0, 20000))[0] < ALPHA
    assert found / 200 > 0.9


def _regret(bandit: bool, rates: list[float], batches: int, size: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    exposures, conversions = [0] * len(rates), [0] * len(rates)
    regret = 0.0
    for _ in range(batches):
        arms = [
            ArmCounts(name=f"a{i}", weight=1, exposures=n, conversions=c)
            for i, (n, c) in enumerate(zip(exposures, conversions, strict=True))
        ]
        weights = (
            thompson_weights(arms, floor=0.05, min_sample=50)
            if bandit
            else [1 / len(rates)] * len(rates)
        )
        taken = rng.choice(len(rates), size=size, p=np.array(weights) / sum(weights))
        for i in taken:
            exposures[i] += 1
            conversions[i] += int(rng.random() < rates[i])
            regret += max(rates) - rates[i]
    return regret


def test_thompson_sampling_loses_less_than_a_uniform_split() -> None:
    rates = [0.05, 0.05, 0.15]
    seeds = range(10)
    bandit = sum(_regret(True, rates, 40, 100, s) for s in seeds)
    uniform = sum(_regret(False, rates, 40, 100, s) for s in seeds)
    assert bandit < 0.6 * uniform, (bandit, uniform)


@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.floats(0, 1), st.floats(0.1, 10)),
        min_size=2,
        max_size=5,
    ),
    st.floats(0, 0.3),
    st.integers(0, 200),
)
def test_bandit_weights_are_a_distribution_with_the_floor(
    raw: list[tuple[int, float, float]], floor: float, min_sample: int
) -> None:
    arms = [
        ArmCounts(name=f"a{i}", weight=w, exposures=n, conversions=int(n * r))
        for i, (n, r, w) in enumerate(raw)
    ]
    weights = thompson_weights(arms, floor=floor, min_sample=min_sample)
    assert math.isclose(sum(weights), 1, abs_tol=1e-9)
    if all(a.exposures >= min_sample for a in arms):
        assert min(weights) >= min(floor, 1 / len(arms)) - 1e-12
    else:
        total = sum(a.weight for a in arms)
        assert weights == [a.weight / total for a in arms]


def test_the_same_counts_give_the_same_probabilities() -> None:
    arms = [
        ArmCounts(name=n, weight=1, exposures=1000, conversions=c)
        for n, c in [("a", 100), ("b", 120)]
    ]
    assert probability_best(arms) == probability_best(arms)
    low, high = probability_best(arms)
    assert high > 0.9 and math.isclose(low + high, 1)


def test_a_sample_ratio_mismatch_is_flagged_and_said() -> None:
    even = [ArmCounts(name="a", weight=1, exposures=5000, conversions=500),
            ArmCounts(name="b", weight=1, exposures=5080, conversions=560)]  # fmt: skip
    skewed = [even[0], even[1].model_copy(update={"exposures": 5600})]
    assert not compare(even).sample_ratio_mismatch
    verdict = compare(skewed)
    assert verdict.sample_ratio_mismatch and verdict.sample_ratio_p is not None
    assert verdict.sample_ratio_p < 0.001 and "mismatch" in verdict.words
    assert compare(skewed, check_ratio=False).sample_ratio_mismatch is False


def test_the_verdict_says_the_difference_in_points_and_whether_to_stop() -> None:
    arms = [ArmCounts(name="a", weight=1, exposures=20000, conversions=2000),
            ArmCounts(name="b", weight=1, exposures=20000, conversions=2420)]  # fmt: skip
    verdict = compare(arms)
    b = verdict.arms[1]
    assert b.difference is not None and math.isclose(b.difference, 0.021)
    assert b.interval is not None and b.interval.low < 0.021 < b.interval.high
    assert b.lift is not None and math.isclose(b.lift, 0.21)
    assert b.always_valid_interval is not None
    assert b.always_valid_interval.low < b.interval.low  # valid at any time costs width
    assert verdict.words.startswith("b converts 2.1 points better than a (95% interval")
    assert "valid to stop now" in verdict.words
    close = compare([arms[0], arms[1].model_copy(update={"conversions": 2030})])
    assert "keep it running" in close.words


def test_control_is_the_named_arm_and_goes_first() -> None:
    arms = [ArmCounts(name="a", weight=1, exposures=100, conversions=10),
            ArmCounts(name="holdout", weight=1, exposures=100, conversions=5)]  # fmt: skip
    verdict = compare(arms, control="holdout")
    assert [a.name for a in verdict.arms] == ["holdout", "a"] and verdict.arms[0].control
    assert verdict.arms[1].difference is not None and math.isclose(verdict.arms[1].difference, 0.05)
