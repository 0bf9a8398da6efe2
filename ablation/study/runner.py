"""Running a study: its plan (every run, validated before any trains), its workers, and execution.

    run_study(STUDY, Options(protocol="smoke"))   # what `python -m studies.NAME --protocol smoke` calls

Runs are trained resumably one after the other through `ablation.run.train`. Every copy of the
command on one results folder (a `--parallel` child, a SLURM array task, an Indexed Job pod, a
second terminal) is a worker that claims the next run that is neither done nor held, most
expensive first, by taking its lock (`train_runs`); `--shard I/N` deals fixed shares instead. A
run that fails is recorded and retried by the next call while the study goes on; a run trained
from tied initial weights (`records.stale`) is left out, or with `retrain_stale` kept aside and
trained anew; the last worker to end rebuilds the tables and plots from the run folders.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import time
from pathlib import Path

from ablation.core import io, layout, records
from ablation.core.console import duration
from ablation.core.errors import TIED_INITIAL_WEIGHTS, ConfigError, DamagedFile, RunFailed, RunLocked, StaleRun
from ablation.report import tables as report
from ablation.report.diagrams import write_run_diagrams
from ablation.run.axes import axis
from ablation.run.config import ResolvedRun, RunConfig, builder_arguments, preset_of, run_identity
from ablation.run.training import train
from ablation.statistics import auto_looks, seed_sequence
from ablation.study import cost
from ablation.study.declaration import Configuration, Options, Smoke, Study
from builders import count_macs


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    run_id: str
    configuration: Configuration
    seed: int
    config: RunConfig
    resolved: ResolvedRun  # config.resolve(), computed once
    downsized: str = ""  # what the smoke protocol changed in the net, if anything


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def configuration_id(study: Study, configuration: Configuration) -> str:
    """What the configuration is, named from its content (`ResolvedRun.configuration_id`), not its name: a study
    module and a sweep that declare the same configuration name it alike. The protocol's changes
    (smoke epochs, narrowed nets, --epochs) are left out: they are the results folder's."""
    return RunConfig(model=configuration.model, recipe=configuration.recipe or study.recipe,
                     model_overrides=configuration.model_overrides,
                     recipe_overrides={**study.recipe_overrides, **configuration.recipe_overrides}).resolve().configuration_id()


def run_id_of(identity: str, seed: int) -> str:
    """A study's run: its folder under runs/, its row in results.csv."""
    return f"{identity}-s{seed}"


def plan(study: Study, options: Options) -> list[PlannedRun]:
    """Every run of the study under these options, in a fixed order (configuration, then seed)."""
    smoke = options.protocol == "smoke"
    seeds = study_seeds(study, options)
    for name in study.varies:  # each a results column: an axis, named as `python -m ablation axes` names it
        axis(name)
    runs, names = [], {}  # configuration id -> the configuration's name
    for configuration in study.configurations:
        identity = configuration_id(study, configuration)
        if identity in names:
            raise ConfigError(f"configurations {names[identity]!r} and {configuration.name!r} are the same run "
                              f"({identity}); expected each configuration once.")
        names[identity] = configuration.name
        model_overrides, downsized = dict(configuration.model_overrides), ""
        recipe_overrides = {**study.recipe_overrides, **configuration.recipe_overrides}
        max_steps = None
        if smoke:
            model_overrides, downsized = smoke_downsize(configuration.model, model_overrides, study.smoke)
            recipe_overrides["epochs"] = study.smoke.epochs
            max_steps = study.smoke.max_steps_per_epoch
        if options.epochs is not None:
            recipe_overrides["epochs"] = options.epochs
        for seed in seeds:
            config = RunConfig(
                model=configuration.model, dataset=options.dataset or configuration.dataset or study.dataset,
                recipe=configuration.recipe or study.recipe, recipe_overrides=recipe_overrides,
                model_overrides=model_overrides, seed=seed, max_steps_per_epoch=max_steps,
                strategy=options.strategy, precision=options.precision, jit_compile=options.jit_compile,
                data_dir=options.data_dir, deterministic=options.deterministic)
            # Resolving validates: every run is checked before any trains.
            runs.append(PlannedRun(run_id_of(identity, seed), configuration, seed, config,
                                   config.resolve(), downsized))
    return runs


