"""Intervals for the difference of two rates measured on the same images, and the sample sizes
a paired or unpaired comparison would need.

A paired 2x2 table counts, over ``n`` images, those that both conditions got right (``both``),
only condition a (``a_only``), only condition b (``b_only``) and neither (``neither``). The effect
is ``p_a - p_b = (a_only - b_only) / n``; only the discordant images move it, but the concordant
ones set its scale. Two score-based intervals are offered:

* Newcombe's hybrid score interval for paired data (Newcombe 1998, Stat. Med. 17:2635-2650,
  method 10): the Wilson intervals of the two margins, combined with their correlation.
* Tango's score interval (Tango 1998, Stat. Med. 17:891-908): the set of differences a score test
  with the null-constrained maximum likelihood variance does not reject.

Both stay within [-1, 1], contain the estimate, and keep a side of positive width whenever there
is a discordant image and the estimate is not already at that bound. The Wald interval does not:
with all discordant images on one side (4:0, say) its estimated variance can vanish, leaving a
side of zero width that overstates certainty on few images.

The power helpers wrap :mod:`statsmodels.stats.power` so that every sample size the report quotes
comes from a maintained library; each returns ``None`` where no finite answer exists (no effect),
which the callers state as "not computable" instead of printing an infinite or absurd size.
"""

from __future__ import annotations

import math
import warnings

from scipy.optimize import brentq
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize
from statsmodels.tools.sm_exceptions import ConvergenceWarning


