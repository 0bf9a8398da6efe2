"""The seed statistics: hand-made records with known answers, and the error rates of the verdicts
measured by simulating studies through the very code that decides (`compare_all`)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from ablation import design
from ablation.design import MIN_SEEDS, auto_looks, minimum_detectable, nominal_level, seeds_needed
from ablation.statistics import (
    NO_DIFFERENCE,
    TOO_FEW_SEEDS,
    auto_seeds_needed,
    compare,
    compare_all,
    comparison_pairs,
    interval_of_mean,
)
from benchmarks.verdict_error_rates import simulated_errors, verdict_rate

BASELINE = {42: 6.0, 43: 6.3, 44: 5.8, 45: 6.1, 46: 5.9}


def test_a_difference_on_every_seed_is_resolved_with_the_paired_t_interval():
    better = {seed: error - 0.6 + 0.05 * (seed % 2) for seed, error in BASELINE.items()}  # 0.55-0.6 lower
    result = compare("WRN-28-2", better, "ResNet-110", BASELINE)
    assert result.seeds == 5 and result.better_fraction == 1.0
    assert result.mean_difference == pytest.approx(-0.58)
    d = [better[s] - BASELINE[s] for s in sorted(BASELINE)]
    reference = stats.ttest_rel(list(better.values()), list(BASELINE.values()))
    assert result.p_value == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))
    assert result.adjusted_p_value == pytest.approx(result.p_value)  # a family of one
    assert result.verdict == "lower" and result.unresolved_reason is None
    assert result.std_difference == pytest.approx(np.std(d, ddof=1))
    assert result.sentence() == (f"WRN-28-2 has 0.58 points lower error than ResNet-110 (95% CI {-result.ci_high:.2f} "
                                 f"to {-result.ci_low:.2f}, better on 5 of 5 seeds, p = {result.p_value:.2g}, "
                                 f"adjusted p = {result.p_value:.2g}).")


def test_the_readmes_old_example_is_a_verdict_under_the_t_test_too_and_its_p_value_now_agrees():
    # The README once read "WRN-28-2 has 0.61 points lower error than ResNet-110 (95% CI 0.35 to 0.88,
    # better on 5 of 5 seeds, p = 0.062)": a verdict from a percentile-bootstrap interval, beside an
    # exact sign-flip p-value that could not reject (2/32, its smallest at 5 seeds). Differences that
    # give that summary (the bootstrap over all 5^5 resamples, exactly):
    differences = [-1.05, -0.9, -0.45, -0.35, -0.3]
    resampled = np.mean(list(itertools.product(differences, repeat=5)), axis=1)
    assert np.mean(differences) == pytest.approx(-0.61) and max(differences) < 0
    assert np.round(-np.quantile(resampled, [0.975, 0.025]), 2).tolist() == [0.35, 0.88]
    assert f"{sign_flip_p_value(differences):.2g}" == "0.062"
    # The interval's width bounds the spread (std about 0.34), so the paired t of such a record is about
    # -4 on 4 degrees of freedom: a verdict under the t-test as well, now with a p-value that rejects.
    result = compare("WRN-28-2", {s: 6 + d for s, d in zip(BASELINE, differences, strict=True)}, "ResNet-110",
                     {s: 6.0 for s in BASELINE})
    reference = stats.ttest_1samp(differences, 0)
    assert result.p_value == pytest.approx(reference.pvalue) and result.p_value <= 0.05 < sign_flip_p_value(differences)
    interval = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high)) and result.ci_high < 0
    assert result.verdict == "lower"
    assert result.sentence().startswith(f"WRN-28-2 has 0.61 points lower error than ResNet-110 (95% CI "
                                        f"{-interval.high:.2f} to {-interval.low:.2f}, better on 5 of 5 seeds, p = ")


def test_a_difference_within_the_seed_noise_is_not_resolved_and_says_why():
    noisy = {42: 6.3, 43: 5.9, 44: 6.0, 45: 6.0, 46: 5.9}  # differences +0.3 -0.4 +0.2 -0.1 0.0
    result = compare("WRN-28-2-dropout", noisy, "ResNet-110", BASELINE)
    assert result.ci_low < 0 < result.ci_high and result.verdict == "not resolved"
    d = [noisy[s] - BASELINE[s] for s in sorted(BASELINE)]
    assert result.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue) and result.p_value > 0.5
    assert result.better_fraction == pytest.approx(2 / 5)
    # A zero mean difference would need any number of seeds: none of that size, and what these resolve.
    assert result.unresolved_reason == NO_DIFFERENCE and result.seeds_needed is None
    assert result.minimum_detectable_difference == pytest.approx(
        minimum_detectable(5, result.std_difference, 0.05))
    assert "not resolved, difference +0.00 points (95% CI -0.34 to +0.34" in result.sentence()
    assert f"no difference of {result.minimum_detectable_difference:.2f} points or more" in result.sentence()


def test_a_difference_that_more_seeds_would_resolve_says_too_few_seeds():
    # Differences of mean -0.5 and std 0.5 over 3 seeds: not rejected, 10 seeds would find it.
    errors = {42: 5.5, 43: 6.0 - 0.5 + 0.5, 44: 6.0 - 1.0}
    result = compare("B", errors, "A", {42: 6.0, 43: 6.0, 44: 6.0})
    assert result.verdict == "not resolved" and result.unresolved_reason == TOO_FEW_SEEDS
    # The fewest seeds at which a paired t-test at 0.05 has 80% power for a mean of one std (the noncentral t).
    def power(n):
        critical = stats.t.isf(0.025, n - 1)
        return stats.nct.sf(critical, n - 1, math.sqrt(n)) + stats.nct.cdf(-critical, n - 1, math.sqrt(n))

    assert (result.mean_difference, result.std_difference) == pytest.approx((-0.5, 0.5))
    assert 3 < result.seeds_needed <= 10 and power(result.seeds_needed) >= 0.8 > power(result.seeds_needed - 1)
    assert f"too few seeds to tell: it would need about {result.seeds_needed} seeds" in result.sentence()


def test_one_seed_resolves_nothing_and_says_how_to_get_more():
    result = compare("WRN-28-2", {42: 5.0}, "ResNet-110", BASELINE)
    assert (result.seeds, result.ci_low, result.ci_high, result.p_value) == (1, None, None, None)
    assert result.verdict == "not resolved with 1 seed" and result.unresolved_reason == TOO_FEW_SEEDS
    assert result.sentence("run --seeds 42,43,44,45,46") == ("WRN-28-2 against ResNet-110: not resolved with 1 seed "
                                                             "(difference -1.00 points): run --seeds 42,43,44,45,46.")


def test_only_matched_seeds_are_compared():
    result = compare("B", {42: 5.0, 43: 5.0, 99: 0.0}, "A", {42: 6.0, 43: 6.0, 7: 9.0})
    assert result.seeds == 2 and result.mean_difference == -1.0 and result.verdict == "not resolved with 2 seeds"
    assert math.isnan(compare("B", {1: 5.0}, "A", {2: 5.0}).mean_difference)


def test_interval_of_the_mean_is_students_t():
    low, high = interval_of_mean([1.0, 2.0, 3.0, 4.0, 5.0])
    half = stats.t.ppf(0.975, 4) * np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5)
    assert (low, high) == pytest.approx((3 - half, 3 + half))
    assert interval_of_mean([1.0, 2.0]) is None and interval_of_mean([4.0, 4.0, 4.0]) == (4.0, 4.0)


def test_holm_adjusts_the_family_and_the_interval_is_the_level_each_was_tested_at():
    # Three comparisons with known paired differences: Holm's adjusted p-values by its textbook formula.
    base = {s: 0.0 for s in range(5)}
    differences = {"strong": [-1.0, -1.1, -0.9, -1.05, -0.95], "medium": [-0.3, -0.6, -0.1, -0.5, -0.2],
                   "none": [0.3, -0.2, 0.1, -0.4, 0.2]}
    errors = {"base": base, **{name: dict(enumerate(d)) for name, d in differences.items()}}
    results = {r.configuration: r for r in compare_all(errors, "base")}
    raw = {name: stats.ttest_1samp(d, 0).pvalue for name, d in differences.items()}
    ordered = sorted(raw, key=raw.get)
    expected, running = {}, 0.0
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (3 - rank) * raw[name]))
        expected[name] = running
    for name, result in results.items():
        assert result.p_value == pytest.approx(raw[name])
        assert result.adjusted_p_value == pytest.approx(expected[name])
        assert result.decided == (result.adjusted_p_value <= 0.05)
        # The interval excludes zero exactly where the verdict stands.
        assert result.decided == (result.ci_high < 0 or result.ci_low > 0)
    assert results["strong"].confidence == pytest.approx(1 - 0.05 / 3)  # tested first, at alpha / 3
    assert results["strong"].verdict == "lower" and results["none"].verdict == "not resolved"


def test_the_power_figures_agree_with_the_noncentral_t():
    # 80% power at 5 seeds and level 0.05: the textbook noncentrality (about 3.38 for df = 4).
    detectable = minimum_detectable(5, 1.0, 0.05)
    critical = stats.t.isf(0.025, 4)
    power = stats.nct.sf(critical, 4, detectable * math.sqrt(5)) + stats.nct.cdf(-critical, 4, detectable * math.sqrt(5))
    assert power == pytest.approx(0.8, abs=1e-6)
    # A difference of 1.5 std needs 6 seeds at 0.05 (power 0.71 at 5).
    assert seeds_needed(1.5, 1.0, 0.05) == 6
    assert seeds_needed(0.01, 1.0, 0.05) is None  # beyond the counted 1000


def test_the_looks_of_seeds_auto_and_their_boundary():
    assert auto_looks(10) == (3, 5, 8, 10) and auto_looks(3) == (3,) and auto_looks(5) == (3, 5)
    # More looks cost level: the boundary is below alpha, above Bonferroni over the looks.
    level = nominal_level(0.05, auto_looks(10))
    assert 0.05 / 4 < level < 0.05
    assert nominal_level(0.05, (5,)) == 0.05


# ----------------------------------------------------------------------------------------------
# Simulated studies (benchmarks/verdict_error_rates.py): how often compare_all declares a difference


STUDIES = 2000
# Monte Carlo margin: three binomial standard deviations at 5% over STUDIES studies.
MARGIN = 3 * math.sqrt(0.05 * 0.95 / STUDIES)


@pytest.mark.parametrize("noise", ["normal", "heavy"])
@pytest.mark.parametrize("configurations", [1, 8])
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_without_a_difference_at_most_5_percent_of_studies_declare_one(seeds, configurations, noise):
    rate = verdict_rate(configurations, seeds, noise, studies=STUDIES if configurations == 1 else STUDIES // 2)
    margin = MARGIN if configurations == 1 else 3 * math.sqrt(0.05 * 0.95 / (STUDIES // 2))
    assert rate["any"] <= 0.05 + margin, rate


def test_a_real_difference_of_1_5_standard_deviations_is_found_in_most_studies():
    # Paired differences of std sqrt(2) (two unit-noise runs); a shift of 1.5 of them, lower error.
    rate = verdict_rate(1, 5, "normal", shift=-1.5 * math.sqrt(2))
    assert rate["lower"] >= 0.5 and rate["higher"] == 0, rate  # a paired t-test finds it about 71% of the time


@pytest.mark.parametrize("noise", ["normal", "heavy"])
@pytest.mark.parametrize("configurations", [1, 8])
def test_seeds_auto_keeps_the_rate_over_all_its_looks(configurations, noise):
    # Every look of the design (3, 5, 8, 10 seeds), a comparison closed once decided, replayed by compare_all.
    rate = verdict_rate(configurations, 10, noise, looks=auto_looks(10), studies=STUDIES // 2)
    assert rate["any"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / (STUDIES // 2)), rate


def test_testing_every_look_at_the_plain_level_would_inflate_the_rate():
    # What the boundary is for: the same looks, each at 0.05 with the fixed design's test.
    rng = np.random.default_rng(1)
    crossed, studies = 0, STUDIES // 2
    for _ in range(studies):
        errors = simulated_errors(rng, 1, 10, "normal")
        crossed += any(compare_all({name: {s: e[s] for s in range(42, 42 + n)} for name, e in errors.items()},
                                   "c0")[0].decided for n in auto_looks(10))
    assert crossed / studies > 0.05 + 3 * math.sqrt(0.05 * 0.95 / studies)


def test_seeds_auto_finds_a_real_difference_and_closes_it_early():
    rate = verdict_rate(1, 10, "normal", shift=-1.5 * math.sqrt(2), looks=auto_looks(10), studies=500)
    assert rate["lower"] >= 0.8 and rate["higher"] == 0, rate
    rng = np.random.default_rng(2)
    errors = simulated_errors(rng, 1, 10, "normal", shift=-5 * math.sqrt(2))
    result = compare_all(errors, "c0", looks=[list(range(42, 42 + n)) for n in auto_looks(10)])[0]
    assert result.verdict == "lower" and result.seeds < 10  # decided before the last look


def test_a_look_not_complete_yet_is_not_tested():
    rng = np.random.default_rng(3)
    errors = simulated_errors(rng, 2, 5, "normal", shift=-20.0)
    del errors["c2"][44]  # c2's first look (42, 43, 44) is not in yet
    looks = [list(range(42, 42 + n)) for n in auto_looks(10)]
    results = {r.configuration: r for r in compare_all(errors, "c0", looks=looks)}
    assert results["c1"].verdict == "lower" and results["c1"].seeds == 3
    # What its seeds hold so far (42, 43, 45, 46), untested.
    assert results["c2"].verdict == "not resolved with 4 seeds" and results["c2"].p_value is None
    assert results["c2"].sentence() == (f"c2 against c0: not resolved with 4 seeds (difference "
                                        f"{results['c2'].mean_difference:+.2f} points): run more seeds (--seeds auto).")


def test_fewer_than_three_seeds_are_left_out_of_the_family():
    errors = {"a": {1: 0.0, 2: 0.0, 3: 0.0}, "b": {1: -1.0, 2: -1.1, 3: -0.9}, "c": {1: 5.0}}
    results = {r.configuration: r for r in compare_all(errors, "a")}
    assert results["c"].verdict == "not resolved with 1 seed"
    assert results["b"].confidence == pytest.approx(0.95)  # a family of one: c was not tested
    assert MIN_SEEDS == 3


def sign_flip_p_value(differences) -> float:
    """The exact two-sided sign-flip (randomisation) p-value of a mean difference of 0, by scipy: every
    one of the 2^n assignments of signs to the differences, equally likely under the null."""
    return float(stats.permutation_test((np.asarray(differences, dtype=float),), lambda d, axis: np.mean(d, axis=axis),
                                        vectorized=True, permutation_type="samples", n_resamples=np.inf,
                                        alternative="two-sided").pvalue)


def test_differences_equal_but_for_rounding_are_a_difference_without_spread(recwarn):
    # 0.6 points lower on every seed, but 5.4 - 6.0 and 5.1 - 5.7 differ in their last bits. A t-test
    # of those bits finds an enormous t (and scipy warns of catastrophic cancellation); without spread
    # the comparison is the sign-flip test's instead: 3 equal differences, p = 2/8, no verdict.
    errors, baseline = {0: 5.4, 1: 5.1, 2: 5.2}, {0: 6.0, 1: 5.7, 2: 5.8}
    d = [errors[s] - baseline[s] for s in baseline]
    assert len(set(d)) == 2  # not exactly equal
    with pytest.warns(RuntimeWarning, match="catastrophic cancellation"):
        assert stats.ttest_1samp(d, 0).pvalue < 1e-20
    result = compare("C", errors, "B", baseline)
    assert result.std_difference == 0.0 and result.p_value == sign_flip_p_value([-0.6] * 3) == 0.25
    assert result.verdict == "not resolved" and result.ci_low == result.ci_high == result.mean_difference
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_three_seeds_with_exactly_equal_differences_get_the_sign_flip_p_of_a_quarter_and_no_verdict():
    # 0.5 points below the baseline on every seed, in binary fractions: the differences are exactly
    # equal, so the paired t is undefined (no spread). Every seed's sign alike is the most extreme of
    # the 2^3 equally likely assignments: two-sided p = 2/8, no verdict.
    baseline = {42: 6.0, 43: 6.5, 44: 5.75}
    errors = {seed: error - 0.5 for seed, error in baseline.items()}
    d = [errors[s] - baseline[s] for s in baseline]
    assert d == [-0.5, -0.5, -0.5]
    result = compare("C", errors, "B", baseline)
    assert result.p_value == sign_flip_p_value(d) == 0.25 and result.adjusted_p_value == 0.25
    assert result.verdict == "not resolved" and not result.decided
    assert result.std_difference == 0.0 and (result.ci_low, result.ci_high) == (-0.5, -0.5)  # the one value
    # The same difference on more seeds: a verdict at the first count whose sign-flip p reaches 0.05 (6: 2/64).
    needed = min(n for n in range(MIN_SEEDS, 20) if sign_flip_p_value([-0.5] * n) <= 0.05)
    assert result.unresolved_reason == TOO_FEW_SEEDS and result.seeds_needed == needed
    assert result.sentence() == ("C against B: not resolved, difference -0.50 points on each of 3 seeds (no spread: "
                                 "exact sign-flip p = 0.25, adjusted p = 0.25); too few seeds to tell: the same "
                                 f"difference would need {needed} seeds.")


def test_eight_seeds_with_exactly_equal_differences_are_a_verdict_in_a_family_of_one():
    # Test errors quantised by a test set of 1,017 images: one image fewer wrong on every seed, -100/1017
    # points each (equal but for the last bits of the division). A verdict exactly where the sign-flip
    # p-value, 2 / 2^n, is at most 0.05: from 6 seeds on.
    wrong = [100, 97, 103, 99, 101, 98, 102, 100]
    for n in range(MIN_SEEDS, len(wrong) + 1):
        baseline = {seed: 100 * k / 1017 for seed, k in enumerate(wrong[:n])}
        errors = {seed: 100 * (k - 1) / 1017 for seed, k in enumerate(wrong[:n])}
        d = [errors[s] - baseline[s] for s in baseline]
        result = compare("C", errors, "B", baseline)
        assert result.p_value == pytest.approx(sign_flip_p_value(d)) and result.std_difference == 0.0
        assert result.decided == (result.p_value <= 0.05) == (n >= 6), n
    assert result.p_value == 2 / 256 and result.adjusted_p_value == result.p_value and result.verdict == "lower"
    assert result.confidence == 0.95 and result.unresolved_reason is None
    assert result.sentence() == ("C has 0.10 points lower error than B on each of 8 seeds (no spread: exact sign-flip "
                                 "p = 0.0078, adjusted p = 0.0078).")


def test_seeds_auto_closes_exactly_equal_differences_at_the_first_look_their_sign_flip_p_reaches():
    # The sign-flip p-value goes through the looks like a t-test's: 0.25, 0.0625, 0.0078 at 3, 5, 8 seeds
    # against the looks' boundary (about 0.016).
    sequence, looks = list(range(42, 52)), auto_looks(10)
    errors = {"B": {s: 6.0 for s in sequence}, "C": {s: 5.5 for s in sequence}}
    first = next(n for n in looks if sign_flip_p_value([-0.5] * n) <= nominal_level(0.05, looks))
    result = compare_all(errors, "B", looks=[sequence[:n] for n in looks])[0]
    assert result.verdict == "lower" and result.seeds == first < looks[-1]
    assert result.p_value == sign_flip_p_value([-0.5] * first) and result.adjusted_p_value <= 0.05
    # With the looks before it in, the comparison is open and asks for the seeds of the next one.
    before = {name: {s: e for s, e in seeds.items() if s in sequence[:first - 1]} for name, seeds in errors.items()}
    assert auto_seeds_needed(before, "B", sequence, looks) == {"C": sequence[:first], "B": sequence[:first]}


def test_differences_all_zero_are_p_one_and_no_difference():
    # The same errors on every seed: nothing to test, by t or by signs.
    result = compare("C", dict(BASELINE), "B", BASELINE)
    assert result.p_value == result.adjusted_p_value == 1.0 and result.verdict == "not resolved"
    assert (result.ci_low, result.ci_high) == (0.0, 0.0) and not result.without_spread
    assert result.unresolved_reason == NO_DIFFERENCE and result.seeds_needed is None


def test_a_one_look_design_with_a_look_not_complete_yet_decides_the_others():
    # --seeds auto --max-seeds 3 while a run is still training: c2 has two of its three seeds.
    errors = {"c0": {42: 0.0, 43: 0.0, 44: 0.0}, "c1": {42: -5.0, 43: -5.2, 44: -4.9}, "c2": {42: 1.0, 43: 2.0}}
    results = {r.configuration: r for r in compare_all(errors, "c0", looks=[[42, 43, 44]])}
    assert results["c1"].verdict == "lower" and results["c1"].confidence == pytest.approx(1 - 0.05 / 2)
    # c2 counts in the family, so c1 is tested at alpha / 2: its adjusted p is twice its p (to the bisection's 2^-30).
    assert 2 * results["c1"].p_value <= results["c1"].adjusted_p_value <= 2 * results["c1"].p_value + 2**-30
    assert results["c2"].verdict == "not resolved with 2 seeds"


# ----------------------------------------------------------------------------------------------
# Cumulative studies: each configuration against the baseline and against the one before it, one family


def test_a_cumulative_family_is_each_against_the_baseline_and_the_one_before_without_a_pair_twice():
    names = ["c0", "c1", "c2", "c3"]
    assert comparison_pairs(names, "c0") == [("c1", "c0"), ("c2", "c0"), ("c3", "c0")]
    # c1's step from c0 is its comparison with the baseline: not a second pair.
    assert comparison_pairs(names, "c0", cumulative=True) == [("c1", "c0"), ("c2", "c0"), ("c2", "c1"), ("c3", "c0"),
                                                               ("c3", "c2")]
    # A baseline declared inside the chain: the steps to it and from it are its pairs already.
    assert comparison_pairs(names, "c1", cumulative=True) == [("c0", "c1"), ("c2", "c1"), ("c3", "c1"), ("c3", "c2")]


def test_the_steps_and_the_comparisons_with_the_baseline_are_one_holm_family():
    # Each configuration 1 point below the one before, on every seed: five comparisons, the one of
    # smallest p-value tested at alpha / 5, and each configuration on its own matched seeds.
    noise = [0.1, -0.2, 0.15, 0.0, -0.05]
    errors = {f"c{c}": {s: 6.0 - c + c * noise[s] for s in range(5)} for c in range(4)}
    del errors["c3"][4]  # c3's pairs have seeds 0-3, the others 0-4
    results = compare_all(errors, "c0", cumulative=True)
    assert [(r.configuration, r.reference) for r in results] == comparison_pairs(errors, "c0", cumulative=True)
    assert max(r.confidence for r in results) == pytest.approx(1 - 0.05 / 5)
    # Holm's adjusted p-values over all five: the running maximum of (5 - rank) x p in increasing order.
    running = 0.0
    for rank, result in enumerate(sorted(results, key=lambda r: r.p_value)):
        running = max(running, min(1.0, (5 - rank) * result.p_value))
        assert result.adjusted_p_value == pytest.approx(running)
        assert result.seeds == (4 if "c3" in (result.configuration, result.reference) else 5)
    step = next(r for r in results if (r.configuration, r.reference) == ("c2", "c1"))
    assert step.mean_difference == pytest.approx(-1 + np.mean(noise))  # c2 - c1 = -1 + noise on each seed
    assert step.verdict == "lower" and step.sentence().startswith("c2 has ") and " error than c1 (" in step.sentence()


@pytest.mark.parametrize("noise", ["normal", "heavy"])
@pytest.mark.parametrize("seeds", [3, 10])
def test_a_cumulative_study_without_a_difference_keeps_the_rate_over_all_its_comparisons(seeds, noise):
    # Five equal configurations: 4 comparisons with the baseline and 3 steps, each pair sharing its seeds' offsets.
    rate = verdict_rate(4, seeds, noise, cumulative=True, studies=STUDIES // 2)
    assert rate["any"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / (STUDIES // 2)), rate


def test_seeds_auto_keeps_the_rate_of_a_cumulative_study_over_all_its_looks():
    rate = verdict_rate(4, 10, "normal", cumulative=True, looks=auto_looks(10), studies=STUDIES // 2)
    assert rate["any"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / (STUDIES // 2)), rate


def test_a_real_step_between_two_neighbours_is_found_by_the_pair_against_the_one_before():
    # c3 adds a change worth 1.5 standard deviations of the paired differences, which c4 keeps: the
    # step c3 against c2 is found; the steps that add nothing stay within the family's 5%.
    rng, studies, found, false = np.random.default_rng(4), 500, 0, 0
    for _ in range(studies):
        errors = simulated_errors(rng, 4, 10, "normal")
        for name in ("c3", "c4"):
            errors[name] = {s: e - 1.5 * math.sqrt(2) for s, e in errors[name].items()}
        results = {(r.configuration, r.reference): r for r in compare_all(errors, "c0", cumulative=True)}
        found += results[("c3", "c2")].verdict == "lower"
        false += any(results[pair].decided for pair in [("c1", "c0"), ("c2", "c0"), ("c2", "c1"), ("c4", "c3")])
    assert found / studies >= 0.5, found / studies
    assert false / studies <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / studies), false / studies


def test_seeds_auto_gives_a_step_left_open_its_seeds_on_both_sides():
    # c1 and c2 are far below the baseline from the first look, but c2 against c1 is open: the next
    # look's seeds go to c2 and c1, none to the baseline, whose comparisons are all decided. (Each with
    # some spread: the same difference on all 3 seeds would be the sign-flip test's p = 0.25, open.)
    sequence, looks = list(range(42, 52)), auto_looks(10)
    errors = {"c0": {42: 6.0, 43: 6.2, 44: 5.9}, "c1": {42: 1.0, 43: 1.3, 44: 0.8},
              "c2": {42: 1.3, 43: 0.8, 44: 1.1}}
    assert auto_seeds_needed(errors, "c0", sequence, looks) == {}
    assert auto_seeds_needed(errors, "c0", sequence, looks, cumulative=True) == {"c2": sequence[:5],
                                                                                 "c1": sequence[:5]}


def test_the_null_studies_drawn_in_chunks_are_the_draws_made_at_once(monkeypatch):
    # Memory stays flat whatever --max-seeds is (10000 took the machine's 24 GB), and the boundary of
    # every design is the one its draws gave before.
    looks = auto_looks(12)
    monkeypatch.setattr(design, "NULL_STUDIES", 5_000)
    rng = np.random.default_rng(design.NULL_SEED)
    differences = rng.standard_normal((5_000, looks[-1]))
    smallest = np.ones(5_000)
    for n in looks:
        t = differences[:, :n].mean(axis=1) / (differences[:, :n].std(axis=1, ddof=1) / np.sqrt(n))
        smallest = np.minimum(smallest, 2 * stats.t.sf(np.abs(t), n - 1))
    monkeypatch.setattr(design, "NULL_CHUNK_VALUES", 12 * 777)  # 777 studies per chunk, the last one shorter
    assert np.array_equal(design._null_min_p.__wrapped__(looks), np.sort(smallest))
