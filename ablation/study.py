"""Studies: a declaration of what is compared, expanded into runs, run resumably, reported.

A study module in `studies/` declares one `Study` and calls `main(STUDY)`; everything else is
here. A study is a question, the configurations that answer it (what varies), the recipe and
data (what is fixed), the seeds, and the metric it is judged on.

    STUDY = Study(
        name="dropout", question="Does dropout between the convolutions help?",
        configurations=[Configuration("WRN-16-4", "wrn-16-4", published_error=5.02), ...],
        varies=("depth", "widen_factor", "dropout_rate"), seeds=(42, 43, 44, 45, 46))
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

from ablation import io
from ablation.errors import ConfigError
from ablation.run import RunConfig, RunFailed, builder_arguments, check_same_run, preset_of, run_status, train

PRESETS = ("paper", "smoke")


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One setting the study compares, named as in the paper's tables."""

    label: str
    model: str  # a preset of builders.PRESETS
    model_overrides: Mapping = dataclasses.field(default_factory=dict)
    recipe: str | None = None  # None: the study's recipe
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)
    published_error: float | None = None  # test error %, where the source has one
    dataset: str | None = None  # None: the study's dataset


@dataclasses.dataclass(frozen=True)
class Smoke:
    """The `smoke` preset: the whole study end to end in minutes on a CPU, never to be quoted."""

    epochs: int = 3
    max_steps_per_epoch: int = 10
    seeds: int = 1  # the first n of the study's seeds
    max_macs: float = 400e6  # nets above this are narrowed (Wide ResNets) or shrunk (ImageNet-style input)
    imagenet_input: tuple = (64, 64, 3)


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    question: str
    configurations: Sequence[Configuration]
    varies: Sequence[str]  # the scientific hyperparameters: results columns
    dataset: str = "cifar10"
    recipe: str | None = None  # None: each model's paper's recipe
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)
    seeds: Sequence[int] = (42,)
    metric: str = "test_error"  # what the study is judged on (lower is better)
    heatmap: tuple[str, str] | None = None  # two varying settings to draw test error over, e.g. depth x width
    published_protocol: str = ""  # how the published numbers were obtained
    smoke: Smoke = Smoke()

    def __post_init__(self):
        labels = [c.label for c in self.configurations]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"study {self.name!r} repeats a configuration label: {labels}")


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    run_id: str
    configuration: Configuration
    seed: int
    config: RunConfig
    resolved: dict  # config.resolve(), computed once
    downsized: str = ""  # what the smoke preset changed in the net, if anything


@dataclasses.dataclass(frozen=True)
class Options:
    """How one invocation runs a study (the command line of `python -m studies.NAME`)."""

    preset: str = "paper"
    dataset: str | None = None
    epochs: int | None = None
    seeds: Sequence[int] | None = None
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: str = "auto"
    data_dir: str | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(f"preset={self.preset!r} is not valid; expected one of {', '.join(PRESETS)}.")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def plan(study: Study, options: Options) -> list[PlannedRun]:
    """Every run of the study under these options, in a fixed order (configuration, then seed)."""
    smoke = options.preset == "smoke"
    seeds = list(options.seeds or (study.seeds[: study.smoke.seeds] if smoke else study.seeds))
    runs = []
    for configuration in study.configurations:
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
                data_dir=options.data_dir)
            # Resolving validates: every run is checked before any trains.
            runs.append(PlannedRun(f"{slug(configuration.label)}-s{seed}", configuration, seed, config,
                                   config.resolve(), downsized))
    return runs


def smoke_downsize(model: str, overrides: dict, smoke: Smoke):
    """Nets too big for a CPU smoke run, made small enough, and a note saying how."""
    from builders import count_macs

    preset = preset_of(model)
    kwargs = {**preset.kwargs, **overrides}
    if preset.family == "imagenet_resnet":
        return {**overrides, "input_shape": smoke.imagenet_input}, f"input {'x'.join(map(str, smoke.imagenet_input))}"
    if preset.family != "wide_resnet":
        return overrides, ""  # only Wide ResNets are narrowed: no build (a second one per run) to count the others
    with builder_arguments():
        macs = count_macs(preset.build(**overrides))
    if macs > smoke.max_macs:
        k = kwargs["widen_factor"]
        # MACs grow as k^2: the widest k that fits the budget.
        narrow = max(1, math.floor(k * math.sqrt(smoke.max_macs / macs)))
        return {**overrides, "widen_factor": narrow}, f"widen_factor {k} -> {narrow}"
    return overrides, ""


