"""How many seeds a question needs: the looks of `--seeds auto` and their boundary, and the power of
the paired t-test (`ablation.statistics` decides; this is its design).

`--seeds auto` looks at the data after 3 seeds and again in rounds (`auto_looks`) and adds seeds
only where a comparison is open. Looking several times costs error rate; the looks are a
group-sequential design in the graphical form of Holm (Maurer and Bretz 2013): each comparison
is tested at every look against a constant nominal level (Pocock's boundary) chosen so that,
without a difference, the chance of crossing at any of the planned looks is its share of ALPHA,
and a rejected comparison passes its share on to the open ones. The boundary is the quantile of
the smallest p-value over the looks of null studies of normal seed noise, simulated once per
design (`NULL_STUDIES`, a fixed seed). `tests/test_statistics.py` measures the family-wise error
of both designs by simulating studies through `compare_all`.

For a comparison left open, the smallest difference its seeds could resolve (80% power at its
level, from the spread of its paired differences, by the noncentral t) and the seeds the
observed difference would need tell "no difference of that size" from "too few seeds to tell".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

POWER = 0.8  # of the minimum detectable difference and the seeds a difference needs
MIN_SEEDS = 3  # fewer matched seeds: no verdict ("not resolved with 2 seeds")
MAX_SEEDS = 10  # the seed budget: what --seeds auto spends at most, and what "too few seeds" means
MOST_SEEDS_COUNTED = 1000  # seeds needed beyond this are reported as "more than 1000"
NULL_STUDIES = 2**18  # simulated null studies per group-sequential design
NULL_TAIL = 100  # fewest null studies a boundary is read from
NULL_SEED = 0  # their draws: the same design gets the same boundary on every machine


def auto_looks(max_seeds: int = MAX_SEEDS) -> tuple[int, ...]:
    """The seeds per configuration at each look of `--seeds auto`: 3, then about half as many
    again each round (3, 5, 8, 10 for 10): few looks, since each one costs error rate."""
    if max_seeds < MIN_SEEDS:
        raise ValueError(f"max_seeds {max_seeds} < {MIN_SEEDS}")
    looks = [MIN_SEEDS]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, looks[-1] + max(2, math.ceil(looks[-1] / 2))))
    return tuple(looks)


NULL_CHUNK_VALUES = 2**24  # draws held at once (128 MB): memory stays flat whatever --max-seeds is


@functools.lru_cache(maxsize=32)
def _null_min_p(looks: tuple[int, ...]) -> np.ndarray:
    """Sorted smallest two-sided t-test p-value over the looks of NULL_STUDIES studies without a
    difference (normal paired differences; the t statistic does not depend on their scale).
    Studies are drawn in chunks of rows: the same draws, in the same order, as all at once."""
    rng = np.random.default_rng(NULL_SEED)
    rows = max(1, NULL_CHUNK_VALUES // looks[-1])
    smallest = np.ones(NULL_STUDIES)
    for start in range(0, NULL_STUDIES, rows):
        differences = rng.standard_normal((min(rows, NULL_STUDIES - start), looks[-1]))
        chunk = smallest[start:start + len(differences)]
        for n in looks:
            head = differences[:, :n]
            t = head.mean(axis=1) / (head.std(axis=1, ddof=1) / math.sqrt(n))
            np.minimum(chunk, 2 * stats.t.sf(np.abs(t), n - 1), out=chunk)
    return np.sort(smallest)


def nominal_level(alpha: float, looks: tuple[int, ...]) -> float:
    """The p-value a comparison must reach at any look for a family-wise `alpha` over the looks
    (Pocock: the same at every look); with one look, `alpha` itself."""
    if len(looks) == 1:
        return alpha
    smallest = _null_min_p(looks)
    expected = alpha * len(smallest)  # null studies at or below the boundary
    if expected < NULL_TAIL:  # too far in the tail to read: Bonferroni over the looks (valid, wider)
        return alpha / len(looks)
    # Two binomial standard deviations below the empirical quantile: the simulation's own error
    # errs on the side of fewer false verdicts.
    return float(smallest[int(expected - 2 * math.sqrt(expected)) - 1])


@functools.lru_cache(maxsize=256)
def _noncentrality_needed(level: float, power: float) -> np.ndarray:
    """For n = 0, 1, ..., MOST_SEEDS_COUNTED seeds (nan below 2), the noncentrality mean x sqrt(n)
    / std at which a two-sided paired t-test at `level` rejects with `power`: bisection on the
    noncentral t, all n at once."""
    n = np.arange(2, MOST_SEEDS_COUNTED + 1)
    critical = stats.t.isf(level / 2, n - 1)
    low, high = np.zeros(len(n)), critical + 10.0  # power at critical + 10 is above 0.99 for n >= 2
    for _ in range(50):
        middle = (low + high) / 2
        enough = _power(critical, n - 1, middle) >= power
        low, high = np.where(enough, low, middle), np.where(enough, middle, high)
    return np.concatenate([[math.nan, math.nan], high])


def _power(critical, df, noncentrality):
    """Two-sided power of a t-test with this critical value (the far tail's NaN, where scipy's
    noncentral t gives up, is 0)."""
    return stats.nct.sf(critical, df, noncentrality) + np.nan_to_num(stats.nct.cdf(-critical, df, noncentrality))


def minimum_detectable(seeds: int, std: float, level: float, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test at `level` with `seeds`
    seeds finds with `power`, for paired differences of standard deviation `std`."""
    if not 2 <= seeds <= MOST_SEEDS_COUNTED:
        return math.nan
    return float(_noncentrality_needed(level, power)[seeds] * std / math.sqrt(seeds))


def seeds_needed(difference: float, std: float, level: float, power: float = POWER) -> int | None:
    """The fewest seeds (at least MIN_SEEDS) with which a paired t-test at `level` finds
    `difference` with `power` (differences of standard deviation `std`); None if more than
    MOST_SEEDS_COUNTED."""
    if not abs(difference) > 0:
        return None
    if not std > 0:
        return MIN_SEEDS
    n = np.arange(MOST_SEEDS_COUNTED + 1)
    with np.errstate(invalid="ignore"):
        enough = np.flatnonzero(abs(difference) * np.sqrt(n) / std >= _noncentrality_needed(level, power))
    return max(MIN_SEEDS, int(enough[0])) if len(enough) else None


def seed_sequence(declared: Sequence[int], max_seeds: int) -> list[int]:
    """The seeds of `--seeds auto` in order: the declared ones, then 42, 43, ... not among them."""
    sequence = list(dict.fromkeys(declared))[:max_seeds]
    candidate = 42
    while len(sequence) < max_seeds:
        if candidate not in sequence:
            sequence.append(candidate)
        candidate += 1
    return sequence
