"""The statistics behind a verdict: an effect with its confidence interval, and the rule that
turns the interval into an outcome.

Every interval comes from a maintained library: Wilson score intervals for one rate and
Newcombe's hybrid score interval for the difference of two independent rates (statsmodels),
McNemar's exact test for two rates on the same images (statsmodels), and a seeded bootstrap
over images for paired differences of rates and of losses (scipy.stats). Nothing here knows
about papers or files; :mod:`stages.claims.evidence` feeds it numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

# Bootstrap resamples and the seed that makes every interval byte-stable between runs.
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    INCONCLUSIVE = "inconclusive"
    DEGENERATE = "degenerate"
    NOT_TESTED = "not tested"


class Method(StrEnum):
    """How an effect's interval was computed; the report prints it beside the number."""

    WILSON = "Wilson score interval (one rate)"
    NEWCOMBE = "Newcombe hybrid score interval, unpaired (from summary counts)"
    PAIRED_BOOTSTRAP_RATE = "paired bootstrap over images"
    PAIRED_BOOTSTRAP_MEAN = "paired bootstrap over images (mean difference)"
    NONE = "no interval (summary numbers only)"


@dataclass(frozen=True)
class Estimate:
    """An effect (a rate, or a difference a - b) with its two-sided interval at ``1 - alpha``."""

    value: float
    low: float
    high: float
    n: int  # images behind the estimate (for two unpaired samples: the smaller one)
    method: Method
    paired: bool
    p_value: float | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.value <= self.high and not np.isnan(self.value):
            # A percentile bootstrap of a skewed statistic can leave the point estimate at the
            # edge; it never leaves it outside. Anything else is a bug upstream.
            raise ValueError(f"estimate {self.value} outside its interval [{self.low}, {self.high}]")

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (e.g. x100 for percentage points)."""
        low, high = sorted((self.low * factor, self.high * factor))
        return Estimate(self.value * factor, low, high, self.n, self.method, self.paired, self.p_value)

    def negated(self) -> Estimate:
        return Estimate(-self.value, -self.high, -self.low, self.n, self.method, self.paired, self.p_value)


def _check_counts(k: int, n: int) -> None:
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a rate needs 0 <= successes <= n and n > 0; got {k} of {n}")


def wilson(k: int, n: int, alpha: float) -> Estimate:
    """The rate k/n with its Wilson score interval."""
    _check_counts(k, n)
    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    value = k / n
    return Estimate(value, min(float(low), value), max(float(high), value), n, Method.WILSON, False)


def rate_difference_unpaired(k_a: int, n_a: int, k_b: int, n_b: int, alpha: float) -> Estimate:
    """k_a/n_a - k_b/n_b for two independent samples: Newcombe's interval. Used when the
    evaluations keep only their summary counts, so the pairing of images is unknown."""
    _check_counts(k_a, n_a)
    _check_counts(k_b, n_b)
    low, high = confint_proportions_2indep(k_a, n_a, k_b, n_b, method="newcomb", compare="diff", alpha=alpha)
    value = k_a / n_a - k_b / n_b
    return Estimate(
        value, min(float(low), value), max(float(high), value), min(n_a, n_b), Method.NEWCOMBE, False
    )


def _bootstrap_mean(differences: np.ndarray, alpha: float) -> tuple[float, float]:
    if np.all(differences == differences[0]):
        # Every image gives the same difference: no resample can differ (scipy would warn of
        # degenerate data and return nan).
        return float(differences[0]), float(differences[0])
    result = stats.bootstrap(
        (differences,),
        np.mean,
        confidence_level=1 - alpha,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _paired_arrays(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired samples need two equal, non-empty 1-D arrays; got {a.shape} and {b.shape}")
    return a, b


def rate_difference_paired(a: np.ndarray, b: np.ndarray, alpha: float) -> Estimate:
    """mean(a) - mean(b) for 0/1 outcomes of the same images: the interval from a paired
    bootstrap over images, the p-value from McNemar's exact test on the discordant pairs."""
    a, b = _paired_arrays(a, b)
    low, high = _bootstrap_mean(a - b, alpha)
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    both = int(np.sum((a == 1) & (b == 1)))
    neither = int(np.sum((a == 0) & (b == 0)))
    p_value = float(mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue)
    value = float(a.mean() - b.mean())
    return Estimate(
        value, min(low, value), max(high, value), len(a), Method.PAIRED_BOOTSTRAP_RATE, True, p_value
    )


