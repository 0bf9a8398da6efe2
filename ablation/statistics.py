"""Whether a difference between configurations is real: paired t-tests over seeds, Holm over a
study, group-sequential looks for `--seeds auto`, and how many seeds a question needs.

A configuration's runs differ only by their seed, so the seeds are the sample. Each is compared
with the study's baseline on matched seeds (the same seed in both: the data order, augmentation
and initialisation draws line up), by Student's t on the paired differences
(`scipy.stats.ttest_1samp`, whose interval holds its coverage at 3 to 10 seeds where a bootstrap's
does not: 74% at 3 seeds for a nominal 95%). A study's comparisons with its baseline are one
family: Holm's step-down keeps the chance of any false verdict at `ALPHA`, and a verdict, "lower"
or "higher", stands only where the adjusted test rejects. The interval printed beside it is the
t-interval at the level that comparison was tested at (Holm's alpha / r), so an interval that
excludes zero and a verdict always go together (but for a difference without spread, below).
The looks of `--seeds auto` and how many seeds a difference needs: `ablation.design`.

A difference without spread, the same non-zero difference on every matched seed (test errors are
quantised: on a test set of 1,017 images, one image fewer wrong on every seed is 0.098 points on
each), has no paired t: its standard error is zero, and the limit of t (p = 0) would be a verdict
at any number of seeds. It gets the exact two-sided sign-flip p-value instead: without a
difference each seed's sign is + or - with probability 1/2, and n differences of one sign and one
size is the most extreme of the 2^n outcomes, so p = 2 / 2^n (0.25 at 3 seeds; a verdict in a
family of one from 6 seeds on, 2 / 64 <= 0.05). That is the randomisation test that the t-test
approximates, here exact; its p-value goes through Holm and the looks like any other. Its interval
is the one value, which excludes zero whether or not the test rejects; the sentence says "on each of
n seeds" instead, and the seeds needed are where 2 / 2^n reaches the comparison's level. All
differences zero: p = 1, no difference.

A cumulative study (each configuration adds one change to the one before) compares each
configuration with the baseline and with the one before it: all those pairs are one family, so
Holm's step-down and the looks keep the chance of any false verdict at `ALPHA` over them all, and
each is tested at a stricter level than with the baseline alone.

"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from ablation.design import (
    MAX_SEEDS,
    MIN_SEEDS,
    MOST_SEEDS_COUNTED,
    minimum_detectable,
    nominal_level,
    seeds_needed,
)

ALPHA = 0.05  # family-wise: the chance of any false verdict in a study
CONFIDENCE = 1 - ALPHA  # of a configuration's own interval of its mean

LOWER, HIGHER, NOT_RESOLVED = "lower", "higher", "not resolved"
TOO_FEW_SEEDS, NO_DIFFERENCE = "too few seeds to tell", "no difference of that size"

Pair = tuple[str, str]  # (configuration, reference): one comparison, the configuration's errors minus the reference's


def interval_of_mean(values, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student's t interval of the mean, or None with fewer than MIN_SEEDS values."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_SEEDS:
        return None
    if _no_spread(values):  # the interval is the value
        return float(values.mean()), float(values.mean())
    interval = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(interval.low), float(interval.high)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A configuration against its reference (the baseline, or in a cumulative study also the
    configuration before it) on their matched seeds; differences in error points, configuration
    minus reference (negative: the configuration has the lower error)."""

    configuration: str
    reference: str
    seeds: int
    mean_difference: float
    std_difference: float | None  # of the paired differences
    ci_low: float | None  # Student's t interval of the mean difference at `confidence` (no spread: the one value)
    ci_high: float | None
    confidence: float | None  # 1 - the level the comparison was tested at (Holm's, the looks')
    p_value: float | None  # the paired t-test's, on its own (no spread: the exact sign-flip test's)
    adjusted_p_value: float | None  # over the study's comparisons (and looks): the smallest family-wise
    # level at which the verdict would stand
    better_fraction: float
    verdict: str  # "lower", "higher", "not resolved", "not resolved with N seeds"
    minimum_detectable_difference: float | None  # what these seeds resolve at 80% power (no spread: None)
    seeds_needed: int | None  # what the observed difference would need (None: > MOST_SEEDS_COUNTED)
    unresolved_reason: str | None  # TOO_FEW_SEEDS or NO_DIFFERENCE where not resolved

    @property
    def decided(self) -> bool:
        return self.verdict in (LOWER, HIGHER)

    @property
    def without_spread(self) -> bool:
        """Tested, with the same non-zero difference on every seed: by the exact sign-flip test."""
        return self.p_value is not None and self.std_difference == 0 and self.mean_difference != 0

    def sentence(self, remedy: str = "run more seeds (--seeds auto)") -> str:
        """The verdict as one sentence of a summary; `remedy` says how to get enough seeds."""
        versus = f"{self.configuration} against {self.reference}"
        if self.p_value is None:  # untested: fewer than MIN_SEEDS, or no look of --seeds auto complete yet
            difference = "" if math.isnan(self.mean_difference) else f" (difference {self.mean_difference:+.2f} points)"
            return f"{versus}: {self.verdict}{difference}: {remedy}."
        level = f"{100 * self.confidence:.4g}% CI"
        tests = (f"better on {round(self.better_fraction * self.seeds)} of {self.seeds} seeds, "
                 f"p = {self.p_value:.2g}, adjusted p = {self.adjusted_p_value:.2g}")
        more = f"more than {MOST_SEEDS_COUNTED}" if self.seeds_needed is None else None
        if self.without_spread:  # no interval to print (it is the one value) and no t-test's power
            each = (f"on each of {self.seeds} seeds (no spread: exact sign-flip p = {self.p_value:.2g}, "
                    f"adjusted p = {self.adjusted_p_value:.2g})")
            if self.decided:
                return (f"{self.configuration} has {abs(self.mean_difference):.2f} points {self.verdict} error than "
                        f"{self.reference} {each}.")
            return (f"{versus}: not resolved, difference {self.mean_difference:+.2f} points {each}; too few seeds "
                    f"to tell: the same difference would need {more or self.seeds_needed} seeds.")
        if self.decided:
            # The interval of the gap in the sentence's direction: lower error is reference minus configuration.
            low, high = (-self.ci_high, -self.ci_low) if self.verdict == LOWER else (self.ci_low, self.ci_high)
            return (f"{self.configuration} has {abs(self.mean_difference):.2f} points {self.verdict} error than "
                    f"{self.reference} ({level} {low:.2f} to {high:.2f}, {tests}).")
        needed = f"{more or f'about {self.seeds_needed}'} seeds"
        resolvable = f"{self.minimum_detectable_difference:.2f} points"
        why = (f"too few seeds to tell: it would need {needed} (these {self.seeds} resolve {resolvable} or more)"
               if self.unresolved_reason == TOO_FEW_SEEDS else
               f"no difference of {resolvable} or more (the smallest these {self.seeds} seeds resolve); one of "
               f"{abs(self.mean_difference):.2f} points would need {needed}")
        return (f"{versus}: not resolved, difference {self.mean_difference:+.2f} points ({level} {self.ci_low:+.2f} "
                f"to {self.ci_high:+.2f}, {tests}); {why}.")