def _check_table(both: int, a_only: int, b_only: int, neither: int, alpha: float) -> int:
    """Validate a paired table and a level; return ``n``. Bad input is a bug upstream, so fail loud."""
    counts = (both, a_only, b_only, neither)
    if any(int(c) != c or c < 0 for c in counts):
        raise ValueError(f"paired counts must be non-negative integers, got {counts}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n = int(sum(counts))
    if n == 0:
        raise ValueError("a paired interval needs at least one image")
    return n


def _clip(low: float, high: float, estimate: float) -> tuple[float, float]:
    # Floating-point noise can push a limit a hair past [-1, 1] or past the estimate; the
    # methods themselves never do, so clipping only removes rounding, not information.
    low = min(max(low, -1.0), estimate)
    high = max(min(high, 1.0), estimate)
    return float(low), float(high)


def newcombe_paired_difference(
    both: int, a_only: int, b_only: int, neither: int, alpha: float
) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval at ``1 - alpha`` for ``p_a - p_b`` on paired data.

    With margins ``p_a = (both + a_only) / n`` and ``p_b = (both + b_only) / n`` and their Wilson
    intervals ``[l_a, u_a]`` and ``[l_b, u_b]``, the limits are

        low  = D - sqrt((p_a - l_a)^2 - 2 phi (p_a - l_a)(u_b - p_b) + (u_b - p_b)^2)
        high = D + sqrt((p_b - l_b)^2 - 2 phi (p_b - l_b)(u_a - p_a) + (u_a - p_a)^2)

    where ``phi`` is the correlation of the two outcomes over images. As in the paper, its
    numerator ``ad - bc`` is shrunk to ``max(ad - bc - n/2, 0)`` when positive (a continuity
    correction: the raw phi of small tables overstates the correlation and so the narrowing),
    left as is when negative, and ``phi = 0`` when a margin is empty (the correlation is then
    undefined, and zero is the conservative choice).
    """
    n = _check_table(both, a_only, b_only, neither, alpha)
    p_a = (both + a_only) / n
    p_b = (both + b_only) / n
    estimate = (a_only - b_only) / n
    # statsmodels' Wilson interval is the single-proportion score interval the method is built on.
    l_a, u_a = proportion_confint(both + a_only, n, alpha=alpha, method="wilson")
    l_b, u_b = proportion_confint(both + b_only, n, alpha=alpha, method="wilson")

    # Table cells in the paper's notation: a = both, b = a_only, c = b_only, d = neither.
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    if margins == 0:
        phi = 0.0
    else:
        cross = both * neither - a_only * b_only
        if cross > 0:
            cross = max(cross - n / 2, 0.0)
        phi = cross / math.sqrt(margins)

    d_low_a, d_high_b = p_a - l_a, u_b - p_b
    d_low_b, d_high_a = p_b - l_b, u_a - p_a
    # phi < 1 (the correction keeps it strictly below 1 whenever it is positive), so each radicand
    # is >= (1 - phi) * (x^2 + y^2) >= 0; max() only guards against rounding.
    low = estimate - math.sqrt(max(d_low_a**2 - 2 * phi * d_low_a * d_high_b + d_high_b**2, 0.0))
    high = estimate + math.sqrt(max(d_low_b**2 - 2 * phi * d_low_b * d_high_a + d_high_a**2, 0.0))
    return _clip(low, high, estimate)


def _tango_null_variance(n: int, a_only: int, b_only: int, delta: float) -> float:
    """``Var(a_only - b_only) / n`` per image under ``H0: p_a - p_b = delta``, at the constrained MLE.

    Tango (1998, eq. 3): with ``b = a_only``, ``c = b_only``, the maximum likelihood estimate of the
    probability of the ``b_only`` cell subject to ``p_ab - p_ba = delta`` is the root of
    ``A q^2 + B q + C = 0`` with ``A = 2n``, ``B = -b - c + (2n - b + c) delta`` and
    ``C = -c delta (1 - delta)``; the variance of a discordant-difference indicator is then
    ``2 q + delta (1 - delta)``. Using the null's own variance (not the sample's) is what makes
    the interval a score interval, and what keeps it from collapsing when one cell is empty.
    """
    a2 = 2.0 * n
    b1 = -a_only - b_only + (2.0 * n - a_only + b_only) * delta
    c0 = -b_only * delta * (1.0 - delta)
    q = (math.sqrt(max(b1 * b1 - 4.0 * a2 * c0, 0.0)) - b1) / (2.0 * a2)
    return max(2.0 * q + delta * (1.0 - delta), 0.0)


def tango_paired_difference(
    both: int, a_only: int, b_only: int, neither: int, alpha: float
) -> tuple[float, float]:
    """Tango's (1998) score interval at ``1 - alpha`` for ``p_a - p_b`` on paired data.

    The interval is every ``delta`` with ``|Z(delta)| <= z_{1 - alpha/2}``, where
    ``Z(delta) = (a_only - b_only - n delta) / sqrt(n V(delta))`` and ``V`` is the null variance of
    :func:`_tango_null_variance`. ``Z`` falls monotonically in ``delta``, so each limit is the one
    root on its side of the estimate; brentq finds it on the sign-changing form
    ``(a_only - b_only - n delta) -/+ z sqrt(n V(delta))``, which stays finite at ``delta = +-1``
    where ``V`` vanishes. The concordant cells enter only through ``n``, as in the paper.
    """
    n = _check_table(both, a_only, b_only, neither, alpha)
    estimate = (a_only - b_only) / n
    z = float(norm.ppf(1.0 - alpha / 2.0))
    diff = float(a_only - b_only)

    def lower_gap(delta: float) -> float:
        # Positive below the lower limit (the null would be rejected), negative above it.
        return diff - n * delta - z * math.sqrt(n * _tango_null_variance(n, a_only, b_only, delta))

    def upper_gap(delta: float) -> float:
        # Positive below the upper limit, negative above it.
        return diff - n * delta + z * math.sqrt(n * _tango_null_variance(n, a_only, b_only, delta))

    # With no discordant images the null variance is zero at the estimate itself, so both gaps
    # vanish there; start the bracket just off it (the gaps are strictly signed a hair away).
    step = 0.0 if _tango_null_variance(n, a_only, b_only, estimate) > 0 else 1e-12

    if estimate <= -1.0:
        low = -1.0  # every image went to b: nothing below -1 exists to include
    else:
        low = brentq(lower_gap, -1.0, estimate - step, xtol=1e-14, rtol=1e-14, maxiter=500)
    if estimate >= 1.0:
        high = 1.0
    else:
        high = brentq(upper_gap, estimate + step, 1.0, xtol=1e-14, rtol=1e-14, maxiter=500)
    return _clip(low, high, estimate)


MIN_T_IMAGES = 2


def paired_n_for_power(mean: float, sd: float, alpha: float, power: float = 0.8) -> float | None:
    """Images a two-sided paired (one-sample) t test of per-image differences needs for ``power``.

    ``mean`` and ``sd`` are the mean and standard deviation of the per-image difference a - b (for
    0/1 outcomes: ``p10 - p01`` and ``sqrt(p10 + p01 - (p10 - p01)^2)``). Returns ``None`` when the
    effect is exactly zero or the spread is zero or not finite: no finite sample size exists, and
    the caller says so rather than printing infinity.
    """
    if not (math.isfinite(mean) and math.isfinite(sd)) or mean == 0 or sd <= 0:
        return None
    # The two-sided test is symmetric in the sign of the effect; statsmodels expects it positive.
    effect = abs(mean) / sd
    analysis = TTestPower()
    # A t test needs 2 images; an effect so large that 2 already give the power has no root for
    # statsmodels' solver (it warns and returns nan): 2 is then the answer.
    if analysis.power(effect_size=effect, nobs=MIN_T_IMAGES, alpha=alpha, alternative="two-sided") >= power:
        return float(MIN_T_IMAGES)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            n = float(
                analysis.solve_power(effect_size=effect, alpha=alpha, power=power, alternative="two-sided")
            )
        except ConvergenceWarning:
            return None
    return n if math.isfinite(n) else None


def unpaired_rates_n_for_power(p1: float, p2: float, alpha: float, power: float = 0.8) -> float | None:
    """Per-group images for a two-sided z test of two independent rates, equal groups.

    The effect is Cohen's h (the difference of arcsine-square-root transformed rates), which makes
    the variance of the difference free of the rates themselves; ``None`` when the rates are equal.
    """
    if p1 == p2:
        return None
    effect = abs(float(proportion_effectsize(p1, p2)))
    return float(
        NormalIndPower().solve_power(
            effect_size=effect, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
        )
    )


def one_rate_n_for_power(p: float, p0: float, alpha: float, power: float = 0.8) -> float | None:
    """Images for a two-sided z test of one rate ``p`` against a fixed ``p0`` (Cohen's h).

    statsmodels' ``NormalIndPower`` with ``ratio=0`` is its documented one-sample case (the
    effective sample size is then ``nobs1`` itself rather than ``n1 n2 / (n1 + n2)``); ``None`` when
    ``p == p0``.
    """
    if p == p0:
        return None
    effect = abs(float(proportion_effectsize(p, p0)))
    return float(
        NormalIndPower().solve_power(
            effect_size=effect, alpha=alpha, power=power, ratio=0.0, alternative="two-sided"
        )
    )