def mean_difference_paired(a: np.ndarray, b: np.ndarray, alpha: float) -> Estimate:
    """mean(a) - mean(b) of per-image values (losses) of the same images: paired bootstrap."""
    a, b = _paired_arrays(a, b)
    low, high = _bootstrap_mean(a - b, alpha)
    value = float(a.mean() - b.mean())
    return Estimate(value, min(low, value), max(high, value), len(a), Method.PAIRED_BOOTSTRAP_MEAN, True)


def relative_reduction_paired(base: np.ndarray, new: np.ndarray, alpha: float) -> Estimate:
    """100 x (mean(base) - mean(new)) / mean(base), in %, for per-image values of the same
    images (the LAT paper's "x % less loss"): a paired percentile bootstrap over images."""
    base, new = _paired_arrays(base, new)
    if base.mean() <= 0:
        raise ValueError("a relative reduction needs a positive base mean")

    def statistic(b: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
        mb = b.mean(axis=axis)
        return 100.0 * (mb - n.mean(axis=axis)) / np.where(mb > 0, mb, np.nan)

    value = float(statistic(base, new))
    if np.all(base - new == (base - new)[0]) and np.all(base == base[0]):
        low = high = value
    else:
        result = stats.bootstrap(
            (base, new),
            statistic,
            paired=True,
            confidence_level=1 - alpha,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            vectorized=True,
            random_state=np.random.default_rng(BOOTSTRAP_SEED),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Estimate(value, min(low, value), max(high, value), len(base), Method.PAIRED_BOOTSTRAP_MEAN, True)


def mean_paired(values: np.ndarray, alpha: float) -> Estimate:
    """The mean of per-image values (e.g. a per-image contrast of several rates) with a
    bootstrap interval over images."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"a mean needs a non-empty 1-D array; got shape {values.shape}")
    low, high = _bootstrap_mean(values, alpha)
    value = float(values.mean())
    return Estimate(value, min(low, value), max(high, value), len(values), Method.PAIRED_BOOTSTRAP_MEAN, True)


# --- from an interval to an outcome -----------------------------------------------------------


def directional(effect: Estimate, *, threshold: float = 0.0) -> Outcome:
    """A claim that the effect exceeds ``threshold`` (0: a plain direction): holds when the whole
    interval is above it, does not hold when the whole interval is below it, else inconclusive."""
    if effect.low > threshold:
        return Outcome.HOLDS
    if effect.high < threshold:
        return Outcome.FAILS
    return Outcome.INCONCLUSIVE


def equivalent(effect: Estimate, *, margin: float) -> Outcome:
    """A claim that two quantities are comparable: holds when the interval lies within
    ±``margin``, does not hold when it lies wholly outside, else inconclusive (the two
    one-sided tests' reading of an equivalence claim)."""
    if -margin <= effect.low and effect.high <= margin:
        return Outcome.HOLDS
    if effect.low > margin or effect.high < -margin:
        return Outcome.FAILS
    return Outcome.INCONCLUSIVE


def non_inferior(effect: Estimate, *, margin: float) -> Outcome:
    """A claim that a - b costs nothing (is not below -``margin``): holds when the interval is
    above -margin, does not hold when it is wholly below, else inconclusive."""
    return directional(effect, threshold=-margin)


def combine(outcomes: list[Outcome]) -> Outcome:
    """A claim made of parts: degenerate if a tested part is, does not hold if a part does not,
    holds when every tested part holds, not tested when no part was, else inconclusive."""
    # A part we could not test neither confirms nor refutes the rest; the record's reason names it.
    outcomes = [o for o in outcomes if o != Outcome.NOT_TESTED]
    if not outcomes:
        return Outcome.NOT_TESTED
    if Outcome.DEGENERATE in outcomes:
        return Outcome.DEGENERATE
    if Outcome.FAILS in outcomes:
        return Outcome.FAILS
    if all(o == Outcome.HOLDS for o in outcomes):
        return Outcome.HOLDS
    return Outcome.INCONCLUSIVE


def includes(effect: Estimate, value: float | None) -> bool | None:
    """Whether a paper's effect lies inside our interval (None when the paper gives none)."""
    if value is None:
        return None
    return effect.low <= value <= effect.high
