"""Experiment statistics: what a split's arms (or a holdout's groups) show, valid whenever
they are read. Pure functions over counts, no I/O, so they are tested by simulation.

- Each arm's difference from the control arm with a fixed-horizon 95% interval (Newcombe's
  hybrid score interval, built on Wilson's; Newcombe 1998, method 10), and its relative
  lift (a log risk-ratio interval).
- An always-valid p-value and confidence sequence: the mixture sequential probability
  ratio test (mSPRT) with a normal mixture on the difference (Johari, Koomen, Pekelis and
  Walsh, "Peeking at A/B Tests", KDD 2017; Robbins 1970). Reading it every hour does not
  raise the false-positive rate above 5%, where a fixed-horizon test read as often does.
- The Bayesian probability that each arm is best (Beta(1, 1) priors, Monte Carlo with a seed
  from the counts, so one set of counts always gives one answer).
- A sample-ratio mismatch: Pearson's chi-squared against the promised weights, p < 0.001.

The bandit's weights (`thompson_weights`) are Thompson sampling's allocation: each arm's
probability to be best, with an exploration floor and a minimum sample before they move.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import stats

from journeys.schemas.base import Schema

Z95 = float(stats.norm.ppf(0.975))
ALPHA = 0.05
SRM_P = 0.001
"""A sample-ratio mismatch below this p-value means the experiment is broken (the usual bar:
with it, a healthy experiment is flagged once in a thousand reads)."""
DRAWS = 20_000
"""Posterior draws for the probability to be best (its error is below 0.5 points)."""


class ArmCounts(Schema):
    """One arm's exposures and conversions, and the share it was promised."""

    name: str
    """The arm (or `control` / `treated` for a holdout)."""
    weight: float = Field(gt=0)
    """Its promised share, relative to the other arms."""
    exposures: int = Field(ge=0)
    """Customers who took the arm."""
    conversions: int = Field(ge=0)
    """Of those, how many reached the goal."""


class Interval(Schema):
    """A 95% interval, in the same units as its estimate."""

    low: float
    """Its lower end."""
    high: float
    """Its upper end."""


class ArmResult(Schema):
    """One arm against the control arm."""

    name: str
    """The arm."""
    exposures: int
    """Customers who took the arm."""
    conversions: int
    """Of those, how many reached the goal."""
    rate: float | None
    """conversions / exposures."""
    share: float | None
    """Its share of all exposures (the promised one is `weight`)."""
    weight: float
    """Its promised share (0..1)."""
    control: bool
    """True for the arm the others are compared with."""
    difference: float | None = None
    """rate - the control's rate (absolute, 0.021 is 2.1 points)."""
    interval: Interval | None = None
    """95% interval of the difference, valid when read once at a planned size."""
    lift: float | None = None
    """difference / the control's rate."""
    lift_interval: Interval | None = None
    """95% interval of the lift."""
    always_valid_p: float | None = None
    """mSPRT p-value for "no difference": valid however often it is read."""
    always_valid_interval: Interval | None = None
    """The mSPRT's 95% confidence sequence for the difference."""
    probability_best: float | None = None
    """Posterior probability that this arm has the highest rate."""


class Verdict(Schema):
    """What the numbers say, per experiment."""

    arms: list[ArmResult]
    """Every arm, the control first."""
    sample_ratio_p: float | None
    """Chi-squared p-value of the exposures against the promised weights."""
    sample_ratio_mismatch: bool
    """True when the arms did not get their promised shares (p < 0.001): do not trust it."""
    words: str
    """The verdict in words."""


class WeightsRequest(Schema):
    """A bandit split's current weights, for one enrollment about to take it."""

    journey_id: str
    version: int
    split_id: str
    paths: list[tuple[str, float]]
    """Each arm's name and written weight, in order."""
    exploration: float
    min_sample: int
    windowed: bool = False
    """Count conversions within the split's attribution window only."""


class SplitWeights(Schema):
    """The weights an enrollment took its arm by: the activity's result, so its history
    holds them and a replay takes the same arm."""

    weights: list[float]
    """Per arm, in the split's order; they add up to 1."""
    basis: str
    """`prior` (too few exposures yet), `thompson`, `frozen` or `winner` (an operator's)."""
    computed_at: datetime
    """When the counts they come from were read."""