# ----------------------------------------------------------------------------------------------
# Shards and locks


def shard_from_environment(environ=os.environ):
    """(index, count) from a SLURM job array or a Kubernetes Indexed Job, else (0, 1)."""
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        index = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
        return index, int(environ["SLURM_ARRAY_TASK_COUNT"])
    if "JOB_COMPLETION_INDEX" in environ:
        if "JOB_COMPLETIONS" not in environ:
            raise ConfigError("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not; set it to the Job's "
                              "completions in the pod spec, or pass --shard I/N.")
        return int(environ["JOB_COMPLETION_INDEX"]), int(environ["JOB_COMPLETIONS"])
    return 0, 1


def parse_shard(text: str):
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {text!r} is not valid; expected I/N with 0 <= I < N, e.g. 0/4.")
    return int(match.group(1)), int(match.group(2))


class RunLock:
    """An exclusive lock on a run folder, so that no two processes (shards, machines on a shared
    file system, a second terminal) train the same run. `flock` locks die with their process,
    so a killed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".lock"
        self.fd = None

    def acquire(self) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.uname().nodename} {os.getpid()}\n".encode())
        return True

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def held_elsewhere(self) -> bool:
        if self.acquire():
            self.release()
            return False
        return True


def status(run_dir: Path) -> str:
    """done, failed, partial, pending, or running (locked by another process)."""
    if not (run_dir / "metrics.json").exists() and run_dir.exists() and (run_dir / ".lock").exists() \
            and RunLock(run_dir).held_elsewhere():
        return "running"
    return run_status(run_dir)


# ----------------------------------------------------------------------------------------------
# Running a study


def default_results_dir(study: Study, preset: str) -> Path:
    # Smoke results never mix with the paper protocol's.
    return Path("results") / (study.name if preset == "paper" else f"{study.name}-{preset}")


def describe_study(study: Study, options: Options, runs: list[PlannedRun]) -> dict:
    """study.json: what `ablation report` needs to rebuild the tables without the study module."""
    return {
        "name": study.name, "question": study.question, "varies": list(study.varies), "metric": study.metric,
        "heatmap": list(study.heatmap) if study.heatmap else None,
        "preset": options.preset, "published_protocol": study.published_protocol,
        "protocol": protocol(study, options),
        "configurations": [{"label": c.label, "model": c.model, "published_error": c.published_error}
                           for c in study.configurations],
        "runs": [{"run_id": r.run_id, "label": r.configuration.label, "seed": r.seed, "downsized": r.downsized,
                  "run": r.resolved} for r in runs],
    }


def protocol(study: Study, options: Options) -> str:
    if options.preset == "smoke":
        return (f"SMOKE preset: {options.epochs or study.smoke.epochs} epochs of at most "
                f"{study.smoke.max_steps_per_epoch} steps, nets above {study.smoke.max_macs / 1e6:.0f}M MACs "
                f"downsized; a pipeline check, not comparable to published numbers")
    seeds = options.seeds or study.seeds
    epochs = f"{options.epochs} epochs (not the recipe's)" if options.epochs else "the recipe's epochs"
    return f"paper preset: {epochs}, seeds {', '.join(map(str, seeds))}, final-epoch test error"


def run_study(study: Study, options: Options, *, results_dir=None, only=None, shard=None, dry_run=False,
              log=print) -> int:
    """Train every pending run of this shard, then rebuild the tables and plots; 0 if none failed."""
    from ablation import report
    from ablation.diagrams import write_run_diagrams

    results_dir = Path(results_dir or default_results_dir(study, options.preset))
    runs = plan(study, options)
    if only:
        known = [r.run_id for r in runs] + [slug(c.label) for c in study.configurations]
        selected = [r for r in runs if only in (r.run_id, slug(r.configuration.label))]
        if not selected:
            raise ConfigError(f"--only {only!r} matches no run; expected a run id or configuration: "
                              f"{', '.join(known)}.")
        runs_to_do = selected
    else:
        runs_to_do = runs
    index, count = shard or shard_from_environment()
    mine = [r for i, r in enumerate(runs_to_do) if i % count == index]

    if dry_run:
        print_plan(study, options, runs, results_dir, mine, log)
        return 0
    io.write_json(results_dir / "study.json", describe_study(study, options, runs))
    log(f"{study.name}: {study.question}")
    log(f"{protocol(study, options)}; {len(mine)} of {len(runs)} runs in this shard ({index}/{count}), "
        f"results in {results_dir}")
    failed = []
    for n, run in enumerate(mine, start=1):
        run_dir = results_dir / "runs" / run.run_id
        prefix = f"[{n}/{len(mine)}] {run.run_id}"
        lock = RunLock(run_dir)
        if run_status(run_dir) == "done":
            check_same_run(run_dir, run.resolved)
            write_run_diagrams(run.config, run_dir, title=run.configuration.label)  # if a kill cut them short
            log(f"{prefix}: done, skipped")
            continue
        if not lock.acquire():
            log(f"{prefix}: being trained by another process, skipped")
            continue
        try:
            if run_status(run_dir) == "failed":
                log(f"{prefix}: failed last time ({_failure(run_dir)}); retrying")
            train(run.config, run_dir, log=lambda line, p=prefix: log(f"{p}: {line.split(': ', 1)[-1]}"),
                  on_built=lambda model, run=run, run_dir=run_dir: write_run_diagrams(
                      run.config, run_dir, title=run.configuration.label, model=model))
        except ConfigError:
            raise
        except Exception as error:  # recorded in failure.json by train(); the study goes on
            failed.append(run.run_id)
            cause = error if isinstance(error, RunFailed) else f"{type(error).__name__}: {error}"
            log(f"{prefix}: FAILED ({cause}); it will be retried on the next call")
        finally:
            lock.release()
    report.write_study_report(results_dir)
    log(f"{study.name}: tables and plots in {results_dir}" + (f"; {len(failed)} failed: {', '.join(failed)}"
                                                               if failed else ""))
    return 1 if failed else 0


def _failure(run_dir: Path) -> str:
    return io.read_json(run_dir / "failure.json", {}).get("error", "unknown error")


def print_plan(study, options, runs, results_dir, mine, log):
    from ablation.run import build_model
    from builders import count_macs, count_params

    log(f"{study.name}: {study.question}\n{protocol(study, options)}; results in {results_dir}")
    log(f"{'run':28} {'configuration':20} {'model':22} {'params':>12} {'MACs':>10} {'status':8} note")
    counts = {}  # a configuration's net is the same for every seed: built once
    for run in runs:
        if run.configuration.label not in counts:
            model = build_model(run.resolved)
            counts[run.configuration.label] = (count_params(model)["trainable_params"], count_macs(model))
        params, macs = counts[run.configuration.label]
        note = ("" if run in mine else "other shard") + (f" smoke: {run.downsized}" if run.downsized else "")
        log(f"{run.run_id:28} {run.configuration.label:20} {run.config.model:22} {params:>12,} {macs / 1e6:>9,.1f}M "
            f"{status(results_dir / 'runs' / run.run_id):8} {note.strip()}")


def main(study: Study, argv=None) -> int:
    """The command line of every study module: `python -m studies.NAME --help`."""
    import argparse

    from ablation import prepare_console

    prepare_console()
    from ablation.cli import add_run_arguments, run_command

    parser = argparse.ArgumentParser(prog=f"python -m studies.{study.name}", description=study.question)
    parser.add_argument("--preset", default="paper", choices=PRESETS,
                        help="paper: the published protocol; smoke: the whole study in minutes on a CPU, "
                             "downsized and labelled as such (default: %(default)s)")
    add_run_arguments(parser, single_run=False)
    parser.add_argument("--seeds", help=f"comma-separated seeds (default: {','.join(map(str, study.seeds))})")
    parser.add_argument("--results-dir", help=f"(default: results/{study.name}, results/{study.name}-smoke)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs with params, MACs and status")
    parser.add_argument("--only", help="one run id or configuration label (as in --dry-run)")
    parser.add_argument("--shard", help="I/N: run every N-th run starting at I (default: from SLURM_ARRAY_TASK_ID"
                                        "/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/JOB_COMPLETIONS)")
    args = parser.parse_args(argv)

    def run():
        options = Options(preset=args.preset, dataset=args.dataset, epochs=args.epochs, seeds=_parse_seeds(args.seeds),
                          strategy=args.strategy, precision=args.precision, jit_compile=args.jit_compile,
                          data_dir=args.data_dir)
        return run_study(study, options, results_dir=args.results_dir, only=args.only,
                         shard=parse_shard(args.shard) if args.shard else None, dry_run=args.dry_run)

    return run_command(run, kept="finished runs and epochs")


def _parse_seeds(text):
    if text is None:
        return None
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds {text!r} is not valid; expected comma-separated non-negative integers, "
                          f"e.g. 42,43,44.")
    return seeds
