"""The statistics behind a verdict: an effect with its confidence interval, the rule that turns
the interval into an outcome, the p-value of that rule, and the images it would take to decide.

Every interval comes from a maintained library or a published method, chosen for its coverage
at the sample sizes we have (tens to hundreds of images):

- one rate: Wilson's score interval (statsmodels);
- the difference of two independent rates: Newcombe's hybrid score interval (statsmodels);
- the difference of two rates on the same images: Newcombe's paired hybrid score interval
  (Newcombe 1998, method 10; :mod:`stages.claims.paired`) with McNemar's exact p. A percentile
  bootstrap of such data collapses a side onto the estimate when one direction has no
  discordant pair (4:0 discordance gave [+0.25, +2.00] where the score interval gives a side
  above +2.00);
- a paired mean of per-image values (losses, scores, contrasts): the BCa bootstrap
  (scipy.stats.bootstrap), and Student's t interval where BCa is undefined or leaves a side on
  the estimate although the values are not all equal.

Nothing here knows about papers or files; :mod:`stages.claims.evidence` feeds it numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from stages.claims.paired import newcombe_paired_difference, paired_n_for_power

# Bootstrap resamples and the seed that makes every interval byte-stable between runs.
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
# The p-value of a rule is the smallest level at which its interval decides; we search levels
# down to this one (a smaller p is reported as "below" it).
P_FLOOR = 1e-12
# Below this many images a bootstrap interval under-covers (its resamples cannot show what the
# few images did not: e.g. 5 values, 3 positive, give a BCa lower bound above 0); there the
# interval is widened to Student's t wherever t is wider (Efron & Tibshirani 1993, §14.3).
BOOTSTRAP_MIN_IMAGES = 30


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    INCONCLUSIVE = "inconclusive"
    DEGENERATE = "degenerate"
    NOT_TESTED = "not tested"


DECIDED = (Outcome.HOLDS, Outcome.FAILS)


class Method(StrEnum):
    """How an effect's interval was computed; the report prints it beside the number."""

    WILSON = "Wilson score interval (one rate)"
    NEWCOMBE = "Newcombe hybrid score interval, unpaired (from summary counts)"
    PAIRED_SCORE_RATE = "Newcombe paired hybrid score interval (1998, method 10)"
    PAIRED_BCA = "BCa bootstrap over images"
    PAIRED_T = "Student t interval over images (BCa undefined or one-sided at this n)"
    PAIRED_BCA_T = "BCa bootstrap over images, widened to Student t (fewer than 30 images)"
    CONSTANT = "every image gives the same value (no spread, no interval)"
    NONE = "no interval (summary numbers only)"