class Decision(Schema):
    """An operator's word on a bandit split: hold its weights, or send everyone one way."""

    action: Literal["freeze", "winner", "release"]
    """`freeze` the current weights, declare a `winner` (every later entrant takes it),
    or `release` back to the bandit."""
    arm: str | None = Field(default=None, max_length=80)
    """The winner, for `winner`."""
    reason: str = Field(default="operator", max_length=200)
    """Why, for the audit log."""


class Experiment(Verdict):
    """One experiment of a journey version: a split (fixed or bandit) or the holdout."""

    id: str
    """The split (or send) step's id, or `holdout`."""
    kind: Literal["split", "bandit", "holdout", "content"]
    """What assigns the arms: a split, a bandit split, the holdout, or a send step's
    content variants."""
    metric: Literal["goal", "opened", "clicked"] = "goal"
    """What counts as a conversion: the journey's goal, or (for content) the message's
    opens or clicks by people, over the messages sent."""
    decision: str | None = None
    """An operator's word on a bandit: `frozen`, or `winner: <arm>`."""


def wilson(conversions: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of one proportion."""
    if n == 0:
        return 0.0, 1.0
    p = conversions / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(c1: int, n1: int, c0: int, n0: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval of p1 - p0 (good coverage at small counts and
    near 0 or 1, where Wald's is not)."""
    p1, p0 = c1 / n1, c0 / n0
    l1, u1 = wilson(c1, n1, z)
    l0, u0 = wilson(c0, n0, z)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Interval(low=low, high=high)


def _variance(c1: int, n1: int, c0: int, n0: int) -> float:
    """The difference's variance, each rate shrunk half a conversion from 0 and 1 so that
    an arm with none yet does not claim certainty."""
    p1, p0 = (c1 + 0.5) / (n1 + 1), (c0 + 0.5) / (n0 + 1)
    return p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0


def msprt(c1: int, n1: int, c0: int, n0: int, tau: float) -> tuple[float, Interval]:
    """The mSPRT's always-valid p-value and 95% confidence sequence for p1 - p0, with a
    N(0, tau^2) mixture over the difference. `tau` is the size of effect it is most
    sensitive to; any tau keeps the test valid."""
    d = c1 / n1 - c0 / n0
    v = _variance(c1, n1, c0, n0)
    t2 = tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + d * d * t2 / (2 * v * (v + t2))
    p = min(1.0, math.exp(-log_lr))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / ALPHA) + math.log((v + t2) / v)))
    return p, Interval(low=d - half, high=d + half)


def default_tau(c0: int, n0: int) -> float:
    """The mixture's scale: a tenth of the control's rate (a 10% relative lift), at least
    half a point, so the test is most sensitive to the effects marketers look for."""
    base = (c0 + 1) / (n0 + 2)
    return max(0.005, 0.1 * base)


def probability_best(arms: Sequence[ArmCounts], draws: int = DRAWS) -> list[float]:
    """P(arm has the highest rate) under Beta(1 + conversions, 1 + misses) posteriors.
    Seeded from the counts: the same counts always give the same numbers."""
    seed = zlib.crc32(repr([(a.exposures, a.conversions) for a in arms]).encode())
    rng = np.random.default_rng(seed)
    samples = np.stack(
        [rng.beta(1 + a.conversions, 1 + a.exposures - a.conversions, size=draws) for a in arms]
    )
    wins = np.bincount(np.argmax(samples, axis=0), minlength=len(arms))
    return [float(w) / draws for w in wins]


def sample_ratio(arms: Sequence[ArmCounts]) -> float | None:
    """Chi-squared p-value of the exposures against the promised weights."""
    total = sum(a.exposures for a in arms)
    if total == 0 or len(arms) < 2:
        return None
    weights = sum(a.weight for a in arms)
    expected = [total * a.weight / weights for a in arms]
    return float(stats.chisquare([a.exposures for a in arms], expected).pvalue)