def compare(configuration: str, errors: Mapping, baseline: str, baseline_errors: Mapping) -> Comparison:
    """One configuration against the baseline: `errors` and `baseline_errors` map seed -> test
    error (points); only seeds in both count. A study of one comparison."""
    return compare_all({baseline: baseline_errors, configuration: errors}, baseline)[0]


def comparison_pairs(configurations: Iterable[str], baseline: str, *, cumulative: bool = False,
                     versus: Mapping[str, str] | None = None) -> list[Pair]:
    """A study's family of comparisons: every configuration against `baseline`, or against its own
    reference in `versus` (configuration -> reference; a reference so named is a baseline of its own,
    not compared with `baseline`); in a cumulative study (`configurations` in order, each adding one
    change to the one before) each also against the one before it, unless that pair is already in."""
    names, versus = list(configurations), dict(versus or {})
    own_baselines = set(versus.values()) - set(versus)
    pairs = []
    for index, name in enumerate(names):
        before = names[index - 1] if index else None
        reference = versus.get(name, baseline)
        if name != reference and name not in own_baselines:
            pairs.append((name, reference))
        # A step from the reference is the pair above; a step to it, that pair reversed.
        if cumulative and before is not None and reference not in (name, before):
            pairs.append((name, before))
    return pairs


def compare_all(errors_by_configuration: Mapping[str, Mapping], baseline: str, *, cumulative: bool = False,
                versus: Mapping[str, str] | None = None, alpha: float = ALPHA,
                looks: Sequence[Sequence[int]] | None = None, max_seeds: int = MAX_SEEDS) -> list[Comparison]:
    """Every configuration against `baseline` (and, if `cumulative`, against the one before it in
    the mapping's order), as one family: errors map configuration -> {seed: test error in
    points}. See `compare_pairs`."""
    pairs = comparison_pairs(errors_by_configuration, baseline, cumulative=cumulative, versus=versus)
    return compare_pairs(errors_by_configuration, pairs, alpha=alpha, looks=looks, max_seeds=max_seeds)


