"""Workers and the runs they claim: every copy of a study's command on one results folder (a
`--parallel` child, a SLURM array task, an Indexed Job pod, a second terminal) is a worker that
claims the next run that is neither done nor held, most expensive first, by taking its lock
(`train_runs`); `--shard I/N` deals fixed shares instead. A run is locked while it trains
(`ablation.core.locks`), so no two workers train one run.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path

from ablation.core import records, run_folder
from ablation.core.console import duration
from ablation.core.errors import ConfigError, DamagedFile, RunFailed, RunLocked, StaleRun
from ablation.report.diagrams import write_run_diagrams
from ablation.run.config import run_identity
from ablation.run.training import train
from ablation.study import cost
from ablation.study.planning import PlannedRun


def worker_name(environ=os.environ) -> str:
    """" (SLURM array task 6, one of 4)", " (Indexed Job pod 1 of 3)", for the log lines; "" elsewhere.
    Every worker claims runs (train_runs): the task deals no share (--shard asks for one), so a SLURM
    array with a step or a list (--array=0-6:2, 1,3,5) is as good as 0-3."""
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        task, count = (_environment_int(environ, name) for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"))
        return f" (SLURM array task {task}, one of {count})" if count > 1 else ""
    if "JOB_COMPLETION_INDEX" in environ:
        if "JOB_COMPLETIONS" not in environ:
            raise ConfigError("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not; set it to the Job's "
                              "completions in the pod spec, or pass --shard I/N.")
        index, count = _checked_shard(_environment_int(environ, "JOB_COMPLETION_INDEX"),
                                      _environment_int(environ, "JOB_COMPLETIONS"), "JOB_COMPLETION_INDEX")
        return f" (Indexed Job pod {index} of {count})" if count > 1 else ""
    return ""


def _environment_int(environ, name: str) -> int:
    text = environ.get(name, "0")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not valid; expected an integer (or pass --shard I/N).") from None


def _checked_shard(index: int, count: int, index_name: str):
    # An index outside the count is a misconfigured Job (its completions were changed): said at once,
    # not trained through as if it were fine.
    if not 0 <= index < count:
        raise ConfigError(f"{index_name} = {index} is not valid for {count} shards; expected 0 <= index < {count} "
                          f"(or pass --shard I/N).")
    return index, count


def parse_shard(text: str):
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {text!r} is not valid; expected I/N with 0 <= I < N, e.g. 0/4.")
    return int(match.group(1)), int(match.group(2))


def claim_order(runs: list[PlannedRun], costs: dict[str, cost.Cost]) -> list[PlannedRun]:
    """The order in which workers take runs: most expensive first (the cost model's seconds: MACs x
    images x epochs on this machine's profile), so that the long runs start early and the last
    ones to end are short (benchmarks/scheduling.py measures the makespan it gives)."""
    return sorted(runs, key=lambda run: -costs[run.run_id].seconds)


class Outcome(enum.Enum):
    """What train_planned did with a run."""

    SKIPPED = "skipped"  # done, or stale
    TRAINED = "trained"
    FAILED = "failed"
    HELD = "held"  # another process has its lock


def train_runs(order: list[PlannedRun], results_dir: Path, costs, stale_ids: set[str], retrain_stale: bool, log,
               *, claiming: bool) -> list[str]:
    """Train the runs of `order` (claim_order) that are neither done nor held by another worker; the
    ids of those that failed.

    Claiming (every worker's default): a worker takes the first run in the order whose lock it can
    acquire (train() locks the run: an flock, released when its process dies, so a dead worker's
    run is claimable again and resumes from its last epoch); after each run it trains, it starts
    again from the top, so a run that another worker dropped is taken up; it ends when a whole
    pass claims nothing. A run that fails is retried once per call, not in a loop. With fixed
    shares (`--shard I/N`), one pass over this shard's runs."""
    settled, seen_held, failed = set(), set(), []
    while True:
        for n, run in enumerate(order, start=1):
            if run.run_id in settled:
                continue
            later = [r for r in order[n:] if r.run_id not in settled]
            after = sum(costs[r.run_id].seconds for r in later)  # the work left after this run, all workers'
            announce = (f"about {duration(costs[run.run_id].seconds)} for this run, "
                        f"{duration(costs[run.run_id].seconds + after)} for the {len(later) + 1} left (cost model)")
            outcome = train_planned(run, results_dir, f"[{n}/{len(order)}] {run.run_id}", run.run_id in stale_ids,
                                    retrain_stale, log, seconds_after=after, announce=announce,
                                    quiet_if_held=run.run_id in seen_held)
            if outcome == Outcome.HELD:
                seen_held.add(run.run_id)
                continue
            settled.add(run.run_id)
            if outcome == Outcome.FAILED:
                failed.append(run.run_id)
            if claiming and outcome in (Outcome.TRAINED, Outcome.FAILED):
                break  # claim again from the most expensive run
        else:
            return failed


def train_planned(run: PlannedRun, results_dir: Path, prefix: str, stale: bool, retrain_stale: bool, log,
                  seconds_after: float | None = None, announce: str | None = None,
                  quiet_if_held: bool = False) -> Outcome:
    """One planned run: skipped if done or stale, else trained (resumed); a failure is logged and the
    study goes on. `announce` is logged once the run is this process's (locked and its net built)."""
    run_dir = records.run_dir_of(results_dir, run.run_id)
    if stale and not retrain_stale:
        log(f"{prefix}: stale (started from tied initial weights), skipped")
        return Outcome.SKIPPED
    try:
        if not stale and records.read_metrics(run_dir) is not None:
            records.check_same_run(run_dir, run.resolved.to_json(), run_identity)
            write_run_diagrams(run.config, run_dir, title=run.configuration.name)  # if a kill cut them short
            log(f"{prefix}: done, skipped")
            if damaged := run_folder.damaged_text(run_folder.damaged_files(run_dir)):
                log(f"{prefix}: warning: {run_folder.damage_report(run_dir, damaged)}")
            return Outcome.SKIPPED
    except DamagedFile as error:  # one damaged run does not stop the others
        log(f"{prefix}: FAILED ({error})")
        return Outcome.FAILED
    failure = run_folder.last_failure(run_dir)
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
        return Outcome.HELD
    except StaleRun:  # an older version's process finished it from tied weights meanwhile
        log(f"{prefix}: stale (started from tied initial weights), skipped")
        return Outcome.SKIPPED
    except ConfigError:
        raise
    except Exception as error:  # recorded in failure.json by train(); the study goes on
        cause = error if isinstance(error, RunFailed) else f"{type(error).__name__}: {error}"
        log(f"{prefix}: FAILED ({cause}); it will be retried on the next call")
        return Outcome.FAILED
    return Outcome.TRAINED
