"""The seed statistics on hand-made records with known answers."""

from __future__ import annotations

import math

import pytest

from ablation.statistics import compare, interval_of_mean, sign_flip_p_value

BASELINE = {42: 6.0, 43: 6.3, 44: 5.8, 45: 6.1, 46: 5.9}


def test_a_difference_on_every_seed_is_resolved_with_its_interval():
    better = {seed: error - 0.6 + 0.05 * (seed % 2) for seed, error in BASELINE.items()}  # 0.55-0.6 lower
    result = compare("WRN-28-2", better, "ResNet-110", BASELINE)
    assert result.seeds == 5 and result.better_fraction == 1.0
    assert result.mean_difference == pytest.approx(-0.58)
    assert -0.6 <= result.ci_low <= result.ci_high <= -0.55  # inside the differences' range
    assert result.p_value == pytest.approx(2 / 32)  # the exact test's floor with 5 seeds: all signs flipped
    assert result.verdict == "lower"
    assert result.sentence("run --seeds 42,43,44,45,46") == ("WRN-28-2 has 0.58 points lower error than ResNet-110 (95% CI "
                                                 f"{-result.ci_high:.2f} to {-result.ci_low:.2f}, better on 5 of 5 "
                                                 "seeds, p = 0.062).")


def test_a_difference_within_the_seed_noise_is_not_resolved():
    noisy = {42: 6.3, 43: 5.9, 44: 6.0, 45: 6.0, 46: 5.9}  # differences +0.3 -0.4 +0.2 -0.1 0.0
    result = compare("WRN-28-2-dropout", noisy, "ResNet-110", BASELINE)
    assert result.ci_low < 0 < result.ci_high and result.verdict == "not resolved"
    assert result.p_value > 0.5 and result.better_fraction == pytest.approx(2 / 5)
    assert "not resolved, difference +0.00 points" in result.sentence("run --seeds 42,43,44,45,46")


def test_one_seed_resolves_nothing_and_says_how_many_to_run():
    result = compare("WRN-28-2", {42: 5.0}, "ResNet-110", BASELINE)
    assert (result.seeds, result.ci_low, result.ci_high, result.p_value) == (1, None, None, None)
    assert result.verdict == "not resolved with 1 seed"
    assert result.sentence("run --seeds 42,43,44,45,46") == ("WRN-28-2 against ResNet-110: not resolved with 1 seed "
                                                 "(difference -1.00 points): run --seeds 42,43,44,45,46.")


def test_only_matched_seeds_are_compared():
    result = compare("B", {42: 5.0, 43: 5.0, 99: 0.0}, "A", {42: 6.0, 43: 6.0, 7: 9.0})
    assert result.seeds == 2 and result.mean_difference == -1.0 and result.verdict == "not resolved with 2 seeds"
    assert math.isnan(compare("B", {1: 5.0}, "A", {2: 5.0}).mean_difference)


def test_interval_of_the_mean_and_the_exact_test():
    low, high = interval_of_mean([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 <= low < 3.0 < high <= 5.0
    assert interval_of_mean([1.0, 2.0]) is None and interval_of_mean([4.0, 4.0, 4.0]) == (4.0, 4.0)
    assert sign_flip_p_value([-1.0, -1.0, -1.0]) == pytest.approx(2 / 8)
    assert sign_flip_p_value([0.0, 0.0, 0.0]) == 1.0