def compare(
    arms: Sequence[ArmCounts], control: str | None = None, *, check_ratio: bool = True
) -> Verdict:
    """Every arm against `control` (default: the first arm). `check_ratio`: False for a
    bandit, whose shares move on purpose."""
    if not arms:
        return Verdict(arms=[], sample_ratio_p=None, sample_ratio_mismatch=False, words="")
    base = next((a for a in arms if a.name == control), arms[0])
    ordered = [base, *(a for a in arms if a is not base)]
    total = sum(a.exposures for a in arms)
    weights = sum(a.weight for a in arms)
    best = probability_best(ordered) if total else [None] * len(ordered)
    results = []
    for arm, p_best in zip(ordered, best, strict=True):
        result = ArmResult(
            name=arm.name,
            exposures=arm.exposures,
            conversions=arm.conversions,
            rate=arm.conversions / arm.exposures if arm.exposures else None,
            share=arm.exposures / total if total else None,
            weight=arm.weight / weights,
            control=arm is base,
            probability_best=p_best,
        )
        if arm is not base and arm.exposures and base.exposures:
            _against(result, arm, base)
        results.append(result)
    p_ratio = sample_ratio(ordered) if check_ratio else None
    mismatch = p_ratio is not None and p_ratio < SRM_P
    return Verdict(
        arms=results,
        sample_ratio_p=p_ratio,
        sample_ratio_mismatch=mismatch,
        words=words(results, mismatch),
    )


def _against(result: ArmResult, arm: ArmCounts, base: ArmCounts) -> None:
    c1, n1, c0, n0 = arm.conversions, arm.exposures, base.conversions, base.exposures
    result.difference = c1 / n1 - c0 / n0
    result.interval = newcombe(c1, n1, c0, n0)
    if c0 and c1:
        p1, p0 = c1 / n1, c0 / n0
        result.lift = p1 / p0 - 1
        se = math.sqrt((1 - p1) / c1 + (1 - p0) / c0)
        log_rr = math.log(p1 / p0)
        result.lift_interval = Interval(
            low=math.exp(log_rr - Z95 * se) - 1, high=math.exp(log_rr + Z95 * se) - 1
        )
    result.always_valid_p, result.always_valid_interval = msprt(c1, n1, c0, n0, default_tau(c0, n0))


def _points(x: float) -> str:
    return f"{abs(x) * 100:.1f}"


def words(results: Sequence[ArmResult], mismatch: bool) -> str:
    """The verdict in a sentence per arm, as the funnel page and the CLI show it."""
    if mismatch:
        return (
            "Sample-ratio mismatch: the arms did not get the shares they were promised, so "
            "the comparison cannot be trusted. Check how customers reach the split."
        )
    if not results or not results[0].exposures:
        return "No exposures yet."
    control = results[0].name
    said = []
    for r in results[1:]:
        if r.difference is None or r.interval is None or r.always_valid_p is None:
            said.append(f"{r.name}: no exposures yet.")
            continue
        way = "better" if r.difference >= 0 else "worse"
        interval = f"95% interval {r.interval.low * 100:.1f} to {r.interval.high * 100:.1f}"
        if r.always_valid_p < ALPHA:
            stop = "valid to stop now"
        else:
            stop = "not yet significant; keep it running"
        said.append(
            f"{r.name} converts {_points(r.difference)} points {way} than {control} "
            f"({interval}); {stop}."
        )
    return " ".join(said)


def thompson_weights(arms: Sequence[ArmCounts], *, floor: float, min_sample: int) -> list[float]:
    """Thompson sampling's allocation: each arm's probability to be best, every arm kept
    at least `floor`. Until each arm has `min_sample` exposures, the promised weights."""
    weights = sum(a.weight for a in arms)
    if any(a.exposures < min_sample for a in arms):
        return [a.weight / weights for a in arms]
    best = probability_best(arms)
    floor = min(floor, 1 / len(arms))
    return [floor + (1 - floor * len(arms)) * p for p in best]


def bandit_weights(
    paths: Sequence[tuple[str, float]],
    counts: Sequence[tuple[int, int]],
    *,
    floor: float,
    min_sample: int,
) -> tuple[list[float], bool]:
    """A bandit split's weights from its arms' (name, written weight) and (exposures,
    conversions); and whether every arm has its minimum sample (else the written ones)."""
    arms = [
        ArmCounts(name=name, weight=weight, exposures=n, conversions=c)
        for (name, weight), (n, c) in zip(paths, counts, strict=True)
    ]
    ready = all(a.exposures >= min_sample for a in arms)
    return thompson_weights(arms, floor=floor, min_sample=min_sample), ready
