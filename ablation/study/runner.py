"""Running a study: its plan (`planning`), its workers (`claiming`), its `--seeds auto` rounds
(`seeding`) or its dry run (`dry_run`), and the tables at the end.

    run_study(STUDY, Options(protocol="smoke"))   # what `python -m studies.NAME --protocol smoke` calls

Runs are trained resumably one after the other through `ablation.run.train`. Every copy of the
command on one results folder is a worker that claims the next run that is neither done nor held,
most expensive first; `--shard I/N` deals fixed shares instead. A run that fails is recorded and
retried by the next call while the study goes on; a run trained from tied initial weights
(`run_folder.stale`) is left out, or with `retrain_stale` kept aside and trained anew; the last
worker to end rebuilds the tables and plots from the run folders.
"""

from __future__ import annotations

from pathlib import Path

from ablation.core import layout, records, run_folder
from ablation.core.errors import TIED_INITIAL_WEIGHTS, ConfigError
from ablation.core.records import Status
from ablation.study import cost, seeding
from ablation.study.claiming import claim_order, train_runs, worker_name
from ablation.study.declaration import Options, Study
from ablation.study.dry_run import run_statuses, show_plan
from ablation.study.planning import (
    PlannedRun,
    declare,
    describe_protocol,
    describe_study,
    labelled_folder,
    plan,
    slug,
)