def study_seeds(study: Study, options: Options) -> list[int]:
    """The seeds of the study's runs; under --seeds auto, all its budget may use, in order."""
    if options.auto_seeds:
        return seed_sequence(study.seeds, options.max_seeds)
    smoke = options.protocol == "smoke"
    return list(options.seeds or (study.seeds[: study.smoke.num_seeds] if smoke else study.seeds))


def smoke_downsize(model: str, overrides: dict, smoke: Smoke):
    """Nets too big for a CPU smoke run, made small enough, and a note saying how."""
    preset = preset_of(model)
    kwargs = {**preset.kwargs, **overrides}
    if (kwargs.get("input_shape") or preset.input_shape)[0] > smoke.imagenet_input[0]:  # an ImageNet-sized input
        return {**overrides, "input_shape": smoke.imagenet_input}, f"input {'x'.join(map(str, smoke.imagenet_input))}"
    if "widen_factor" not in inspect.signature(preset.builder).parameters:
        return overrides, ""  # only nets with a width to narrow: no build (a second one per run) to count the others
    with builder_arguments():
        macs = count_macs(preset.build(**overrides))
    if macs > smoke.max_macs:
        widen_factor = kwargs["widen_factor"]
        # MACs grow as widen_factor^2: the widest net that fits the budget.
        narrow = max(1, math.floor(widen_factor * math.sqrt(smoke.max_macs / macs)))
        return {**overrides, "widen_factor": narrow}, f"widen_factor {widen_factor} -> {narrow}"
    return overrides, ""


# ----------------------------------------------------------------------------------------------
# Workers (each run is locked while it trains: records.RunLock)


def worker_name(environ=os.environ) -> str:
    """" (SLURM array task 2 of 8)", or an Indexed Job's pod, for the log lines; "" elsewhere. Every
    worker claims runs (train_runs): the index deals no share, unless --shard asks for one."""
    index, count = shard_from_environment(environ)
    if count == 1:
        return ""
    return f" ({'SLURM array task' if 'SLURM_ARRAY_TASK_ID' in environ else 'Indexed Job pod'} {index} of {count})"


def shard_from_environment(environ=os.environ):
    """(index, count) from a SLURM job array or a Kubernetes Indexed Job, else (0, 1)."""
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
        task, first, count = (_environment_int(environ, name) for name in names)
        return _checked_shard(task - first, count, "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN")
    if "JOB_COMPLETION_INDEX" in environ:
        if "JOB_COMPLETIONS" not in environ:
            raise ConfigError("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not; set it to the Job's "
                              "completions in the pod spec, or pass --shard I/N.")
        return _checked_shard(_environment_int(environ, "JOB_COMPLETION_INDEX"),
                              _environment_int(environ, "JOB_COMPLETIONS"), "JOB_COMPLETION_INDEX")
    return 0, 1


def _environment_int(environ, name: str) -> int:
    text = environ.get(name, "0")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not valid; expected an integer (or pass --shard I/N).") from None


def _checked_shard(index: int, count: int, index_name: str):
    # A shard outside the count would run nothing and exit 0, as if its share were done.
    if not 0 <= index < count:
        raise ConfigError(f"{index_name} = {index} is not valid for {count} shards; expected 0 <= index < {count} "
                          f"(or pass --shard I/N).")
    return index, count


def parse_shard(text: str):
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {text!r} is not valid; expected I/N with 0 <= I < N, e.g. 0/4.")
    return int(match.group(1)), int(match.group(2))


# ----------------------------------------------------------------------------------------------
# Running a study