@dataclass(frozen=True)
class Estimate:
    """An effect (a rate, or a difference a - b) with its two-sided interval at ``1 - alpha``.

    ``sd`` is the standard deviation of one image's contribution to the effect (per image for a
    paired mean, per pair of images for two independent rates), in the effect's units: what a
    power calculation needs. ``discordant`` counts (a only, b only) for paired 0/1 outcomes.
    ``at`` recomputes the same estimate at another level (a rule's p-value inverts it)."""

    value: float
    low: float
    high: float
    n: int  # images behind the estimate (for two unpaired samples: the smaller one)
    method: Method
    paired: bool
    p_value: float | None = None  # McNemar's exact p for paired rates
    sd: float | None = None
    discordant: tuple[int, int] | None = None
    at: Callable[[float], Estimate] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.low <= self.value <= self.high and not np.isnan(self.value):
            raise ValueError(f"estimate {self.value} outside its interval [{self.low}, {self.high}]")

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (e.g. x100 for percentage points)."""
        low, high = sorted((self.low * factor, self.high * factor))
        at = self.at
        return replace(
            self,
            value=self.value * factor,
            low=low,
            high=high,
            sd=None if self.sd is None else abs(factor) * self.sd,
            discordant=self.discordant if factor > 0 else _swap(self.discordant),
            at=None if at is None else (lambda alpha: at(alpha).scaled(factor)),
        )

    def negated(self) -> Estimate:
        return self.scaled(-1.0)


def _swap(pair: tuple[int, int] | None) -> tuple[int, int] | None:
    return None if pair is None else (pair[1], pair[0])


def _check_counts(k: int, n: int) -> None:
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a rate needs 0 <= successes <= n and n > 0; got {k} of {n}")


def _clamped(value: float, low: float, high: float) -> tuple[float, float]:
    # Rounding in a library can leave the estimate a few ulps outside its own interval.
    return min(float(low), value), max(float(high), value)


def wilson(k: int, n: int, alpha: float) -> Estimate:
    """The rate k/n with its Wilson score interval."""
    _check_counts(k, n)
    value = k / n
    low, high = _clamped(value, *proportion_confint(k, n, alpha=alpha, method="wilson"))
    sd = math.sqrt(value * (1 - value))
    return Estimate(value, low, high, n, Method.WILSON, False, sd=sd, at=lambda a: wilson(k, n, a))


def rate_difference_unpaired(k_a: int, n_a: int, k_b: int, n_b: int, alpha: float) -> Estimate:
    """k_a/n_a - k_b/n_b for two independent samples: Newcombe's interval. Used when the
    evaluations keep only their summary counts, so the pairing of images is unknown."""
    _check_counts(k_a, n_a)
    _check_counts(k_b, n_b)
    value = k_a / n_a - k_b / n_b
    interval = confint_proportions_2indep(k_a, n_a, k_b, n_b, method="newcomb", compare="diff", alpha=alpha)
    low, high = _clamped(value, *interval)
    p_a, p_b = k_a / n_a, k_b / n_b
    sd = math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return Estimate(
        value,
        low,
        high,
        min(n_a, n_b),
        Method.NEWCOMBE,
        False,
        sd=sd,
        at=lambda a: rate_difference_unpaired(k_a, n_a, k_b, n_b, a),
    )


def _paired_arrays(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired samples need two equal, non-empty 1-D arrays; got {a.shape} and {b.shape}")
    return a, b


def paired_table(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """(both, a only, b only, neither) of two 0/1 outcome vectors on the same images."""
    a, b = _paired_arrays(a, b)
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("paired rates need 0/1 outcomes")
    return (
        int(np.sum((a == 1) & (b == 1))),
        int(np.sum((a == 1) & (b == 0))),
        int(np.sum((a == 0) & (b == 1))),
        int(np.sum((a == 0) & (b == 0))),
    )


def rate_difference_paired(a: np.ndarray, b: np.ndarray, alpha: float) -> Estimate:
    """mean(a) - mean(b) for 0/1 outcomes of the same images: Newcombe's paired score interval,
    McNemar's exact p on the discordant pairs."""
    both, a_only, b_only, neither = paired_table(a, b)
    return _paired_rates(both, a_only, b_only, neither, alpha)


def _paired_rates(both: int, a_only: int, b_only: int, neither: int, alpha: float) -> Estimate:
    n = both + a_only + b_only + neither
    value = (a_only - b_only) / n
    low, high = _clamped(value, *newcombe_paired_difference(both, a_only, b_only, neither, alpha))
    p_value = float(mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue)
    # Per image the difference is +1 (a only), -1 (b only) or 0.
    sd = math.sqrt(max((a_only + b_only) / n - value**2, 0.0))
    return Estimate(
        value,
        low,
        high,
        n,
        Method.PAIRED_SCORE_RATE,
        True,
        p_value,
        sd=sd,
        discordant=(a_only, b_only),
        at=lambda level: _paired_rates(both, a_only, b_only, neither, level),
    )


def _t_interval(value: float, sd: float, n: int, alpha: float) -> tuple[float, float]:
    if n < 2 or sd == 0:
        return value, value
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return value - half, value + half


