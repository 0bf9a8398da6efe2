"""How evenly a study's runs spread over N workers: the makespan over the ideal (total work / N).

    python benchmarks/scheduling.py                       # the widening study, 2/4/8/16 workers
    python benchmarks/scheduling.py --study resnet_depth --workers 2 4 --json

The runs and their costs are the study's plan and the cost model's estimates
(`ablation.study.runner.plan` and `run_costs`, MACs x images x epochs at this machine's measured
rates, start-up included), in the order the runner's workers take them (`runner.claim_order`).
Two ways to share them:

- fixed shares (`--shard I/N`): worker I trains runs I, I + N, ... of that order;
- claiming (every worker's default): a worker that is free takes the next run of that order that
  is neither done nor held; simulated as list scheduling, each run to the worker free first.

The paper protocol's runs (what a cluster trains). The makespan is the time the last worker ends.
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the suite, as a package
from ablation.study import Options  # noqa: E402
from ablation.study.claiming import claim_order  # noqa: E402
from ablation.study.planning import plan  # noqa: E402
from ablation.study.runner import run_costs  # noqa: E402


def fixed_shares_makespan(seconds: list[float], workers: int) -> float:
    """Worker i trains runs i, i + N, ... of the order, one after the other."""
    return max(sum(seconds[i::workers]) for i in range(workers))


def claiming_makespan(seconds: list[float], workers: int) -> float:
    """Each run in order goes to the worker that is free first (the next run a free worker claims)."""
    free_at = [0.0] * workers
    for duration in seconds:
        heapq.heappush(free_at, heapq.heappop(free_at) + duration)
    return max(free_at)


def study_seconds(study_name: str) -> list[float]:
    """The estimated seconds of each of the study's paper-protocol runs, in claim order."""
    study = importlib.import_module(f"studies.{study_name}").STUDY
    runs = plan(study, Options())
    costs = run_costs(runs, log=lambda *_: None)
    return [costs[run.run_id].seconds for run in claim_order(runs, costs)]


def table(seconds: list[float], worker_counts: list[int]) -> list[dict]:
    ideal = sum(seconds)
    return [{"workers": n, "fixed_shares": fixed_shares_makespan(seconds, n) / (ideal / n),
             "claiming": claiming_makespan(seconds, n) / (ideal / n)} for n in worker_counts]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="widening", help="a module of studies/ (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seconds = study_seconds(args.study)
    rows = table(seconds, args.workers)
    if args.json:
        print(json.dumps({"study": args.study, "runs": len(seconds), "rows": rows}, indent=2))
        return 0
    print(f"{args.study}: {len(seconds)} runs, {max(seconds) / min(seconds):.0f}x between the most and least "
          f"expensive; makespan over the ideal (total / N)")
    print("| workers | fixed shares (--shard I/N) | claiming, most expensive first |\n| ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['workers']} | {row['fixed_shares']:.2f} | {row['claiming']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