def run_study(study: Study, options: Options, *, results_dir=None, only=None, shard=None, dry_run=False,
              as_json=False, write_report=True, retrain_stale=False, runs: list[PlannedRun] | None = None,
              log=print) -> int:
    """Train every run that is neither done nor held by another worker, most expensive first (or, with
    `shard=(I, N)`, this fixed share's), then rebuild the tables and plots if no other worker holds
    a run (unless a `--parallel` parent will: `write_report=False`); 0 if none failed. Stale
    runs are skipped, or with `retrain_stale` kept aside and trained anew. `dry_run` lists the
    runs and their cost (`as_json`: one JSON object)."""
    results_dir = Path(results_dir or layout.results_folder(study.name, options.protocol))
    runs = runs or plan(study, options)  # `runs`: plan(study, options), where the caller has it already
    runs_to_do = runs if not only else selected(runs, study, only)
    worker = worker_name()  # checks a job array's variables even where they no longer deal shares
    claiming = shard is None
    index, count = shard or (0, 1)
    costs = run_costs(runs, log=(lambda *_: None) if as_json else log)
    runs_to_do = claim_order(runs_to_do, costs)
    mine = runs_to_do if claiming else [r for i, r in enumerate(runs_to_do) if i % count == index]
    auto = options.auto_seeds and not only  # runs added look by look

    declare(results_dir, describe_study(study, options, runs), dry_run=dry_run, log=log)
    if dry_run:
        mine = show_plan(study, options, runs, mine, results_dir, costs, auto=auto, as_json=as_json, log=log)
        if not as_json:
            log_stale(stale_runs(results_dir, mine), len(mine), retrain_stale, log)
        return 0
    log(f"{study.name}: {study.question}")
    if auto:
        share = "runs added look by look"
    elif claiming:
        share = f"{len(mine)} runs, each claimed by the next free worker, most expensive first"
    else:
        share = f"{len(mine)} of {len(runs)} runs in shard {index}/{count}"
    log(f"{describe_protocol(study, options)}; {share}{worker}, results in {results_dir}")
    rename_labelled_folders(results_dir, runs, log)
    stale_ids = stale_runs(results_dir, runs if auto else mine)
    log_stale(stale_ids, len(mine), retrain_stale, log)
    if auto:
        failed = seeding.run_rounds(runs, results_dir, (index, count), stale_ids, retrain_stale, log)
    else:
        failed = train_runs(mine, results_dir, costs, stale_ids, retrain_stale, log, claiming=claiming)
    wrote = write_report and write_report_if_last(results_dir, runs, log)
    where = (f"tables and plots in {results_dir}, to browse: {results_dir / layout.INDEX_PAGE}" if wrote
             else f"runs in {results_dir}")
    log(f"{study.name}: {where}" + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def runs_left(study: Study, options: Options, runs: list[PlannedRun], results_dir: Path, *, retrain_stale: bool,
              only: str | None = None) -> list[PlannedRun]:
    """The runs a call would train now: neither done nor held by another process, nor stale unless
    `retrain_stale`; of `--only`'s, or of a `--seeds auto` study, those its next look needs."""
    if only:
        runs = selected(runs, study, only)
    elif options.auto_seeds:
        runs = seeding.look_runs(describe_study(study, options, runs), runs, results_dir)
    statuses = run_statuses(runs, results_dir)
    trainable = {Status.PENDING, Status.PARTIAL, Status.FAILED} | ({Status.STALE} if retrain_stale else set())
    return [run for run in runs if statuses[run.run_id] in trainable]


def selected(runs: list[PlannedRun], study: Study, only: str) -> list[PlannedRun]:
    """`--only`: the runs of a run id or a configuration."""
    chosen = [r for r in runs if only in (r.run_id, slug(r.configuration.name))]
    if not chosen:
        known = [r.run_id for r in runs] + [slug(c.name) for c in study.configurations]
        raise ConfigError(f"--only {only!r} matches no run; expected a run id or configuration: {', '.join(known)}.")
    return chosen


def write_report_if_last(results_dir: Path, runs: list[PlannedRun], log) -> bool:
    """Rebuild the tables and pages if no other worker holds a run of the study (the last worker to
    end does it; under SLURM there is no parent). Two workers that end together both rebuild, one
    after the other (seeding.write_report), each file written whole: the same tables either way."""
    held = [run.run_id for run in runs
            if run_folder.status(records.run_dir_of(results_dir, run.run_id)) == Status.RUNNING]
    if held:
        log(f"{len(held)} run(s) still trained by other workers; the last of them rebuilds the tables")
        return False
    seeding.write_report(results_dir)
    return True


def run_costs(runs: list[PlannedRun], log=print) -> dict[str, cost.Cost]:
    """Every run's estimated cost (`ablation.study.cost`): each net counted once, each dataset's size
    read once, this machine's profile measured once and cached."""
    profile = cost.machine_profile(log)
    nets, splits, out = {}, {}, {}
    for run in runs:
        if run.configuration.name not in nets:
            nets[run.configuration.name] = cost.net_of(run.resolved)
        key = (run.config.dataset, run.config.data_dir)
        if key not in splits:
            splits[key] = cost.dataset_splits(*key)
        out[run.run_id] = cost.estimate(run.resolved, nets[run.configuration.name], splits[key], profile)
    return out


def stale_runs(results_dir: Path, runs: list[PlannedRun]) -> set[str]:
    """The ids of the runs whose folders were trained from tied initial weights (run_folder.stale)."""
    return {run.run_id for run in runs if run_folder.stale(records.run_dir_of(results_dir, run.run_id))}


def log_stale(stale_ids: set[str], planned: int, retrain_stale: bool, log) -> None:
    """One line for the stale runs of this call, if any."""
    if not stale_ids:
        return
    kept = f"the old folders are kept as {layout.RUNS_DIR}/RUN_ID{layout.STALE_SUFFIX}"
    if retrain_stale:
        log(f"{len(stale_ids)} run(s) {TIED_INITIAL_WEIGHTS} are trained anew; {kept}")
    else:
        log(f"{len(stale_ids)} of {planned} runs are stale, {TIED_INITIAL_WEIGHTS}: left out of the tables; "
            f"--retrain-stale trains them anew ({kept})")


def rename_labelled_folders(results_dir: Path, runs: list[PlannedRun], log) -> None:
    """Run folders named by their label (before 2026-12) renamed to their run ids, so that their
    epochs are resumed, not trained again (records.rename_older_folder)."""
    for run in runs:
        old = labelled_folder(results_dir, run)
        if old is not None and (line := records.rename_older_folder(old, records.run_dir_of(results_dir, run.run_id))):
            log(line)