def compare_pairs(errors_by_configuration: Mapping[str, Mapping], pairs: Sequence[Pair], *, alpha: float = ALPHA,
                  looks: Sequence[Sequence[int]] | None = None, max_seeds: int = MAX_SEEDS) -> list[Comparison]:
    """Each (configuration, reference) pair on its own matched seeds, all pairs one family. Without
    `looks`, all matched seeds once, Holm over the pairs that have MIN_SEEDS. With `looks` (the
    seeds of each look, each one's seeds a prefix of the next's: `--seeds auto`), the
    group-sequential procedure over every pair, replayed look by look on the seeds each has; a pair
    is tested at a look only once all its seeds are in."""
    def errors(name):
        return errors_by_configuration.get(name, {})

    matched = {pair: [s for s in sorted(errors(pair[0])) if s in errors(pair[1])] for pair in pairs}
    if looks is None:
        looks = [None]
        family = [pair for pair in pairs if len(matched[pair]) >= MIN_SEEDS]
    else:
        family = list(pairs)  # every planned comparison, whether its first look is in yet or not

    def differences(pair, look):
        configuration, reference = errors(pair[0]), errors(pair[1])
        seeds = matched[pair] if look is None else [s for s in look if s in configuration and s in reference]
        if look is not None and len(seeds) < len(look):
            return None  # this look is not complete for this comparison
        return np.array([configuration[s] - reference[s] for s in seeds], dtype=float)

    design = tuple(len(look) for look in looks) if looks[0] is not None else (0,)
    tested = {pair: [differences(pair, look) for look in looks] for pair in family}
    p_values = {pair: [_p_value(d) if d is not None and len(d) >= MIN_SEEDS else None for d in per_look]
                for pair, per_look in tested.items()}
    decisions = _decide(p_values, alpha, design)
    # The fixed design: Holm's closed form. Looks: the procedure's own, every planned comparison in
    # its family (one whose first look is not in yet too), by bisection.
    adjusted = (_holm_adjusted({n: p[0] for n, p in p_values.items()}) if design == (0,) else
                {n: _smallest_rejecting_alpha(p_values, n, design) for n in family})
    out = []
    for pair in pairs:
        if pair not in p_values:  # too few matched seeds for the fixed design
            out.append(_unresolved_comparison(pair, differences(pair, None), max_seeds))
            continue
        look, level = decisions[pair]
        d = tested[pair][look] if look is not None else None
        if d is None:  # no look of it complete yet: what its seeds hold so far, undecided
            out.append(_unresolved_comparison(pair, differences(pair, None), max_seeds))
            continue
        out.append(_comparison(pair, d, level, p_values[pair][look], adjusted[pair],
                               rejected=p_values[pair][look] <= level, max_seeds=max_seeds))
    return out


def _p_value(differences: np.ndarray) -> float:
    """The paired t-test's two-sided p-value; all differences zero, 1; the same non-zero difference
    on every seed (no spread, no t statistic), the exact sign-flip test's (see the module's doc)."""
    if not np.any(differences):
        return 1.0
    if _no_spread(differences):
        return _sign_flip_p_value(len(differences))
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def _without_spread(differences: np.ndarray) -> bool:
    """The same non-zero difference on every seed: tested by the sign-flip test, not by t."""
    return bool(np.any(differences)) and _no_spread(differences)


def _sign_flip_p_value(seeds: int) -> float:
    """The exact two-sided sign-flip p-value of `seeds` differences of one sign and one size: each
    of the 2^n sign assignments equally likely without a difference, and these the most extreme
    two (all +, all -)."""
    return min(1.0, 2 * 0.5**seeds)


def _sign_flip_seeds_needed(level: float) -> int | None:
    """The fewest seeds (at least MIN_SEEDS) on which the same difference on every seed reaches
    `level` by the sign-flip test; None if more than MOST_SEEDS_COUNTED."""
    seeds = MIN_SEEDS
    while _sign_flip_p_value(seeds) > level:
        seeds += 1
        if seeds > MOST_SEEDS_COUNTED:
            return None
    return seeds


def _no_spread(values: np.ndarray) -> bool:
    """All equal, but for floating-point noise (5.4 - 6.0 and 5.1 - 5.7 differ in the last bits),
    where the t statistic is meaningless and scipy warns of catastrophic cancellation."""
    return float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.abs(values).max()))


def _decide(p_values: dict, alpha: float, design: tuple) -> dict:
    """Per comparison, (the look it was last tested at or None, the nominal level it was tested
    at there): Holm's step-down at each look in turn, a rejected comparison closed and its share
    of alpha passed on to the open ones (the graphical Holm)."""
    rejected, decisions = set(), {name: (None, None) for name in p_values}
    looks = range(len(design))
    for k in looks:
        while True:
            open_ = [n for n in p_values if n not in rejected]
            if not open_:
                return decisions
            level = alpha / len(open_) if design == (0,) else nominal_level(alpha / len(open_), design)
            newly = []
            for name in open_:
                p = p_values[name][k]
                if p is not None:
                    decisions[name] = (k, level)
                    if p <= level:
                        newly.append(name)
            if not newly:
                break
            rejected.update(newly)
    return decisions


