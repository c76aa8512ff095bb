"""Paired-difference intervals and power helpers (stages/claims/paired.py): published worked
examples, the properties every interval must keep, a seeded coverage check, and agreement of the
sample sizes with statsmodels and with a seeded Monte-Carlo power estimate.

Tables are written (both, a_only, b_only, neither), the order of ratesci's ``x = c(a, b, c, d)``;
the effect is (a_only - b_only) / n. Expected limits are asserted to the precision they were
published with: ``round(x, k) == published`` for ``k`` decimals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import proportion_effectsize

from stages.claims.paired import (
    newcombe_paired_difference,
    one_rate_n_for_power,
    paired_n_for_power,
    tango_paired_difference,
    unpaired_rates_n_for_power,
)

# Sources (all cited by the package tests that reproduce them; the package version is the one
# whose test file carries the value):
#   ratesci = R package ratesci 1.1.0.9000, tests/testthat/test3.R (github petelaud/ratesci,
#             commit dbe2ab79); the Tango 1998 and Agresti & Min 2005 rows are also in the
#             released 0.3-0 era test1.R.
#   contingencytables = R package contingencytables 3.0.0 (Fagerland, Lydersen & Laake,
#             "Statistical Analysis of Contingency Tables", 2017, ch. 8), tests/testthat/test-ch8.R
#             (github ocbe-uio/contingencytables, commit b1fde68e).
NEWCOMBE_PUBLISHED = [
    # (table, alpha, (low, high), decimals, source)
    ((20, 12, 2, 16), 0.05, (0.0562, 0.3292), 4, "Newcombe 1998 method 10 result, via ratesci test3.R"),
    ((1, 1, 7, 12), 0.05, (-0.507, -0.026), 3, "Fagerland et al. 2014 (Bentur 2009 data), ratesci test3.R"),
    ((8, 3, 1, 2), 0.05, (-0.1574, 0.4136), 4, "Tang, Ling & Tian 2010 example, ratesci test3.R"),
    ((7, 25, 2, 68), 0.05, (0.133, 0.318), 3, "Chang et al. 2024 Table 3 (MOVER), ratesci test3.R"),
    ((59, 6, 16, 80), 0.05, (-0.1186, -0.0046), 4, "Cavo 2012 data, contingencytables test-ch8.R"),
    ((1, 0, 0, 1), 0.05, (-0.5734, 0.5734), 4, "contingencytables test-ch8.R"),
]

TANGO_PUBLISHED = [
    ((4, 9, 3, 16), 0.05, (-0.027, 0.390), 3, "Tango 1998 Table VII, ratesci test3.R"),
    ((43, 0, 1, 0), 0.10, (-0.096, 0.037), 3, "Tango 1998 Table V (90%), ratesci test3.R"),
    ((53, 16, 8, 9), 0.05, (-0.020, 0.207), 3, "Agresti & Min 2005 example, ratesci test3.R"),
    ((1, 1, 7, 12), 0.05, (-0.517, -0.026), 3, "Fagerland et al. 2014 (Bentur 2009), ratesci test3.R"),
    ((8, 3, 1, 2), 0.05, (-0.1670, 0.4327), 4, "Tang, Ling & Tian 2010 example, ratesci test3.R"),
    ((7, 25, 2, 68), 0.05, (0.139, 0.321), 3, "Chang et al. 2024 Table 3, ratesci test3.R"),
    ((59, 6, 16, 80), 0.05, (-0.1240, -0.0054), 4, "Cavo 2012 data, contingencytables test-ch8.R"),
    # contingencytables' matrix(c(0, 0, 3, 0), 2) is column-major: n12 = 3, estimate +1.
    ((0, 3, 0, 0), 0.05, (-0.1230, 1.0), 4, "contingencytables test-ch8.R"),
    ((0, 0, 3, 0), 0.05, (-1.0, 0.1230), 4, "contingencytables test-ch8.R"),
]

METHODS = [newcombe_paired_difference, tango_paired_difference]


@pytest.mark.parametrize(("table", "alpha", "expected", "decimals", "source"), NEWCOMBE_PUBLISHED)
def test_newcombe_matches_published(table, alpha, expected, decimals, source):
    low, high = newcombe_paired_difference(*table, alpha)
    assert (round(low, decimals), round(high, decimals)) == pytest.approx(expected, abs=1e-12), source


@pytest.mark.parametrize(("table", "alpha", "expected", "decimals", "source"), TANGO_PUBLISHED)
def test_tango_matches_published(table, alpha, expected, decimals, source):
    low, high = tango_paired_difference(*table, alpha)
    assert (round(low, decimals), round(high, decimals)) == pytest.approx(expected, abs=1e-12), source


def _tables(max_n: int = 7):
    for n in range(1, max_n + 1):
        for both in range(n + 1):
            for a_only in range(n - both + 1):
                for b_only in range(n - both - a_only + 1):
                    yield both, a_only, b_only, n - both - a_only - b_only


@pytest.mark.parametrize("method", METHODS)
def test_every_small_table_gives_a_valid_interval(method):
    # Exhaustive over all tables up to 7 images: inside [-1, 1], contains the estimate, and a side
    # has positive width whenever a discordant image exists and the estimate is not at that bound.
    for table in _tables():
        both, a_only, b_only, neither = table
        n = sum(table)
        estimate = (a_only - b_only) / n
        low, high = method(*table, 0.05)
        assert -1.0 <= low <= estimate <= high <= 1.0, table
        if a_only + b_only > 0:
            if estimate < 1.0:
                assert high > estimate, table
            if estimate > -1.0:
                assert low < estimate, table


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("concordant", [0, 6, 96])
def test_four_to_zero_discordance_keeps_both_sides_open(method, concordant):
    # 4 images won by a only. With concordant images beside them the estimate is below 1, and the
    # upper limit must sit strictly above it (a Wald interval has zero width here). With none, the
    # estimate is already 1 and nothing above exists: the upper limit is 1 and the lower side open.
    table = (concordant // 2, 4, 0, concordant - concordant // 2)
    estimate = 4 / (4 + concordant)
    low, high = method(*table, 0.05)
    assert low < estimate
    if estimate < 1.0:
        assert high > estimate
    else:
        assert high == 1.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("table", [(20, 12, 2, 16), (1, 1, 7, 12), (0, 4, 0, 0), (10, 3, 0, 7), (5, 0, 0, 5)])
def test_swapping_conditions_negates_the_interval(method, table):
    both, a_only, b_only, neither = table
    low, high = method(both, a_only, b_only, neither, 0.05)
    swapped_low, swapped_high = method(both, b_only, a_only, neither, 0.05)
    assert swapped_low == pytest.approx(-high, abs=1e-10)
    assert swapped_high == pytest.approx(-low, abs=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_higher_confidence_widens(method):
    narrow = method(20, 12, 2, 16, 0.10)
    wide = method(20, 12, 2, 16, 0.01)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "bad", [(-1, 2, 3, 4, 0.05), (1, 2.5, 3, 4, 0.05), (0, 0, 0, 0, 0.05), (1, 2, 3, 4, 0.0)]
)
def test_bad_input_raises(method, bad):
    with pytest.raises(ValueError):
        method(*bad)


@pytest.mark.parametrize(
    ("method", "floor"), [(newcombe_paired_difference, 0.93), (tango_paired_difference, 0.92)]
)
def test_coverage_at_small_n(method, floor):
    # n = 20 images, cell probabilities (both, a only, b only, neither) = (0.3, 0.1, 0.3, 0.3):
    # true difference 0.1 - 0.3 = -0.2. 2000 seeded tables; Newcombe (1998) reports method 10's
    # coverage close to nominal, so a 95% interval should cover well above 93% here.
    rng = np.random.default_rng(20240601)
    probabilities = [0.3, 0.1, 0.3, 0.3]
    truth = 0.1 - 0.3
    tables = rng.multinomial(20, probabilities, size=2000)
    cache: dict[tuple[int, ...], bool] = {}
    covered = 0
    for row in tables:
        key = tuple(int(c) for c in row)
        if key not in cache:
            low, high = method(*key, 0.05)
            cache[key] = low <= truth <= high
        covered += cache[key]
    assert covered / len(tables) >= floor


# --- power and sample size ---------------------------------------------------------------------


def test_paired_n_textbook_case():
    # d = 0.5, two-sided alpha 0.05, power 0.8: the one-sample t test needs 33.37 images, i.e. 34
    # (the usual G*Power answer). Check the value against statsmodels and the rounded-up size
    # against the noncentral t power computed directly with scipy.
    n = paired_n_for_power(0.5, 1.0, 0.05, 0.8)
    assert n == pytest.approx(
        TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8, alternative="two-sided")
    )
    assert n == pytest.approx(33.367, abs=1e-3)
    size = math.ceil(n)
    critical = stats.t.ppf(0.975, size - 1)
    noncentrality = 0.5 * math.sqrt(size)
    power = stats.nct.sf(critical, size - 1, noncentrality) + stats.nct.cdf(
        -critical, size - 1, noncentrality
    )
    assert size == 34 and 0.80 <= power < 0.82
    # The sign of the effect does not matter to a two-sided test.
    assert paired_n_for_power(-0.5, 1.0, 0.05, 0.8) == pytest.approx(n)


@pytest.mark.parametrize(
    ("mean", "sd"), [(0.0, 1.0), (0.1, 0.0), (0.1, math.nan), (math.inf, 1.0), (0.1, math.inf)]
)
def test_paired_n_not_computable(mean, sd):
    assert paired_n_for_power(mean, sd, 0.05) is None


def test_paired_n_gives_its_power_by_simulation():
    # Binary outcomes on the same images: a only wins with p10 = 0.2, b only with p01 = 0.05, so
    # the per-image difference is +1, -1 or 0 with mean 0.15 and variance 0.25 - 0.15^2.
    p10, p01 = 0.2, 0.05
    mean = p10 - p01
    sd = math.sqrt(p10 + p01 - mean**2)
    size = math.ceil(paired_n_for_power(mean, sd, 0.05, 0.8))
    rng = np.random.default_rng(7)
    draws = rng.choice([1.0, -1.0, 0.0], p=[p10, p01, 1 - p10 - p01], size=(4000, size))
    p_values = stats.ttest_1samp(draws, 0.0, axis=1).pvalue
    # A sample with no spread has no t statistic; none occur at this size, but count them as misses.
    power = float(np.mean(np.nan_to_num(p_values, nan=1.0) < 0.05))
    assert abs(power - 0.8) <= 0.05


def test_unpaired_rates_n_matches_statsmodels_and_closed_form():
    h = proportion_effectsize(0.65, 0.45)
    # Cohen's h = 2 asin(sqrt(0.65)) - 2 asin(sqrt(0.45)).
    assert h == pytest.approx(2 * math.asin(math.sqrt(0.65)) - 2 * math.asin(math.sqrt(0.45)))
    n = unpaired_rates_n_for_power(0.65, 0.45, 0.05, 0.8)
    assert n == pytest.approx(NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0))
    # Normal-approximation closed form for two equal groups, ignoring the far tail's sliver of power.
    closed = 2 * ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / h) ** 2
    assert n == pytest.approx(closed, rel=1e-3)
    assert unpaired_rates_n_for_power(0.45, 0.65, 0.05, 0.8) == pytest.approx(n)
    assert unpaired_rates_n_for_power(0.3, 0.3, 0.05) is None


def test_one_rate_n_is_the_one_sample_case():
    h = abs(proportion_effectsize(0.65, 0.5))
    n = one_rate_n_for_power(0.65, 0.5, 0.05, 0.8)
    # ratio=0 makes statsmodels use nobs1 itself as the effective size: half the two-group size,
    # and the one-sample closed form.
    assert n == pytest.approx(NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=0.0))
    closed = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / h) ** 2
    assert n == pytest.approx(closed, rel=1e-3)
    assert n == pytest.approx(unpaired_rates_n_for_power(0.65, 0.5, 0.05, 0.8) / 2, rel=1e-3)
    assert one_rate_n_for_power(0.5, 0.5, 0.05) is None


def test_an_effect_two_images_already_detect_needs_two_not_nan() -> None:
    """statsmodels' solver has no root below n = 2 and returns nan with a warning; an effect that
    large needs the t test's minimum, 2 images."""
    assert paired_n_for_power(10.0, 1.0, 0.05) == 2.0
    n = paired_n_for_power(3.0, 1.0, 0.0001)
    assert n is not None and 2.0 < n < 10.0
