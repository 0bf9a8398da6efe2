"""The command lines of the study modules (`python -m studies.NAME`) and of the search modules
(`python -m studies.tune_dropout`)."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ablation.cli.options import (
    add_deterministic_argument,
    add_protocol_argument,
    add_retrain_stale_argument,
    add_study_arguments,
    study_options,
)
from ablation.core import layout
from ablation.core.console import run_command
from ablation.core.errors import ConfigError
from ablation.run.config import RunConfig, preset_of
from ablation.study.claiming import parse_shard
from ablation.study.cost import total_text
from ablation.study.declaration import SearchDefaults, Study
from ablation.study.parallel import run_parallel
from ablation.study.planning import plan
from ablation.study.runner import run_study, runs_left
from ablation.study.tuning import TUNERS, Search, run_search, search_cost

# ----------------------------------------------------------------------------------------------
# python -m studies.NAME


def run_study_command(study: Study, args, argv: Sequence[str], relaunch: Sequence[str] | None) -> int:
    """A study from its parsed options: at once, or as `--parallel` worker processes of `relaunch + argv`
    (no more of them than runs are left to train)."""
    options = study_options(args)
    if args.parallel < 1:
        raise ConfigError(f"--parallel {args.parallel} is not valid; expected a positive number of processes.")
    results_dir = Path(args.results_dir or layout.results_folder(study.name, options.protocol))
    runs = None
    if args.parallel > 1:
        if args.shard:
            raise ConfigError(f"--parallel {args.parallel} with --shard {args.shard} is not valid; --parallel "
                              f"starts workers that claim runs: pass one or the other.")
        runs = plan(study, options)  # every run is checked here, before any process starts
        left = len(runs_left(study, options, runs, results_dir, retrain_stale=args.retrain_stale, only=args.only))
        workers = min(args.parallel, left)
        if workers < args.parallel:
            print(f"--parallel {args.parallel}: {_workers_for(left, args.dry_run)}",
                  file=sys.stderr if args.json else sys.stdout)
        if workers > 1 and not args.dry_run:
            if relaunch is None:
                raise ConfigError("--parallel needs the study's command (python -m studies.NAME) to start its "
                                  "workers.")
            # argparse keeps an option's last value: the children are single workers, without tables.
            return run_parallel([*relaunch, *argv, "--parallel", "1", "--worker"], workers, results_dir,
                                [run.run_id for run in runs])
    return run_study(study, options, results_dir=results_dir, only=args.only,
                     shard=parse_shard(args.shard) if args.shard else None, dry_run=args.dry_run, as_json=args.json,
                     write_report=not args.worker, retrain_stale=args.retrain_stale, runs=runs)


def _workers_for(left: int, dry_run: bool) -> str:
    if left <= 1:
        return f"{'no run is' if left == 0 else '1 run is'} left to train; no worker process is started"
    return f"{left} runs are left to train; {left} worker processes {'would be' if dry_run else 'are'} started"


def study_main(study: Study, argv=None, relaunch: Sequence[str] | None = None) -> int:
    """The command line of every study module: `python -m studies.NAME --help`. `relaunch` is the
    command that starts this study again (for `--parallel`'s worker processes)."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{study.name}", description=study.question)
    add_study_arguments(parser, seeds=",".join(map(str, study.seeds)),
                        results_dir=layout.results_folders_text(study.name))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    return run_command(lambda: run_study_command(study, args, argv, relaunch), kept="finished runs and epochs")


# ----------------------------------------------------------------------------------------------
# python -m studies.tune_dropout (a search module)


def search_main(name: str, defaults: SearchDefaults, argv=None) -> int:
    """The command line of a search module: `python -m studies.tune_dropout --help`."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{name}",
                                     description="keras-tuner search over the dropout rate, on the validation split.")
    add_protocol_argument(parser, f"paper: the recipe's epochs, {defaults.max_trials} trials; smoke: "
                                  f"{defaults.smoke_max_trials} trials of {defaults.smoke_epochs} short epochs, "
                                  f"{defaults.smoke_executions_per_trial} executions each (default: %(default)s)")
    parser.add_argument("--model", default=defaults.model, help="a preset name (default: %(default)s)")
    parser.add_argument("--dataset", default=defaults.dataset, help="tfds name or npz:PATH (default: %(default)s)")
    parser.add_argument("--tuner", default="bayesian", choices=TUNERS, help="(default: %(default)s)")
    parser.add_argument("--max-trials", type=int, help="trials to run in all, including earlier calls' "
                                                       "(not for hyperband, which sizes itself from --epochs)")
    parser.add_argument("--executions-per-trial", type=int, help="seeds per trial, each score kept")
    parser.add_argument("--epochs", type=int, help="epochs per execution (default: the recipe's; smoke: "
                                                   f"{defaults.smoke_epochs})")
    parser.add_argument("--seed", type=int, default=42, help="validation split, and execution i's seed is seed + i")
    parser.add_argument("--min-rate", type=float, default=0.0)
    parser.add_argument("--max-rate", type=float, default=0.5)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--tune-learning-rate", action="store_true", help="also search lr x0.5, x1, x2")
    add_deterministic_argument(parser)
    parser.add_argument("--results-dir", help=f"(default: {layout.results_folders_text(name)})")
    add_retrain_stale_argument(parser, "the search")
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    parser.add_argument("--dry-run", action="store_true", help="the search's cost (random or bayesian: "
                                                               "max-trials x executions, and the winner retrained)")
    parser.add_argument("--json", action="store_true", help="with --dry-run: one JSON object")
    args = parser.parse_args(argv)
    smoke = args.protocol == "smoke"

    def run():
        if "dropout_rate" not in inspect.signature(preset_of(args.model).builder).parameters:
            raise ConfigError(f"model {args.model!r} has no dropout_rate; expected a Wide ResNet preset (wrn-...).")
        epochs = args.epochs if args.epochs is not None else (defaults.smoke_epochs if smoke else None)
        run_config = RunConfig(model=args.model, dataset=args.dataset, seed=args.seed, data_dir=args.data_dir,
                               deterministic=args.deterministic,
                               recipe_overrides={} if epochs is None else {"epochs": epochs},
                               max_steps_per_epoch=defaults.smoke_max_steps_per_epoch if smoke else None)
        search = Search(
            run=run_config, tuner=args.tuner,
            max_trials=_given(args.max_trials, defaults.smoke_max_trials if smoke else defaults.max_trials),
            executions_per_trial=_given(args.executions_per_trial, defaults.smoke_executions_per_trial if smoke
                                        else defaults.executions_per_trial),
            min_rate=args.min_rate, max_rate=args.max_rate, step=args.step,
            tune_learning_rate=args.tune_learning_rate, protocol=args.protocol)
        if args.dry_run:
            estimate = search_cost(search)
            print(json.dumps(estimate, indent=2) if args.json else
                  f"cost: {estimate['runs_to_train']} runs of {args.model} ({search.max_trials} trials x "
                  f"{search.executions_per_trial} executions, and the winner retrained), {total_text(estimate)}")
            return 0
        return run_search(search, args.results_dir or layout.results_folder(name, args.protocol),
                          retrain_stale=args.retrain_stale)

    return run_command(run, kept="finished trials")


def _given(value, default):
    """A flag's value if it was given (0 included: the validators refuse it), else the default."""
    return default if value is None else value
