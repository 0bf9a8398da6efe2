"""`--seeds auto`: which seeds the next look needs (`next_look`), and the rounds that train them.

The decision is the study's: from the finished runs of the report's table it asks
`statistics.auto_seeds_needed`. The report, which reads the run folders once, is handed the
decision (`write_report`: the one way a study's tables are written) and shows its answer.
"""

from __future__ import annotations

import time
from pathlib import Path

from ablation.core import layout, locks, records
from ablation.core.records import Status
from ablation.report import tables
from ablation.statistics import auto_seeds_needed
from ablation.study.claiming import Outcome, train_planned
from ablation.study.planning import PlannedRun

WAIT_SECONDS = 10  # between two looks at runs of the round that other processes train


def next_look(study: records.StudyRecord, frame) -> dict[str, list[int]]:
    """Of a `--seeds auto` study, the seeds each configuration needs for its next look, from the
    finished runs of its table (tables.collect_results); empty: seeding has stopped."""
    return auto_seeds_needed(tables.errors_by_configuration(frame, study), study.baseline, list(study.seeding.sequence),
                             study.seeding.looks, cumulative=study.cumulative, versus=study.versus())


def look_runs(study: records.StudyRecord, runs: list[PlannedRun], results_dir: Path) -> list[PlannedRun]:
    """Of a `--seeds auto` study, the runs trained and those its next look needs."""
    _, frame = tables.collect_results(results_dir, study)
    shown = set(tables.runs_shown(frame, next_look(study, frame))["run_id"])
    return [run for run in runs if run.run_id in shown]


def write_report(results_dir):
    """The study's tables, plots and pages (tables.write_study_report), with its next look, under the
    folder's report lock: reports at once (two workers ending together, `ablation report` while the
    last run ends) are written one after the other, each from the run folders as it finds them, so
    the last one written is the newest."""
    records.read_study(results_dir)  # not a study's folder: its one-line error, and no lock file left in it
    with locks.report_lock(results_dir):
        return tables.write_study_report(results_dir, next_look)


def run_rounds(runs: list[PlannedRun], results_dir: Path, shard: tuple[int, int], stale_ids: set[str],
               retrain_stale: bool, log, wait_seconds: float = WAIT_SECONDS) -> list[str]:
    """Train the runs the next look needs, look, and go on until every comparison is decided or the
    budget is spent; the ids of the runs that failed. Every worker derives the round from the run
    folders (`next_look`), takes the round's runs no other process holds (its share first, then any
    left: a run is locked while it trains), and waits while others train the rest. A run that fails
    is tried once per call, so a failing run ends the rounds."""
    by_seed = {(run.configuration.name, run.seed): run for run in runs}
    index, count = shard
    failed = []
    while True:
        study, frame = tables.collect_results(results_dir)
        needed = next_look(study, frame)
        statuses = dict(zip(frame["run_id"], frame["status"], strict=True))
        round_runs = [by_seed[(label, seed)] for label, seeds in needed.items() for seed in seeds]
        open_runs = [run for run in round_runs if statuses.get(run.run_id) != Status.DONE]
        if not open_runs:
            log("seeds auto: seeding has stopped (every comparison decided, or the seed budget spent: "
                f"{layout.SUMMARY_FILE} says which)")
            return failed
        todo = [run for run in open_runs if run.run_id not in failed
                and (retrain_stale or run.run_id not in stale_ids)]
        free = [run for run in todo if statuses.get(run.run_id) != Status.RUNNING]
        if free:  # this worker's share of the round first, then any run no other process holds
            run = (free[index::count] or free)[0]
            outcome = train_planned(run, results_dir, f"[{len(round_runs) - len(open_runs) + 1}/{len(round_runs)}] "
                                    f"{run.run_id}", run.run_id in stale_ids, retrain_stale, log)
            if outcome == Outcome.FAILED:
                failed.append(run.run_id)
        elif todo:  # the rest of the round is being trained by other processes
            log(f"seeds auto: waiting for {len(todo)} run(s) of this look that other processes train")
            time.sleep(wait_seconds)
        else:
            log(f"seeds auto: {len(open_runs)} run(s) the next look needs failed in this call or are stale; run the "
                f"study again to retry{'' if retrain_stale else ' (--retrain-stale for stale ones)'}")
            return failed