def describe_study(study: Study, options: Options, runs: list[PlannedRun]) -> dict:
    """study.json: what `ablation report` needs to rebuild the tables without the study module."""
    return {
        "name": study.name, "question": study.question, "varies": list(study.varies),
        "heatmap": list(study.heatmap) if study.heatmap else None,
        "protocol": options.protocol, "protocol_description": describe_protocol(study, options),
        "published_protocol": study.published_protocol, "baseline": study.baseline_name,
        "cumulative": study.cumulative,
        "seeding": ({"auto": True, "sequence": study_seeds(study, options), "looks": list(auto_looks(options.max_seeds))}
                    if options.auto_seeds else {"auto": False}),
        "configurations": [{"configuration": c.name, "model": c.model, "published_error": c.published_error,
                            **({"versus": c.versus} if c.versus else {})} for c in study.configurations],
        "runs": [{"run_id": r.run_id, "configuration": r.configuration.name, "seed": r.seed, "downsized": r.downsized,
                  "run": r.resolved.to_json()} for r in runs],
    }


def describe_protocol(study: Study, options: Options) -> str:
    if options.protocol == "smoke":
        seeds = f", seeds auto (at most {options.max_seeds})" if options.auto_seeds else ""
        return (f"SMOKE protocol: {options.epochs or study.smoke.epochs} epochs of at most "
                f"{study.smoke.max_steps_per_epoch} steps, nets above {study.smoke.max_macs / 1e6:.0f}M MACs "
                f"downsized{seeds}; a pipeline check, not comparable to published numbers")
    seeds = (f"seeds auto (at most {options.max_seeds}: {', '.join(map(str, study_seeds(study, options)))})"
             if options.auto_seeds else f"seeds {', '.join(map(str, options.seeds or study.seeds))}")
    epochs = f"{options.epochs} epochs (not the recipe's)" if options.epochs else "the recipe's epochs"
    return f"paper protocol: {epochs}, {seeds}, final-epoch test error"


