"""How often a study's verdicts are wrong: simulated studies through `ablation.statistics.compare_all`.

    python benchmarks/verdict_error_rates.py [--studies 4000] [--json]

Each simulated study gives every seed an offset shared by all its configurations (matched seeds)
and every run its own noise, normal or heavy-tailed (Student's t with 3 degrees of freedom, scaled
to unit variance); configuration c1 may differ from the baseline c0 by a shift, the others never.
It prints, per design, the share of studies that declare "lower" or "higher" anywhere without a
true difference (the family-wise error, target 5%), and how often a true difference is found.
`tests/test_statistics.py` asserts the same quantities, from this module's `verdict_rate`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the suite, as a package
from ablation.design import auto_looks  # noqa: E402
from ablation.statistics import compare_all  # noqa: E402


def simulated_errors(rng, configurations: int, seeds: int, noise: str, shift: float = 0.0) -> dict:
    """One study's test errors: configuration -> {seed: error}, c0 the baseline."""
    offsets = rng.normal(size=seeds)

    def draw():
        if noise == "normal":
            return rng.normal(size=seeds)
        return rng.standard_t(3, size=seeds) / math.sqrt(3)  # t(3) has variance 3

    return {f"c{c}": dict(zip(range(42, 42 + seeds), (offsets + draw() + (shift if c == 1 else 0.0)).tolist(),
                              strict=True))
            for c in range(configurations + 1)}


def verdict_rate(configurations, seeds, noise, *, shift=0.0, looks=None, cumulative=False, studies=2000,
                 seed=0) -> dict:
    """Shares of studies: "any" (a verdict anywhere), and c1's verdicts ("lower", "higher", ...);
    `cumulative`: each configuration compared with the one before it too, in the same family."""
    rng = np.random.default_rng(seed)
    verdicts = {"any": 0, "lower": 0, "higher": 0}
    for _ in range(studies):
        results = compare_all(simulated_errors(rng, configurations, seeds, noise, shift), "c0", cumulative=cumulative,
                              looks=looks and [list(range(42, 42 + n)) for n in looks])
        verdicts["any"] += any(r.decided for r in results)
        verdicts[results[0].verdict] = verdicts.get(results[0].verdict, 0) + 1
    return {k: v / studies for k, v in verdicts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000, help="per design with one comparison (half with "
                                                                  "eight) (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for design, looks, seeds in [("3 seeds", None, 3), ("5 seeds", None, 5), ("10 seeds", None, 10),
                                 ("--seeds auto 3,5,8,10", auto_looks(10), 10)]:
        for configurations in (1, 8):
            for noise in ("normal", "heavy"):
                studies = args.studies if configurations == 1 else args.studies // 2
                rate = verdict_rate(configurations, seeds, noise, looks=looks, studies=studies)
                rows.append({"design": design, "comparisons": configurations, "noise": noise, "studies": studies,
                             "false_verdicts": rate["any"]})
                if not args.json:
                    print(f"{design:22} {configurations} comparison(s) {noise:6} noise: a verdict in "
                          f"{100 * rate['any']:.1f}% of {studies} studies without a difference", flush=True)
    for design, looks in [("5 seeds", None), ("--seeds auto 3,5,8,10", auto_looks(10))]:
        for effect in (1.5, 0.8):
            # Paired differences of two unit-noise runs have std sqrt(2): the shift in their units.
            rate = verdict_rate(1, 5 if looks is None else 10, "normal", shift=-effect * math.sqrt(2), looks=looks,
                                studies=args.studies // 2)
            rows.append({"design": design, "effect_in_std": effect, "lower": rate["lower"], "higher": rate["higher"]})
            if not args.json:
                print(f"{design:22} a true difference of {effect} std: lower in {100 * rate['lower']:.1f}%, higher in "
                      f"{100 * rate['higher']:.2f}%", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
