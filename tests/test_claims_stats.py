"""The statistics behind a claim's verdict (stages/claims/stats.py): known answers, agreement with
statsmodels and scipy, byte-stable bootstrap intervals, and the rules that turn an interval into
an outcome."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from stages.claims.stats import (
    ABOVE_ZERO,
    BOOTSTRAP_RESAMPLES,
    Estimate,
    Method,
    Outcome,
    Rule,
    above,
    below,
    combine,
    directional,
    equivalent,
    holm,
    images_for_power,
    includes,
    mean_difference_paired,
    mean_paired,
    non_inferior,
    rate_difference_paired,
    rate_difference_unpaired,
    relative_reduction_paired,
    sign_test_p,
    wilson,
    within,
)

ALPHA = 0.05


def outcomes(correct: int, n: int = 1000) -> np.ndarray:
    """0/1 outcomes on ``n`` images, the first ``correct`` of them right."""
    return np.r_[np.ones(correct), np.zeros(n - correct)]


def interval(low: float, high: float, value: float | None = None) -> Estimate:
    value = (low + high) / 2 if value is None else value
    return Estimate(value, low, high, 1000, Method.NONE, False)


def mixed_pair(seed: int = 3, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated 0/1 outcome vectors on the same images, with discordant pairs both ways."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.7).astype(float)
    flip = rng.random(n) < 0.2
    b = np.where(flip, 1 - a, a)
    return a, b


# --- paired and unpaired differences of rates ---------------------------------------------------


def test_identical_outcomes_give_a_zero_difference_and_no_verdict() -> None:
    a = outcomes(700)
    est = rate_difference_paired(a, a.copy(), ALPHA)
    # No discordant pair: the score interval still has width on both sides (it never claims
    # certainty from 1000 images), so no rule can decide.
    assert est.value == 0.0 and est.low < 0.0 < est.high and est.discordant == (0, 0)
    assert est.paired and est.n == 1000 and est.method == Method.PAIRED_SCORE_RATE
    assert est.p_value == 1.0  # no discordant pair: McNemar cannot reject
    assert directional(est) == Outcome.INCONCLUSIVE
    assert ABOVE_ZERO.p_value(est) == 1.0


@pytest.mark.parametrize("concordant", [0, 6, 96, 396])
def test_a_one_sided_discordance_keeps_both_sides_of_its_interval(concordant: int) -> None:
    """4:0 discordant pairs: a percentile bootstrap put the upper bound on the estimate (every
    resample has a difference <= the observed one's maximum); the score interval does not,
    unless the estimate is already the largest possible difference (+1)."""
    n = 4 + concordant
    a = np.r_[np.ones(4), np.ones(concordant // 2), np.zeros(concordant - concordant // 2)]
    b = np.r_[np.zeros(4), np.ones(concordant // 2), np.zeros(concordant - concordant // 2)]
    est = rate_difference_paired(a, b, ALPHA)
    assert est.value == pytest.approx(4 / n) and est.discordant == (4, 0)
    assert est.low < est.value
    if concordant:
        assert est.high > est.value
    else:
        assert est.high == 1.0
    # Below a margin of +2 points on 401 images, 4:0 cannot be told apart from the margin.
    assert below(2.0)(est.scaled(100.0)) != Outcome.HOLDS or est.high * 100 < 2.0


def test_a_large_paired_effect_holds_and_its_reverse_does_not() -> None:
    a, b = outcomes(900), outcomes(500)  # b's correct images are a subset of a's
    forward = rate_difference_paired(a, b, ALPHA)
    backward = rate_difference_paired(b, a, ALPHA)
    assert forward.value == pytest.approx(0.4)
    assert directional(forward) == Outcome.HOLDS
    assert directional(backward) == Outcome.FAILS
    assert backward.value == pytest.approx(-forward.value)
    assert forward.p_value == backward.p_value < 1e-100
    # 400 discordant of 1000: the bootstrap interval is close to the normal one, 0.4 ± 1.96 x 0.0155.
    half = 1.96 * np.sqrt(0.4 * 0.6 / 1000)
    assert forward.low == pytest.approx(0.4 - half, abs=0.005)
    assert forward.high == pytest.approx(0.4 + half, abs=0.005)


def test_a_large_unpaired_effect_holds_and_its_reverse_does_not() -> None:
    forward = rate_difference_unpaired(900, 1000, 500, 1000, ALPHA)
    backward = rate_difference_unpaired(500, 1000, 900, 1000, ALPHA)
    assert forward.value == pytest.approx(0.4) and not forward.paired and forward.p_value is None
    assert forward.method == Method.NEWCOMBE
    assert directional(forward) == Outcome.HOLDS
    assert directional(backward) == Outcome.FAILS


def test_a_small_difference_on_few_images_is_inconclusive() -> None:
    est = rate_difference_unpaired(52, 100, 48, 100, ALPHA)
    assert est.low < 0 < est.high
    assert directional(est) == Outcome.INCONCLUSIVE


def test_wilson_matches_statsmodels_and_contains_the_rate() -> None:
    est = wilson(54, 500, ALPHA)
    low, high = proportion_confint(54, 500, alpha=ALPHA, method="wilson")
    assert est.value == 54 / 500
    assert est.low == pytest.approx(low, rel=1e-12) and est.high == pytest.approx(high, rel=1e-12)
    assert est.low < est.value < est.high
    assert 0.08 < est.low < 0.085 and 0.135 < est.high < 0.14  # textbook values for 10.8 % of 500
    assert est.n == 500 and not est.paired and est.method == Method.WILSON


@pytest.mark.parametrize("k", [0, 500])
def test_wilson_at_the_edges_stays_within_zero_and_one(k: int) -> None:
    est = wilson(k, 500, ALPHA)
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0
    assert est.high - est.low > 0  # even 0/500 leaves room for a small rate


@pytest.mark.parametrize(("k", "n"), [(11, 10), (-1, 10), (0, 0)])
def test_impossible_counts_are_refused(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(k, n, ALPHA)


@pytest.mark.parametrize(
    ("k_a", "n_a", "k_b", "n_b"), [(450, 500, 400, 500), (30, 120, 55, 150), (0, 50, 3, 60)]
)
def test_newcombe_matches_statsmodels(k_a: int, n_a: int, k_b: int, n_b: int) -> None:
    est = rate_difference_unpaired(k_a, n_a, k_b, n_b, ALPHA)
    low, high = confint_proportions_2indep(k_a, n_a, k_b, n_b, method="newcomb", compare="diff", alpha=ALPHA)
    assert est.value == pytest.approx(k_a / n_a - k_b / n_b)
    assert est.low == pytest.approx(low, rel=1e-12) and est.high == pytest.approx(high, rel=1e-12)
    assert est.n == min(n_a, n_b)


def test_mcnemar_p_is_the_exact_test_on_the_discordant_pairs() -> None:
    a, b = mixed_pair()
    est = rate_difference_paired(a, b, ALPHA)
    a_only, b_only = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    both, neither = int(np.sum((a == 1) & (b == 1))), int(np.sum((a == 0) & (b == 0)))
    assert a_only > 0 and b_only > 0
    expected = mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue
    assert est.p_value == pytest.approx(expected, rel=1e-12)
    # The exact McNemar test is a two-sided binomial test of the discordant pairs at 1/2.
    assert est.p_value == pytest.approx(binomtest(a_only, a_only + b_only, 0.5).pvalue, rel=1e-9)


# --- bootstrap intervals ------------------------------------------------------------------------


def test_bootstrap_intervals_are_byte_stable_and_contain_the_estimate() -> None:
    a, b = mixed_pair()
    rng = np.random.default_rng(7)
    base, new = rng.uniform(1.0, 3.0, 300), rng.uniform(0.5, 2.5, 300)
    calls = [
        lambda: rate_difference_paired(a, b, ALPHA),
        lambda: mean_difference_paired(base, new, ALPHA),
        lambda: relative_reduction_paired(base, new, ALPHA),
        lambda: mean_paired(base - new, ALPHA),
    ]
    for call in calls:
        first, second = call(), call()
        assert first == second
        assert [x.hex() for x in (first.value, first.low, first.high)] == [
            x.hex() for x in (second.value, second.low, second.high)
        ]
        assert first.low <= first.value <= first.high
        assert first.low < first.high  # the data vary, so the interval has width


def test_mean_difference_paired_is_a_mean_with_a_sensible_interval() -> None:
    rng = np.random.default_rng(11)
    base = rng.uniform(1.0, 3.0, 500)
    new = base - 0.5 + rng.normal(0, 0.1, 500)
    est = mean_difference_paired(new, base, ALPHA)
    assert est.value == pytest.approx(float(np.mean(new - base)))
    assert est.low < -0.48 and est.high > -0.52 and est.high - est.low < 0.05
    assert directional(est) == Outcome.FAILS and est.method == Method.PAIRED_BCA


def test_relative_reduction_of_constant_losses_is_exact() -> None:
    est = relative_reduction_paired(np.full(200, 2.0), np.full(200, 1.0), ALPHA)
    assert (est.value, est.low, est.high) == (50.0, 50.0, 50.0)
    assert est.n == 200 and est.paired


def test_relative_reduction_of_varying_losses_is_near_the_ratio_of_means() -> None:
    rng = np.random.default_rng(5)
    base = rng.uniform(1.0, 3.0, 1000)
    new = 0.25 * base + rng.uniform(0.0, 0.1, 1000)
    est = relative_reduction_paired(base, new, ALPHA)
    assert est.value == pytest.approx(100 * (base.mean() - new.mean()) / base.mean())
    assert 70 < est.low <= est.value <= est.high < 75
    assert directional(est, threshold=50.0) == Outcome.HOLDS


def test_relative_reduction_needs_a_positive_base() -> None:
    with pytest.raises(ValueError, match="positive base"):
        relative_reduction_paired(np.zeros(10), np.ones(10), ALPHA)


@pytest.mark.parametrize(("a", "b"), [(np.ones(3), np.ones(4)), (np.ones((2, 2)), np.ones((2, 2))), ([], [])])
def test_paired_differences_refuse_unequal_or_empty_samples(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ValueError, match="paired samples"):
        mean_difference_paired(np.asarray(a), np.asarray(b), ALPHA)


# --- from an interval to an outcome -------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "threshold", "expected"),
    [
        (0.01, 0.2, 0.0, Outcome.HOLDS),
        (-0.2, -0.01, 0.0, Outcome.FAILS),
        (-0.1, 0.1, 0.0, Outcome.INCONCLUSIVE),
        (0.0, 0.1, 0.0, Outcome.INCONCLUSIVE),  # touching the threshold is not above it
        (6.0, 9.0, 5.0, Outcome.HOLDS),
        (1.0, 4.0, 5.0, Outcome.FAILS),
    ],
)
def test_directional(low: float, high: float, threshold: float, expected: Outcome) -> None:
    assert directional(interval(low, high), threshold=threshold) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-2.0, 3.0, Outcome.HOLDS),
        (-5.0, 5.0, Outcome.HOLDS),  # the margin itself is inside
        (6.0, 9.0, Outcome.FAILS),
        (-9.0, -6.0, Outcome.FAILS),
        (3.0, 8.0, Outcome.INCONCLUSIVE),
        (-8.0, -3.0, Outcome.INCONCLUSIVE),
        (-7.0, 7.0, Outcome.INCONCLUSIVE),  # too wide to tell, though centred on 0
    ],
)
def test_equivalent(low: float, high: float, expected: Outcome) -> None:
    assert equivalent(interval(low, high), margin=5.0) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-1.5, 3.0, Outcome.HOLDS),
        (0.5, 3.0, Outcome.HOLDS),
        (-6.0, -3.0, Outcome.FAILS),
        (-3.0, 1.0, Outcome.INCONCLUSIVE),
    ],
)
def test_non_inferior(low: float, high: float, expected: Outcome) -> None:
    assert non_inferior(interval(low, high), margin=2.0) == expected


H, F, U, D, N = Outcome.HOLDS, Outcome.FAILS, Outcome.INCONCLUSIVE, Outcome.DEGENERATE, Outcome.NOT_TESTED


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([H, H], H),
        ([H, U], U),
        ([H, F, U], F),
        ([F, D, U], D),  # degenerate beats does-not-hold
        ([U, D], D),
        ([H, N], H),  # an untested part neither confirms nor refutes
        ([N, F], F),
        ([N, U], U),
        ([N, N], N),
        ([], N),
    ],
)
def test_combine(parts: list[Outcome], expected: Outcome) -> None:
    assert combine(parts) == expected


def test_includes() -> None:
    est = interval(-1.0, 2.0, 0.5)
    assert includes(est, None) is None
    assert includes(est, 2.0) is True and includes(est, -1.0) is True
    assert includes(est, 2.01) is False


# --- Estimate ------------------------------------------------------------------------------------


def test_scaled_and_negated_keep_the_estimate_inside_its_interval() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        low, value, high = np.sort(rng.normal(0, 1, 3))
        est = Estimate(float(value), float(low), float(high), 10, Method.NONE, True, 0.2)
        for factor in (100.0, -100.0, 0.37, -3.0, 1e-3, float(rng.normal(0, 50))):
            scaled = est.scaled(factor)
            assert scaled.low <= scaled.value <= scaled.high
            assert scaled.value == pytest.approx(value * factor)
            assert (scaled.low, scaled.high) == pytest.approx(tuple(sorted((low * factor, high * factor))))
            assert (scaled.n, scaled.method, scaled.paired, scaled.p_value) == (10, Method.NONE, True, 0.2)
        neg = est.negated()
        assert neg.low <= neg.value <= neg.high
        assert (neg.value, neg.low, neg.high) == (-value, -high, -low)
        assert (neg.n, neg.method, neg.paired, neg.p_value) == (10, Method.NONE, True, 0.2)
        assert neg.negated() == est


def test_an_estimate_outside_its_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="outside its interval"):
        Estimate(1.0, 0.0, 0.5, 10, Method.NONE, False)
    nan = Estimate(float("nan"), 0.0, 0.5, 10, Method.NONE, False)  # an undefined effect is allowed
    assert np.isnan(nan.value)


# --- the one rule, its p-value, multiplicity and power ------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda a: wilson(60, 100, a),
        lambda a: rate_difference_unpaired(60, 100, 45, 100, a),
        lambda a: rate_difference_paired(*mixed_pair(), a),
        lambda a: mean_paired(np.random.default_rng(1).normal(0.15, 1.0, 200), a),
    ],
    ids=["wilson", "newcombe", "paired-score", "bca"],
)
@pytest.mark.parametrize("rule", [ABOVE_ZERO, above(0.5), below(0.7), within(0.25)], ids=str)
def test_a_rules_p_value_is_the_level_at_which_its_interval_decides(make, rule: Rule) -> None:
    """p < alpha exactly when the interval at 1 - alpha decides: the p inverts the interval."""
    estimate = make(ALPHA)
    p = rule.p_value(estimate)
    assert p is not None and 0 < p <= 1
    for level in (0.01, 0.05, 0.2):
        decided = rule(make(level)) in (Outcome.HOLDS, Outcome.FAILS)
        if abs(p - level) > 1e-6:
            assert decided == (p < level), (level, p)


def test_holm_matches_statsmodels_on_a_fixed_vector() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.0001]
    expected = multipletests(p, alpha=ALPHA, method="holm")[1]
    assert holm(p, ALPHA) == pytest.approx(list(expected))
    # By hand: sorted 0.0001, 0.005, 0.01, 0.03, 0.04, 0.2 times 6, 5, 4, 3, 2, 1, made monotone.
    assert holm(p, ALPHA) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2, 0.0006])
    assert holm([], ALPHA) == []


def test_bca_never_leaves_a_side_on_the_estimate_for_varying_data() -> None:
    """Three images out of 60 gain a third of a point each, the rest nothing: BCa's percentile
    adjustment is undefined or lands on the estimate, and the t interval takes over."""
    values = np.r_[np.full(3, 1 / 3), np.zeros(57)]
    est = mean_paired(values, ALPHA)
    assert est.low < est.value < est.high
    assert est.method in (Method.PAIRED_BCA, Method.PAIRED_T)
    constant = mean_paired(np.full(20, 0.25), ALPHA)
    assert (constant.low, constant.high, constant.method) == (0.25, 0.25, Method.CONSTANT)


def test_bca_interval_is_byte_stable() -> None:
    values = np.random.default_rng(4).normal(0.1, 1.0, 150)
    assert mean_paired(values, ALPHA) == mean_paired(values, ALPHA)


def test_rule_texts_come_from_the_numbers() -> None:
    est = Estimate(1.5, 0.4, 2.6, 100, Method.WILSON, False)
    assert ABOVE_ZERO.explain(est, "95 %", "points") == "the 95 % interval [0.4, 2.6] lies above 0 points"
    assert (
        below(2).explain(est, "95 %")
        == "the 95 % interval [0.4, 2.6] includes 2, so these images cannot tell"
    )
    assert below(3).explain(est, "95 %") == "the 95 % interval [0.4, 2.6] lies below 3"
    assert within(3).explain(est, "95 %") == "the 95 % interval [0.4, 2.6] lies within ±3"
    with pytest.raises(ValueError, match="margin must be positive"):
        within(0)
    with pytest.raises(ValueError, match="unknown"):
        Rule("sideways")


def test_power_matches_statsmodels_and_an_effect_of_zero_is_not_computable() -> None:
    from statsmodels.stats.power import TTestPower

    values = np.random.default_rng(2).normal(0.3, 1.2, 80)
    est = mean_paired(values, ALPHA)
    n = images_for_power(est, 0.3, ALPHA)
    expected = TTestPower().solve_power(effect_size=0.3 / est.sd, alpha=ALPHA, power=0.8)
    assert n == pytest.approx(expected)
    # The textbook case: d = 0.5 needs about 33.4 pairs for 80 % power at 5 %.
    unit = Estimate(0.5, 0.0, 1.0, 10, Method.PAIRED_BCA, True, sd=1.0)
    assert images_for_power(unit, 0.5, ALPHA) == pytest.approx(33.37, abs=0.01)
    assert images_for_power(unit, 0.0, ALPHA) is None
    assert images_for_power(Estimate(0.5, 0.5, 0.5, 10, Method.CONSTANT, True, sd=0.0), 0.5, ALPHA) is None


def test_a_constant_effect_is_decided_only_where_a_sign_test_could_be() -> None:
    """Every image moving the same way has no spread, so no interval: what it can claim is an
    exact sign test's p, 2^(1-n), which reaches 5 % at 7 images."""
    from stages.claims.build import ClaimBook
    from stages.claims.settings import ClaimSettings

    few, many = mean_paired(np.full(5, 0.3), ALPHA), mean_paired(np.full(10, 0.3), ALPHA)
    assert ABOVE_ZERO.p_value(few) == sign_test_p(5) == 0.0625
    assert ABOVE_ZERO.p_value(many) == pytest.approx(2.0**-9)
    book = ClaimBook("paper", ClaimSettings())
    outcome, reason = book.decide(few, ABOVE_ZERO, [])
    assert outcome == Outcome.INCONCLUSIVE and "sign test on 5 images" in reason
    assert book.decide(many, ABOVE_ZERO, [])[0] == Outcome.HOLDS


def test_a_bootstrap_p_stops_at_what_its_resamples_resolve() -> None:
    strong = mean_paired(np.random.default_rng(5).normal(1.0, 0.5, 200), ALPHA)
    assert strong.method == Method.PAIRED_BCA
    assert ABOVE_ZERO.p_value(strong) == pytest.approx(2 / (BOOTSTRAP_RESAMPLES + 1))


def test_a_bootstrap_on_few_images_is_widened_to_student_t() -> None:
    """Five values, three of them positive: every resample mean is >= 0 and BCa's lower bound
    lies above 0; Student's t (half-width 2.78 x 16.7 / sqrt 5) does not claim that."""
    values = np.array([40.0, 0.0, 20.0, 0.0, 10.0])
    est = mean_paired(values, ALPHA)
    assert est.method == Method.PAIRED_BCA_T
    half = stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    assert est.low == pytest.approx(14.0 - half) and directional(est) == Outcome.INCONCLUSIVE
    # At 30 images and more the BCa interval stands alone.
    assert mean_paired(np.tile(values, 6), ALPHA).method == Method.PAIRED_BCA