def _bootstrap_estimate(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    value: float,
    sd: float,
    alpha: float,
    previous: object | None = None,
) -> Estimate:
    """BCa over images (paired), with Student's t interval where BCa is undefined or leaves a
    side on the estimate although the images differ: a zero-width side would claim certainty
    the data do not give. ``previous`` reuses an earlier run's resamples (another level)."""
    n = len(samples[0])
    if all(np.all(s == s[0]) for s in samples):
        return Estimate(
            value, value, value, n, Method.CONSTANT, True, sd=0.0, at=lambda a: _constant(value, n)
        )
    with warnings.catch_warnings():
        # Few distinct values make BCa's acceleration undefined: scipy warns and returns nan,
        # which the t fallback below handles.
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            samples,
            statistic,
            paired=len(samples) > 1,
            confidence_level=1 - alpha,
            n_resamples=0 if previous is not None else BOOTSTRAP_RESAMPLES,
            bootstrap_result=previous,
            method="BCa",
            vectorized=True,
            random_state=np.random.default_rng(BOOTSTRAP_SEED),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    method = Method.PAIRED_BCA
    if not (np.isfinite(low) and np.isfinite(high)) or low >= value or high <= value:
        low, high = _t_interval(value, sd, n, alpha)
        method = Method.PAIRED_T
    elif n < BOOTSTRAP_MIN_IMAGES:
        t_low, t_high = _t_interval(value, sd, n, alpha)
        if t_low < low or t_high > high:
            low, high, method = min(low, t_low), max(high, t_high), Method.PAIRED_BCA_T
    low, high = _clamped(value, low, high)

    def at(level: float) -> Estimate:
        return _bootstrap_estimate(samples, statistic, value, sd, level, result)

    return Estimate(value, low, high, n, method, True, sd=sd, at=at)