def run_study(study: Study, options: Options, *, results_dir=None, only=None, shard=None, dry_run=False,
              as_json=False, write_report=True, retrain_stale=False, log=print) -> int:
    """Train every run that is neither done nor held by another worker, most expensive first (or, with
    `shard=(I, N)`, this fixed share's), then rebuild the tables and plots if no other worker holds
    a run (unless a `--parallel` parent will: `write_report=False`); 0 if none failed. Stale
    runs are skipped, or with `retrain_stale` kept aside and trained anew. `dry_run` lists the
    runs and their cost (`as_json`: one JSON object)."""
    results_dir = Path(results_dir or layout.results_folder(study.name, options.protocol))
    runs = plan(study, options)
    if only:
        known = [r.run_id for r in runs] + [slug(c.name) for c in study.configurations]
        selected = [r for r in runs if only in (r.run_id, slug(r.configuration.name))]
        if not selected:
            raise ConfigError(f"--only {only!r} matches no run; expected a run id or configuration: "
                              f"{', '.join(known)}.")
        runs_to_do = selected
    else:
        runs_to_do = runs
    worker = worker_name()  # checks a job array's variables even where they no longer deal shares
    claiming = shard is None
    index, count = shard or (0, 1)
    costs = run_costs(runs, log=(lambda *_: None) if as_json else log)
    runs_to_do = claim_order(runs_to_do, costs)
    mine = runs_to_do if claiming else [r for i, r in enumerate(runs_to_do) if i % count == index]

    if dry_run:
        if options.auto_seeds and not only:  # the runs of the look to come: what the folders hold decides
            _, frame = report.collect_results(results_dir, describe_study(study, options, runs))
            mine = [run for run in runs if run.run_id in set(frame["run_id"])]
        shown = mine if options.auto_seeds else runs
        statuses = run_statuses(shown, results_dir)
        if as_json:
            print(json.dumps(plan_json(study, options, shown, results_dir, costs, statuses), indent=2))
            return 0
        print_plan(study, options, shown, results_dir, mine, costs, statuses, log)
        if options.auto_seeds and not only:
            log(f"seeds auto: these are the runs trained and those the next look needs ({len(mine)}); at most "
                f"{len(runs)} if no comparison is decided before the last look")
        log_stale(stale_runs(results_dir, mine), len(mine), retrain_stale, log)
        return 0
    io.write_json(results_dir / layout.STUDY_FILE, describe_study(study, options, runs))
    log(f"{study.name}: {study.question}")
    if options.auto_seeds and not only:
        share = "runs added look by look"
    elif claiming:
        share = f"{len(mine)} runs, each claimed by the next free worker, most expensive first"
    else:
        share = f"{len(mine)} of {len(runs)} runs in shard {index}/{count}"
    log(f"{describe_protocol(study, options)}; {share}{worker}, results in {results_dir}")
    rename_labelled_folders(results_dir, runs, log)
    auto = options.auto_seeds and not only
    stale_ids = stale_runs(results_dir, runs if auto else mine)
    log_stale(stale_ids, len(mine), retrain_stale, log)
    failed = []
    if auto:
        run_rounds(runs, results_dir, (index, count), stale_ids, failed, retrain_stale, log)
    else:
        train_runs(mine, results_dir, costs, stale_ids, failed, retrain_stale, log, claiming=claiming)
    wrote = write_report and write_report_if_last(results_dir, runs, log)
    where = (f"tables and plots in {results_dir}, to browse: {results_dir / layout.INDEX_PAGE}" if wrote
             else f"runs in {results_dir}")
    log(f"{study.name}: {where}" + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def claim_order(runs: list[PlannedRun], costs: dict[str, cost.Cost]) -> list[PlannedRun]:
    """The order in which workers take runs: most expensive first (the cost model's seconds: MACs x
    images x epochs on this machine's profile), so that the long runs start early and the last
    ones to end are short (benchmarks/scheduling.py measures the makespan it gives)."""
    return sorted(runs, key=lambda run: -costs[run.run_id].seconds)


def train_runs(order: list[PlannedRun], results_dir: Path, costs, stale_ids: set[str], failed: list,
               retrain_stale: bool, log, *, claiming: bool) -> None:
    """Train the runs of `order` (claim_order) that are neither done nor held by another worker.

    Claiming (every worker's default): a worker takes the first run in the order whose lock it can
    acquire (train() locks the run: an flock, released when its process dies, so a dead worker's
    run is claimable again and resumes from its last epoch); after each run it trains, it starts
    again from the top, so a run that another worker dropped is taken up; it ends when a whole
    pass claims nothing. A run that fails is retried once per call, not in a loop. With fixed
    shares (`--shard I/N`), one pass over this shard's runs."""
    settled, seen_held = set(), set()
    while True:
        for n, run in enumerate(order, start=1):
            if run.run_id in settled:
                continue
            later = [r for r in order[n:] if r.run_id not in settled]
            after = sum(costs[r.run_id].seconds for r in later)  # the work left after this run, all workers'
            announce = (f"about {duration(costs[run.run_id].seconds)} for this run, "
                        f"{duration(costs[run.run_id].seconds + after)} for the {len(later) + 1} left (cost model)")
            outcome = train_planned(run, results_dir, f"[{n}/{len(order)}] {run.run_id}", run.run_id in stale_ids,
                                    failed, retrain_stale, log, seconds_after=after, announce=announce,
                                    quiet_if_held=run.run_id in seen_held)
            if outcome == HELD:
                seen_held.add(run.run_id)
                continue
            settled.add(run.run_id)
            if claiming and outcome in (TRAINED, FAILED):
                break  # claim again from the most expensive run
        else:
            return


def write_report_if_last(results_dir: Path, runs: list[PlannedRun], log) -> bool:
    """Rebuild the tables and pages if no other worker holds a run of the study (the last worker to
    end does it; under SLURM there is no parent). Two workers that end together both rebuild, one
    after the other (the report's lock), each file written whole: the same tables either way."""
    held = [run.run_id for run in runs if records.status(records.run_dir_of(results_dir, run.run_id)) == "running"]
    if held:
        log(f"{len(held)} run(s) still trained by other workers; the last of them rebuilds the tables")
        return False
    with records.report_lock(results_dir):
        report.write_study_report(results_dir)
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


# What train_planned did with a run.
SKIPPED, TRAINED, FAILED, HELD = "skipped", "trained", "failed", "held"  # held: another process has its lock


def train_planned(run: PlannedRun, results_dir: Path, prefix: str, stale: bool, failed: list, retrain_stale: bool,
                  log, seconds_after: float | None = None, announce: str | None = None,
                  quiet_if_held: bool = False) -> str:
    """One planned run: skipped if done or stale, else trained (resumed); a failure is appended to
    `failed` and logged, and the study goes on. `announce` is logged once the run is this
    process's (locked and its net built). Returns SKIPPED, TRAINED, FAILED or HELD."""
    run_dir = records.run_dir_of(results_dir, run.run_id)
    if stale and not retrain_stale:
        log(f"{prefix}: stale (started from tied initial weights), skipped")
        return SKIPPED
    try:
        if not stale and records.read_metrics(run_dir) is not None:
            records.check_same_run(run_dir, run.resolved.to_json(), run_identity)
            write_run_diagrams(run.config, run_dir, title=run.configuration.name)  # if a kill cut them short
            log(f"{prefix}: done, skipped")
            if damaged := records.damaged_text(records.damaged_files(run_dir)):
                log(f"{prefix}: warning: {records.damage_report(run_dir, damaged)}")
            return SKIPPED
    except DamagedFile as error:  # one damaged run does not stop the others
        failed.append(run.run_id)
        log(f"{prefix}: FAILED ({error})")
        return FAILED
    failure = records.last_failure(run_dir)
    if failure is not None:
        log(f"{prefix}: failed last time ({failure}); retrying")

    def built(model):  # the run is this process's now: say what it costs, draw its net
        if announce:
            log(f"{prefix}: {announce}")
        write_run_diagrams(run.config, run_dir, title=run.configuration.name, model=model)

    try:
        # train() names the run folder at the start of its lines; the prefix names the run.
        train(run.config, run_dir, log=lambda line: log(f"{prefix}: {line.removeprefix(f'{run_dir}: ')}"),
              on_built=built, retrain_stale=retrain_stale, seconds_after=seconds_after)
    except RunLocked:  # train() locks the run: another worker has it
        if not quiet_if_held:
            log(f"{prefix}: being trained by another process, skipped")
        return HELD
    except StaleRun:  # an older version's process finished it from tied weights meanwhile
        log(f"{prefix}: stale (started from tied initial weights), skipped")
        return SKIPPED
    except ConfigError:
        raise
    except Exception as error:  # recorded in failure.json by train(); the study goes on
        failed.append(run.run_id)
        cause = error if isinstance(error, RunFailed) else f"{type(error).__name__}: {error}"
        log(f"{prefix}: FAILED ({cause}); it will be retried on the next call")
        return FAILED
    return TRAINED


WAIT_SECONDS = 10  # between two looks at runs of the round that other processes train


def run_rounds(runs: list[PlannedRun], results_dir: Path, shard: tuple[int, int], stale_ids: set[str],
               failed: list, retrain_stale: bool, log, wait_seconds: float = WAIT_SECONDS) -> None:
    """`--seeds auto`: train the runs the next look needs, look, and go on until every comparison
    is decided or the budget is spent. Every worker derives the round from the run folders
    (`report.seeds_needed_now`), takes the round's runs no other process holds (its share
    first, then any left: a run is locked while it trains), and waits while others train the
    rest. A run that fails is tried once per call, so a failing run ends the rounds."""
    by_seed = {(run.configuration.name, run.seed): run for run in runs}
    index, count = shard
    while True:
        study, frame = report.collect_results(results_dir)
        needed = report.seeds_needed_now(frame, study)
        statuses = dict(zip(frame["run_id"], frame["status"], strict=True))
        round_runs = [by_seed[(label, seed)] for label, seeds in needed.items() for seed in seeds]
        open_runs = [run for run in round_runs if statuses.get(run.run_id) != "done"]
        if not open_runs:
            log("seeds auto: seeding has stopped (every comparison decided, or the seed budget spent: "
                f"{layout.SUMMARY_FILE} says which)")
            return
        todo = [run for run in open_runs if run.run_id not in failed
                and (retrain_stale or run.run_id not in stale_ids)]
        free = [run for run in todo if statuses.get(run.run_id) != "running"]
        if free:  # this worker's share of the round first, then any run no other process holds
            run = (free[index::count] or free)[0]
            train_planned(run, results_dir, f"[{len(round_runs) - len(open_runs) + 1}/{len(round_runs)}] {run.run_id}",
                          run.run_id in stale_ids, failed, retrain_stale, log)
        elif todo:  # the rest of the round is being trained by other processes
            log(f"seeds auto: waiting for {len(todo)} run(s) of this look that other processes train")
            time.sleep(wait_seconds)
        else:
            log(f"seeds auto: {len(open_runs)} run(s) the next look needs failed in this call or are stale; run the "
                f"study again to retry{'' if retrain_stale else ' (--retrain-stale for stale ones)'}")
            return


def stale_runs(results_dir: Path, runs: list[PlannedRun]) -> set[str]:
    """The ids of the runs whose folders were trained from tied initial weights (records.stale)."""
    return {run.run_id for run in runs if records.stale(records.run_dir_of(results_dir, run.run_id))}


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


def labelled_folder(results_dir: Path, run: PlannedRun) -> Path | None:
    """The folder this run had when run ids were named by the label (before 2026-12), if it holds
    this very run and has not been renamed yet."""
    old = records.run_dir_of(results_dir, run_id_of(slug(run.configuration.name), run.seed))
    new = records.run_dir_of(results_dir, run.run_id)
    if old == new or new.exists() or not old.is_dir():
        return None
    try:
        return old if records.run_differences(old, run.resolved.to_json(), run_identity) == [] else None
    except DamagedFile:
        return None


def rename_labelled_folders(results_dir: Path, runs: list[PlannedRun], log) -> None:
    """Run folders named by their label renamed to their run ids, so that their epochs are resumed,
    not trained again. One a process is training (an older version's) keeps its name."""
    for run in runs:
        old = labelled_folder(results_dir, run)
        if old is None:
            continue
        lock = records.RunLock(old)
        if not lock.acquire(create=False):
            if old.exists():  # else another shard renamed it first
                log(f"{old.name}: being trained by another process; renamed to {run.run_id} on a later call")
            continue
        try:
            os.rename(old, records.run_dir_of(results_dir, run.run_id))  # atomic; the lock moves with it
        except OSError as error:  # a shard renamed it first, or started the run anew meanwhile
            log(f"{old.name}: not renamed to {run.run_id} ({error.strerror})")
            continue
        finally:
            lock.release()
        log(f"{old.name}: renamed to {run.run_id} (run ids now name what a run is)")


def run_statuses(runs: list[PlannedRun], results_dir: Path) -> dict[str, str]:
    """Each run's status (`records.status`), from the folder it still has under an older run id
    where one holds it."""
    return {run.run_id: records.status(labelled_folder(results_dir, run) or records.run_dir_of(results_dir, run.run_id))
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
        note += " tied initial weights: --retrain-stale trains it anew" if state == "stale" else ""
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
    todo = [costs[run.run_id] for run in runs if statuses[run.run_id] != "done"]
    return cost.total(todo, cost.machine_profile(lambda *_: None))


def plan_json(study, options, runs, results_dir, costs, statuses) -> dict:
    """`--dry-run --json`: the plan and its cost as one object."""
    return {"study": study.name, "protocol": options.protocol, "results_dir": str(results_dir),
            **study_cost(runs, costs, statuses),
            "runs": [{"run_id": run.run_id, "configuration": run.configuration.name, "seed": run.seed,
                      **{name: io.json_roundtrip(run.resolved.setting(name)) for name in study.varies},
                      "status": statuses[run.run_id], **costs[run.run_id].to_json()} for run in runs]}
