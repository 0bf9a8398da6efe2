"""Whether a difference between configurations is real: intervals over seeds and paired tests.

A configuration's runs differ only by their seed, so the seeds are the sample. Each
configuration gets a 95% bootstrap interval of its mean test error; each is compared with the
study's baseline on matched seeds (the same seed in both, so that the data order, augmentation
and initialisation draws line up): the mean paired difference, its 95% paired bootstrap interval,
an exact sign-flip permutation test (every assignment of signs to the differences; valid for any
number of seeds, with no normality assumption; with n seeds its smallest two-sided p-value is
2 / 2^n, so 5 seeds cannot reach 0.05 and the interval carries the verdict), and the fraction of
seeds on which the configuration did better. All by `scipy.stats`, never by hand.

A verdict needs at least `MIN_SEEDS` matched seeds; with fewer, it says so.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_SEEDS = 3  # a bootstrap interval of fewer values is not an interval
RESAMPLES = 9999
SEED = 0  # the bootstrap's own draws: the same records give the same interval


def interval_of_mean(values) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean, or None with fewer than MIN_SEEDS values."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_SEEDS:
        return None
    if np.all(values == values[0]):  # no spread: the bootstrap has nothing to resample
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", rng=np.random.default_rng(SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def sign_flip_p_value(differences) -> float:
    """Two-sided p-value of the exact sign-flip permutation test of mean difference 0."""
    differences = np.asarray(differences, dtype=float)
    if not np.any(differences):
        return 1.0
    result = stats.permutation_test((differences,), lambda d, axis: np.mean(d, axis=axis), vectorized=True,
                                    permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
    return float(result.pvalue)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A configuration against the baseline on their matched seeds; differences in error points,
    configuration minus baseline (negative: the configuration has the lower error)."""

    configuration: str
    baseline: str
    seeds: int
    mean_difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    better_fraction: float

    @property
    def verdict(self) -> str:
        if self.seeds < MIN_SEEDS:
            return f"not resolved with {self.seeds} seed{'' if self.seeds == 1 else 's'}"
        if self.ci_high < 0:
            return "lower"
        if self.ci_low > 0:
            return "higher"
        return "not resolved"

    def sentence(self, remedy: str) -> str:
        """The verdict as one sentence of a summary; `remedy` says how to get enough seeds."""
        if self.seeds < MIN_SEEDS:
            return (f"{self.configuration} against {self.baseline}: {self.verdict} "
                    f"(difference {self.mean_difference:+.2f} points): {remedy}.")
        seeds = f"better on {round(self.better_fraction * self.seeds)} of {self.seeds} seeds, p = {self.p_value:.2g}"
        if self.verdict == "not resolved":
            return (f"{self.configuration} against {self.baseline}: not resolved, difference "
                    f"{self.mean_difference:+.2f} points (95% CI {self.ci_low:+.2f} to {self.ci_high:+.2f}, {seeds}).")
        # The interval of the gap in the sentence's direction: lower error is baseline minus configuration.
        low, high = (-self.ci_high, -self.ci_low) if self.verdict == "lower" else (self.ci_low, self.ci_high)
        return (f"{self.configuration} has {abs(self.mean_difference):.2f} points {self.verdict} error than "
                f"{self.baseline} (95% CI {low:.2f} to {high:.2f}, {seeds}).")


def compare(configuration: str, errors: dict, baseline: str, baseline_errors: dict) -> Comparison:
    """`errors` and `baseline_errors` map seed -> test error (points); only seeds in both count."""
    seeds = sorted(set(errors) & set(baseline_errors))
    differences = np.array([errors[s] - baseline_errors[s] for s in seeds], dtype=float)
    interval = interval_of_mean(differences)
    return Comparison(
        configuration=configuration, baseline=baseline, seeds=len(seeds),
        mean_difference=float(differences.mean()) if len(seeds) else math.nan,
        ci_low=interval[0] if interval else None, ci_high=interval[1] if interval else None,
        p_value=sign_flip_p_value(differences) if len(seeds) >= MIN_SEEDS else None,
        better_fraction=float(np.mean(differences < 0)) if len(seeds) else math.nan,
    )