def _constant(value: float, n: int) -> Estimate:
    return Estimate(value, value, value, n, Method.CONSTANT, True, sd=0.0, at=lambda a: _constant(value, n))


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def mean_paired(values: np.ndarray, alpha: float) -> Estimate:
    """The mean of per-image values (a per-image difference or contrast) with a BCa interval
    over images."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"a mean needs a non-empty 1-D array; got shape {values.shape}")
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return _bootstrap_estimate((values,), _mean, float(values.mean()), sd, alpha)


def mean_difference_paired(a: np.ndarray, b: np.ndarray, alpha: float) -> Estimate:
    """mean(a) - mean(b) of per-image values (losses) of the same images."""
    a, b = _paired_arrays(a, b)
    return mean_paired(a - b, alpha)


def relative_reduction_paired(base: np.ndarray, new: np.ndarray, alpha: float) -> Estimate:
    """100 x (mean(base) - mean(new)) / mean(base), in %, for per-image values of the same
    images (the LAT paper's "x % less loss"): BCa over images; the per-image sd is the delta
    method's (each image's influence on the ratio)."""
    base, new = _paired_arrays(base, new)
    mean_base = float(base.mean())
    if mean_base <= 0:
        raise ValueError("a relative reduction needs a positive base mean")

    def statistic(b: np.ndarray, m: np.ndarray, axis: int = -1) -> np.ndarray:
        mb = b.mean(axis=axis)
        return 100.0 * (mb - m.mean(axis=axis)) / np.where(mb > 0, mb, np.nan)

    mean_new = float(new.mean())
    value = 100.0 * (mean_base - mean_new) / mean_base
    influence = 100.0 * (-(new - mean_new) / mean_base + mean_new * (base - mean_base) / mean_base**2)
    sd = float(influence.std(ddof=1)) if len(base) > 1 else 0.0
    return _bootstrap_estimate((base, new), statistic, value, sd, alpha)


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


@dataclass(frozen=True)
class Rule:
    """The one outcome rule every claim uses: holds / does not hold only when the whole interval
    lies on one side of the claim's boundary, otherwise inconclusive.

    ``above``: the effect exceeds ``bound``; ``below``: it stays under ``bound``; ``within``:
    it lies inside ±``bound`` (an equivalence claim)."""

    kind: str
    bound: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("above", "below", "within"):
            raise ValueError(f"rule kind {self.kind!r} unknown; use above, below or within")
        if self.kind == "within" and self.bound <= 0:
            raise ValueError(f"an equivalence margin must be positive; got {self.bound}")

    def __call__(self, effect: Estimate) -> Outcome:
        if self.kind == "above":
            return directional(effect, threshold=self.bound)
        if self.kind == "below":
            return directional(effect.negated(), threshold=-self.bound)
        return equivalent(effect, margin=self.bound)

    def boundary_text(self, unit: str = "") -> str:
        u = f" {unit}" if unit and unit not in ("loss", "FS", "generations") else ""
        return f"±{self.bound:g}{u}" if self.kind == "within" else f"{self.bound:g}{u}"

    def explain(self, effect: Estimate, level: str, unit: str = "") -> str:
        """Why this outcome, from the numbers alone."""
        interval = f"the {level} interval [{effect.low:.3g}, {effect.high:.3g}]"
        boundary = self.boundary_text(unit)
        outcome = self(effect)
        if self.kind == "within":
            return {
                Outcome.HOLDS: f"{interval} lies within {boundary}",
                Outcome.FAILS: f"{interval} lies wholly outside {boundary}",
            }.get(outcome, f"{interval} crosses a bound of {boundary}, so these images cannot tell")
        side = {Outcome.HOLDS: self.kind, Outcome.FAILS: "below" if self.kind == "above" else "above"}
        if outcome in side:
            return f"{interval} lies {side[outcome]} {boundary}"
        return f"{interval} includes {boundary}, so these images cannot tell"

    def distance(self, value: float) -> float:
        """How far ``value`` lies from the boundary that would decide it (always >= 0)."""
        if self.kind == "within":
            return abs(self.bound - abs(value))
        return abs(value - self.bound)

    def p_value(self, effect: Estimate) -> float | None:
        """The smallest level at which this rule's interval decides: the p-value of the test the
        interval inverts (None without a way to recompute the interval at other levels)."""
        if effect.at is None:
            return None
        if effect.method == Method.CONSTANT:
            return sign_test_p(effect.n) if self(effect) in DECIDED else 1.0
        # A bootstrap interval cannot reach beyond its resamples: its p stops at what 9,999
        # resamples can resolve (two-sided), never at the search's floor.
        bootstrap = (Method.PAIRED_BCA, Method.PAIRED_BCA_T)
        floor = 2.0 / (BOOTSTRAP_RESAMPLES + 1) if effect.method in bootstrap else P_FLOOR

        def decided(level: float) -> bool:
            return self(effect.at(level)) in DECIDED  # type: ignore[misc]

        if not decided(1.0 - 1e-9):
            return 1.0
        if decided(floor):
            return floor
        # Intervals nest as the level falls, so "decided at level x" is monotone: bisect in log x.
        lo, hi = math.log(floor), math.log(1.0 - 1e-9)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if decided(math.exp(mid)) else (mid, hi)
        return float(math.exp(hi))


ABOVE_ZERO = Rule("above", 0.0)


def sign_test_p(n: int) -> float:
    """Two-sided p of an exact sign test when every one of ``n`` images moves the same way: what
    a constant per-image difference can claim (no spread, so no interval; 7 images reach 5 %)."""
    return min(1.0, 2.0 ** (1 - n))


def above(bound: float = 0.0) -> Rule:
    return Rule("above", bound)


def below(bound: float) -> Rule:
    return Rule("below", bound)


def within(margin: float) -> Rule:
    return Rule("within", margin)


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


def holm(p_values: Sequence[float], alpha: float) -> list[float]:
    """Holm's step-down adjusted p-values (statsmodels), in the input's order."""
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), alpha=alpha, method="holm")[1]]


def images_for_power(effect: Estimate, distance: float, alpha: float, power: float = 0.8) -> float | None:
    """Images that give ``power`` to decide an effect ``distance`` from the rule's boundary at
    level ``alpha``, with this estimate's per-image spread (a paired/one-sample t test of the
    per-image contributions; for two independent rates, images per group). None when not
    computable: no spread known or none observed, or a distance of exactly 0."""
    if effect.sd is None or not math.isfinite(effect.sd) or effect.sd <= 0:
        return None
    return paired_n_for_power(distance, effect.sd, alpha, power)
