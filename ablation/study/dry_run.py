"""`--dry-run`: a study's runs, their status and their cost, without training (`--json`: one object)."""

from __future__ import annotations

import json
from pathlib import Path

from ablation.core import io, records, run_folder
from ablation.core.console import duration
from ablation.core.records import Status
from ablation.study import cost
from ablation.study.declaration import Options, Study
from ablation.study.planning import PlannedRun, describe_protocol, describe_study, labelled_folder
from ablation.study.seeding import look_runs


def show_plan(study: Study, options: Options, runs: list[PlannedRun], mine: list[PlannedRun], results_dir: Path,
            costs: dict[str, cost.Cost], *, auto: bool, as_json: bool, log) -> list[PlannedRun]:
    """Show the plan (all runs; of a `--seeds auto` study, those trained and those its next look
    needs); the runs shown that are this worker's."""
    if auto:  # what the folders hold decides
        mine = look_runs(describe_study(study, options, runs), runs, results_dir)
    shown = mine if options.auto_seeds else runs
    statuses = run_statuses(shown, results_dir)
    if as_json:
        print(json.dumps(plan_json(study, options, shown, results_dir, costs, statuses), indent=2))
        return mine
    print_plan(study, options, shown, results_dir, mine, costs, statuses, log)
    if auto:
        log(f"seeds auto: these are the runs trained and those the next look needs ({len(mine)}); at most "
            f"{len(runs)} if no comparison is decided before the last look")
    return mine


def run_statuses(runs: list[PlannedRun], results_dir: Path) -> dict[str, Status]:
    """Each run's status (`run_folder.status`), from the folder it still has under an older run id
    where one holds it."""
    return {run.run_id: run_folder.status(labelled_folder(results_dir, run) or records.run_dir_of(results_dir, run.run_id))
            for run in runs}


def print_plan(study, options, runs, results_dir, mine, costs, statuses, log):
    log(f"{study.name}: {study.question}\n{describe_protocol(study, options)}; results in {results_dir}")
    width = max([28, *(len(run.run_id) for run in runs)])
    log(f"{'run':{width}} {'configuration':20} {'model':22} {'params':>12} {'MACs':>10} {'compute':>11} "
        f"{'time':>8} {'status':8} note")
    for run in runs:
        params, macs = costs[run.run_id].net.params, costs[run.run_id].net.macs
        note = ("" if run in mine else "other shard") + (f" smoke: {run.downsized}" if run.downsized else "")
        run_dir = labelled_folder(results_dir, run)
        note += f" in {run_dir.name}, renamed on the next call" if run_dir else ""
        state = statuses[run.run_id]
        note += " tied initial weights: --retrain-stale trains it anew" if state == Status.STALE else ""
        estimate = costs[run.run_id]
        log(f"{run.run_id:{width}} {run.configuration.name:20} {run.config.model:22} {params:>12,} "
            f"{macs / 1e6:>9,.1f}M {cost.flops_text(estimate.flops):>11} {duration(estimate.seconds):>8} {state:8} "
            f"{note.strip()}")
    total = study_cost(runs, costs, statuses)
    log(f"cost: {total['runs_to_train']} of {len(runs)} runs to train, {cost.total_text(total)} "
        f"(docs/benchmarks.md: the assumptions)")


def study_cost(runs, costs, statuses) -> dict:
    """The cost of the runs not finished yet: what launching the study now would take (with the
    process's start and the tables at the end)."""
    todo = [costs[run.run_id] for run in runs if statuses[run.run_id] != Status.DONE]
    return cost.total(todo, cost.machine_profile(lambda *_: None))


def plan_json(study, options, runs, results_dir, costs, statuses) -> dict:
    """`--dry-run --json`: the plan and its cost as one object."""
    return {"study": study.name, "protocol": options.protocol, "results_dir": str(results_dir),
            **study_cost(runs, costs, statuses),
            "runs": [{"run_id": run.run_id, "configuration": run.configuration.name, "seed": run.seed,
                      **{name: io.json_roundtrip(run.resolved.setting(name)) for name in study.varies},
                      "status": str(statuses[run.run_id]), **costs[run.run_id].to_json()} for run in runs]}