def _holm_adjusted(p_values: dict) -> dict:
    """Holm's adjusted p-values: the running maximum of (m - rank) x p in increasing order."""
    ordered = sorted(p_values, key=lambda name: p_values[name])
    adjusted, running = {}, 0.0
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted


def _smallest_rejecting_alpha(p_values: dict, pair: Pair, design: tuple) -> float | None:
    """The adjusted p-value over looks: the smallest family-wise alpha at which the procedure
    rejects `pair` (it rejects more as alpha grows), by bisection."""
    if all(p is None for p in p_values[pair]):
        return None

    def rejects(alpha):
        look, level = _decide(p_values, alpha, design)[pair]
        return look is not None and p_values[pair][look] <= level

    if not rejects(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (low, middle) if rejects(middle) else (middle, high)
    return high


def _comparison(pair: Pair, d, level, p_value, adjusted_p_value, *, rejected, max_seeds) -> Comparison:
    mean, std = float(d.mean()), 0.0 if _no_spread(d) else float(d.std(ddof=1))
    low, high = interval_of_mean(d, 1 - level)  # without spread, the one value
    verdict = (LOWER if mean < 0 else HIGHER) if rejected else NOT_RESOLVED
    if _without_spread(d):
        # The sign-flip test's: no t power figure; the same difference on more seeds would tell, however many.
        detectable, needed = None, _sign_flip_seeds_needed(level)
        reason = None if rejected else TOO_FEW_SEEDS
    else:
        detectable, needed = minimum_detectable(len(d), std, level), seeds_needed(mean, std, level)
        reason = None if rejected else (TOO_FEW_SEEDS if needed is not None and needed <= max_seeds else NO_DIFFERENCE)
    return Comparison(configuration=pair[0], reference=pair[1], seeds=len(d), mean_difference=mean, std_difference=std,
                      ci_low=low, ci_high=high, confidence=1 - level, p_value=p_value,
                      adjusted_p_value=adjusted_p_value, better_fraction=float(np.mean(d < 0)), verdict=verdict,
                      minimum_detectable_difference=detectable, seeds_needed=needed, unresolved_reason=reason)


def _unresolved_comparison(pair: Pair, d, max_seeds) -> Comparison:
    """Fewer than MIN_SEEDS matched seeds (or no look complete yet): no test, what there is."""
    n = len(d)
    std = float(d.std(ddof=1)) if n > 1 else None
    return Comparison(configuration=pair[0], reference=pair[1], seeds=n,
                      mean_difference=float(d.mean()) if n else math.nan, std_difference=std, ci_low=None,
                      ci_high=None, confidence=None, p_value=None, adjusted_p_value=None,
                      better_fraction=float(np.mean(d < 0)) if n else math.nan,
                      verdict=f"{NOT_RESOLVED} with {n} seed{'' if n == 1 else 's'}",
                      minimum_detectable_difference=None, seeds_needed=None, unresolved_reason=TOO_FEW_SEEDS)


def auto_seeds_needed(errors_by_configuration: Mapping[str, Mapping], baseline: str, sequence: Sequence[int],
                      looks: Sequence[int], *, cumulative: bool = False,
                      versus: Mapping[str, str] | None = None) -> dict[str, list[int]]:
    """The seeds each configuration needs for its next look under `--seeds auto`: every open
    comparison its first look not yet complete, on both sides (the baseline, and in a cumulative
    study the one before, every seed any of its open comparisons uses). Empty when every
    comparison is decided or has had its last look (the budget is spent)."""
    results = compare_all(errors_by_configuration, baseline, cumulative=cumulative, versus=versus,
                          looks=[list(sequence[:n]) for n in looks], max_seeds=looks[-1])
    asked = {}  # pair -> the seeds of its next look
    for result in results:
        if result.decided:
            continue
        have, reference = (errors_by_configuration.get(name, {}) for name in (result.configuration, result.reference))
        incomplete = [n for n in looks if not all(s in have and s in reference for s in sequence[:n])]
        if incomplete:
            asked[(result.configuration, result.reference)] = list(sequence[:incomplete[0]])
    # The configurations first, then the references: the order in which a round's runs are listed and trained.
    names = dict.fromkeys([configuration for configuration, _ in asked] + [reference for _, reference in asked])
    return {name: max((seeds for pair, seeds in asked.items() if name in pair), key=len) for name in names}
