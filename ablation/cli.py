"""Every command line: `python -m ablation {train,report,serve,sweep,models,axes,bench}`, `python -m studies.NAME`
and the search modules. The top layer: it parses, calls the library, and turns errors into exits.

Bad input ends with one line on stderr naming the bad value and exit status 2, no traceback
(set ABLATION_DEBUG=1 to see it); a failed run with one line naming its failure.json and exit 1;
a run folder another process trains, exit 75. Ctrl-C keeps every finished epoch: run the command
again. (The statuses: ablation.core.errors.)

`main`, `study_main` and `search_main` change no process-wide state, so tests call them directly;
the entry points (`ablation/__main__.py`, the `__main__` blocks of the study modules) call
`console.prepare_console()` first.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ablation.core import io, layout
from ablation.core.choices import LARGEST_SEED, PROTOCOLS, seed_is_valid
from ablation.core.console import (
    add_alias,
    add_deterministic_argument,
    add_device_arguments,
    add_run_arguments,
    run_command,
)
from ablation.core.errors import TIED_INITIAL_WEIGHTS, ConfigError
from ablation.core.records import Status
from ablation.design import MAX_SEEDS
from ablation.report.server import exposed, make_server
from ablation.run import axes as axes_module
from ablation.run import bench as bench_module
from ablation.run.axes import AXES, MODEL, axis, needs_error, parse_setting, typed
from ablation.run.bench import BenchConfig, format_report, run_bench
from ablation.run.config import RunConfig, preset_of
from ablation.run.recipes import RECIPES, get_recipe
from ablation.run.training import train
from ablation.study import sweep as sweep_module
from ablation.study.claiming import parse_shard
from ablation.study.cost import total_text
from ablation.study.declaration import Options, SearchDefaults, Study
from ablation.study.parallel import run_parallel
from ablation.study.planning import plan
from ablation.study.runner import run_study
from ablation.study.seeding import write_report
from ablation.study.sweep import check_nets, sweep_study
from ablation.study.tuning import TUNERS, Search, run_search, search_cost
from builders import PRESETS, count_macs, count_params

# ----------------------------------------------------------------------------------------------
# python -m ablation


def cmd_train(args):
    if not args.out.strip():
        raise ConfigError(f"--out {args.out!r} is not valid; expected the run's folder, e.g. runs/wrn-16-2.")
    train(train_config(args), args.out, retrain_stale=args.retrain_stale)


def train_config(args) -> RunConfig:
    """`ablation train`'s run: its flags, and each `--set NAME=VALUE` by its axis (a flag and a --set
    of the same axis are refused)."""
    flags = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                               ("learning_rate", args.learning_rate), ("dropout_rate", args.dropout_rate),
                               ("block_type", args.block_type)) if v is not None}
    settings = {k: axis(k).parse(v) if isinstance(v, str) else v for k, v in flags.items()}
    for text in args.set:
        name, value = parse_setting(text, "--set")
        if name in settings:
            given = f"--{name.replace('_', '-')} {flags[name]}" if name in flags else f"--set {name}=..."
            raise ConfigError(f"--set {text!r} is not valid: {given} already sets {name}; expected each axis once.")
        settings[name] = axis(name).parse(value)
    model = {k: v for k, v in settings.items() if AXES[k].acts_on == MODEL}
    recipe = {k: v for k, v in settings.items() if AXES[k].acts_on != MODEL}
    config = RunConfig(model=args.model, dataset=args.dataset, recipe=args.recipe, recipe_overrides=recipe,
                       model_overrides=model, seed=args.seed, validation_fraction=args.validation_fraction,
                       augment=not args.no_augment, max_steps_per_epoch=args.max_steps_per_epoch,
                       strategy=args.strategy, precision=args.precision, jit_compile=args.jit_compile,
                       data_dir=args.data_dir, deterministic=args.deterministic)
    resolved = config.resolve()  # every value checked here, before anything else
    for name, value in settings.items():  # asked for, but nothing without the axis it needs
        if AXES[name].needs and not resolved.departs(AXES[name].needs):
            raise ConfigError(needs_error(AXES[name], value))
    return config


def cmd_bench(args):
    config = BenchConfig(model=args.model, batch_size=args.batch_size, timed_steps=args.timed_steps,
                         untimed_steps=args.untimed_steps, dataset=args.dataset, precision=args.precision,
                         jit_compile=args.jit_compile, strategy=args.strategy, deterministic=args.deterministic)
    result = run_bench(config, log=(lambda *_: None) if args.json else lambda line: print(line, flush=True))
    print(json.dumps(result, indent=2) if args.json else format_report(result))


def cmd_report(args):
    frame = write_report(args.results_dir)
    done = int((frame["status"] == Status.DONE).sum())
    print(f"{args.results_dir}: {layout.RESULTS_FILE}, {layout.SUMMARY_FILE}, {layout.TEST_RESULTS_FILE}, plots and "
          f"{layout.INDEX_PAGE} rebuilt "
          f"from {done} finished of {len(frame)} runs")


def cmd_serve(args):
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"{args.folder!r} is not a folder; expected a results folder, e.g. results/depth_vs_width.")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not valid; expected 0..65535 (0: any free port).")
    server = make_server(folder, args.host, args.port)
    host, port = server.server_address[:2]
    page = "" if (folder / layout.INDEX_PAGE).exists() else f" (no {layout.INDEX_PAGE} yet: python -m ablation report FOLDER)"
    print(f"serving {folder} read-only at http://{host}:{port}/{page}; Ctrl-C stops", flush=True)
    if exposed(server):
        print(f"warning: {host}:{port} is reachable from other machines: anyone who can reach it reads every file of "
              f"{folder}; --host 127.0.0.1 and ssh -L {port}:localhost:{port} keep it to you", file=sys.stderr, flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)


def cmd_sweep(args):
    seeds = None if args.seeds == AUTO_SEEDS else parse_seeds(args.seeds)
    study = sweep_study(args.model, args.vary, seeds=seeds or (42,), recipe=args.recipe,
                        baseline=args.baseline, name=args.name)
    if not args.dry_run and args.report:  # a --parallel worker (--no-report): its parent checked the nets
        check_nets(study, study_options(args))
    return run_study_command(study, args, args.argv, relaunch=[sys.executable, "-m", "ablation"])


def axis_listing() -> list[dict]:
    """Every axis as `python -m ablation axes` shows it: name, what it acts on, its default (the
    value; None where each preset or recipe sets its own, said in `default_text`), what it takes,
    the reference it follows, and an example as a run id spells it."""
    recipes = {name: get_recipe(name) for name in RECIPES}
    rows = []
    for a in AXES.values():
        if a.acts_on == MODEL:
            default, text = None, "the preset's"
        else:
            own = {name: getattr(recipe, a.name) for name, recipe in recipes.items()}
            presets = {getattr(get_recipe(p.recipe).replace(**p.recipe_overrides), a.name) for p in PRESETS.values()}
            if set(own.values()) | presets == {a.default}:
                default, text = a.default, typed(a.default) + ("" if a.default else " (off)")
            else:
                default = None
                text = "the recipe's: " + ", ".join(f"{name} {typed(value)}" for name, value in own.items())
                if presets - set(own.values()):
                    text += " (some presets' own: " + ", ".join(sorted(map(typed, presets - set(own.values())))) + ")"
        rows.append({"name": a.name, "acts_on": a.acts_on, "default": io.json_roundtrip(default), "default_text": text,
                     "values": a.values.describe(), "choices": list(getattr(a.values, "options", ())) or None,
                     "reference": a.reference, "summary": a.summary, "in_run_id": a.word(a.example)})
    return rows


def cmd_axes(args):
    rows = axis_listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(row["name"]) for row in rows)
    for acts_on in dict.fromkeys(row["acts_on"] for row in rows):
        print(f"{acts_on} axes:")
        for row in (row for row in rows if row["acts_on"] == acts_on):
            print(f"  {row['name']:{width}}  default {row['default_text']}; in a run id: {row['in_run_id']}\n"
                  f"  {'':{width}}  {row['values']}: {row['summary']}\n  {'':{width}}  {row['reference']}")


def cmd_models(args):
    print(f"{'model':24} {'builder':16} {'input':12} {'recipe':6} {'params':>12} {'MACs/image':>12}")
    for name, preset in PRESETS.items():
        model = preset.build()
        params = count_params(model)["trainable_params"]
        shape = "x".join(map(str, preset.input_shape))
        print(f"{name:24} {preset.family:16} {shape:12} {preset.recipe:6} {params:>12,} "
              f"{count_macs(model) / 1e6:>11,.1f}M", flush=True)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m ablation", description="one training run (train), a study "
                                     "declared on the command line (sweep), reports (report, serve), the model and "
                                     "axis tables (models, axes) and the benchmark (bench)")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="one training run into a self-describing folder",
                                       description="Train one model the way its paper did; re-running the same "
                                                   "command resumes it, or does nothing if it finished.")
    train_parser.add_argument("--model", required=True, help="a preset name (python -m ablation models lists them)")
    add_run_arguments(train_parser)
    train_parser.add_argument("--recipe", choices=list(RECIPES), help="training recipe (default: the model's paper's)")
    # Four axes with flags of their own, said as their axes say them (--set NAME=VALUE takes any axis).
    for name, default in (("batch_size", "the recipe's"), ("learning_rate", "the recipe's"),
                          ("dropout_rate", "the preset's; Wide ResNets"), ("block_type", "the preset's; Wide ResNets")):
        train_parser.add_argument("--" + name.replace("_", "-"), help=f"{AXES[name].summary} (default: {default})")
    train_parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                              help="an axis at a value, any of python -m ablation axes (model, recipe or data); "
                                   "repeat for more, e.g. --set label_smoothing=0.1 --set lr_schedule=cosine")
    train_parser.add_argument("--seed", type=int, default=42, help="weights, split, data order (default: %(default)s)")
    train_parser.add_argument("--validation-fraction", type=float, default=0.1,
                              help="of the training split, for model selection (default: %(default)s)")
    train_parser.add_argument("--max-steps-per-epoch", type=int, help="cut every epoch short (smoke runs)")
    train_parser.add_argument("--no-augment", action="store_true", help="no pad-crop-flip augmentation")
    train_parser.add_argument("--out", required=True, help="the run folder")
    add_retrain_stale_argument(train_parser, "the run")
    train_parser.set_defaults(func=cmd_train)

    bench = commands.add_parser("bench", help="training throughput, MFU, input pipeline, loop overhead, memory",
                                description=bench_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--model", default="wrn-28-2", help="a preset name (default: %(default)s)")
    bench.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    bench.add_argument("--timed-steps", type=int, default=10, help="training steps timed (default: %(default)s)")
    bench.add_argument("--untimed-steps", type=int, default=3,
                       help="training steps run first and not timed: graph tracing (default: %(default)s)")
    add_alias(bench, "--steps", "--timed-steps", "timed_steps", type=int)
    add_alias(bench, "--warmup", "--untimed-steps", "untimed_steps", type=int)
    bench.add_argument("--dataset", help="npz:PATH or a tfds name (default: synthetic CIFAR-shaped images)")
    add_device_arguments(bench)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=cmd_bench)

    report = commands.add_parser("report", help="rebuild a study's tables and plots from its run folders")
    report.add_argument("results_dir", help="a study's results folder, e.g. results/depth_vs_width")
    report.set_defaults(func=cmd_report)

    serve = commands.add_parser("serve", help="serve a results folder's pages over HTTP (read-only)",
                                description=f"Serve a results folder (its {layout.INDEX_PAGE} and run pages) over HTTP, "
                                            "read-only, e.g. on a remote GPU machine reached with ssh -L 8000:"
                                            "localhost:8000. The pages also open from the files directly.")
    serve.add_argument("folder", help="a results folder, e.g. results/depth_vs_width")
    serve.add_argument("--port", type=int, default=8000, help="(default: %(default)s; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default: %(default)s, this machine only; 0.0.0.0 exposes "
                            "the results to the network)")
    serve.set_defaults(func=cmd_serve)

    sweep = commands.add_parser("sweep", help="an ablation from the command line: the product of --vary values, "
                                              "run as a study", description=sweep_module.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--model", required=True, help="a preset name (python -m ablation models lists them)")
    sweep.add_argument("--vary", action="append", required=True, metavar="NAME=V1,V2,...",
                       help="an axis (python -m ablation axes: a model argument, recipe field or data augmentation) "
                            "and its values; repeat for a product")
    sweep.add_argument("--baseline", help="the configuration the others are compared with, as its name in "
                                          "--dry-run (default: the first)")
    sweep.add_argument("--name", help="the study's name (default: sweep-MODEL-NAMES)")
    sweep.add_argument("--recipe", choices=list(RECIPES), help="training recipe (default: the model's paper's)")
    add_study_arguments(sweep, seeds="42", results_dir=layout.results_folders_text("NAME"))
    sweep.set_defaults(func=cmd_sweep)

    models = commands.add_parser("models", help="list the model presets with params and multiply-accumulates")
    models.set_defaults(func=cmd_models)

    axes = commands.add_parser("axes", help="list every axis a run, --vary and --set can turn, with its default and "
                                            "reference", description=axes_module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    axes.add_argument("--json", action="store_true", help="a list of objects: name, acts_on, default, default_text, "
                                                          "values, choices, reference, summary, in_run_id")
    axes.set_defaults(func=cmd_axes)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what `sweep --parallel` starts again in each worker process
    return run_command(lambda: args.func(args),
                       kept="finished runs and epochs" if args.command == "sweep" else "finished epochs")


# ----------------------------------------------------------------------------------------------
# python -m studies.NAME


def add_protocol_argument(parser, help_text: str):
    parser.add_argument("--protocol", default="paper", choices=PROTOCOLS, help=help_text)
    add_alias(parser, "--preset", "--protocol", "protocol", choices=PROTOCOLS)


def add_study_arguments(parser, *, seeds: str, results_dir: str):
    """The options of every study, declared (python -m studies.NAME) or swept (python -m ablation sweep)."""
    add_protocol_argument(parser, "paper: the published protocol; smoke: the whole study in minutes on a CPU, "
                                  "downsized and labelled as such (default: %(default)s)")
    add_run_arguments(parser, single_run=False)
    parser.add_argument("--seeds", help=f"comma-separated seeds (default: {seeds}), or auto: 3 seeds per "
                                        f"configuration, more in rounds where a comparison with the baseline is "
                                        f"still open, until each is decided or --max-seeds is spent")
    parser.add_argument("--max-seeds", type=int, default=MAX_SEEDS,
                        help="the seeds per configuration --seeds auto may use (default: %(default)s)")
    parser.add_argument("--results-dir", help=f"(default: {results_dir})")
    parser.add_argument("--dry-run", action="store_true", help="list the runs with params, MACs, status and "
                                                                 "their cost: compute, time here, GPU-hours")
    parser.add_argument("--json", action="store_true", help="with --dry-run: the plan and its cost as one JSON "
                                                            "object")
    parser.add_argument("--only", help="one run id or configuration name (as in --dry-run)")
    parser.add_argument("--shard", help="I/N: a fixed share, every N-th run (most expensive first) starting at I "
                                        "(default: none; every copy of the command on the same results folder, "
                                        "a SLURM array task or an Indexed Job pod alike, claims the next run that "
                                        "is neither done nor held, most expensive first)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="run as N worker processes on this machine, each with its own GPU (round-robin) or "
                             "its share of the CPU cores; tables once at the end (default: 1)")
    add_retrain_stale_argument(parser, "each stale run")
    parser.add_argument("--no-report", dest="report", action="store_false", help=argparse.SUPPRESS)


def add_retrain_stale_argument(parser, what: str):
    parser.add_argument("--retrain-stale", action="store_true",
                        help=f"train {what} anew if it {TIED_INITIAL_WEIGHTS}, keeping the old folder beside it "
                             f"as NAME.stale")


def study_options(args) -> Options:
    auto = args.seeds == AUTO_SEEDS
    return Options(protocol=args.protocol, dataset=args.dataset, epochs=args.epochs,
                   seeds=None if auto else parse_seeds(args.seeds), auto_seeds=auto, max_seeds=args.max_seeds,
                   strategy=args.strategy, precision=args.precision, jit_compile=args.jit_compile,
                   data_dir=args.data_dir, deterministic=args.deterministic)


def run_study_command(study: Study, args, argv: Sequence[str], relaunch: Sequence[str] | None) -> int:
    """A study from its parsed options: at once, or as `--parallel` worker processes of `relaunch + argv`."""
    options = study_options(args)
    if args.parallel < 1:
        raise ConfigError(f"--parallel {args.parallel} is not valid; expected a positive number of processes.")
    if args.parallel > 1 and not args.dry_run:
        if args.shard:
            raise ConfigError(f"--parallel {args.parallel} with --shard {args.shard} is not valid; --parallel "
                              f"starts workers that claim runs: pass one or the other.")
        if relaunch is None:
            raise ConfigError("--parallel needs the study's command (python -m studies.NAME) to start its workers.")
        runs = plan(study, options)  # every run is checked here, before any process starts
        results_dir = Path(args.results_dir or layout.results_folder(study.name, options.protocol))
        # argparse keeps an option's last value: the children are single workers, without tables.
        return run_parallel([*relaunch, *argv, "--parallel", "1", "--no-report"], args.parallel, results_dir,
                            [run.run_id for run in runs])
    return run_study(study, options, results_dir=args.results_dir, only=args.only,
                     shard=parse_shard(args.shard) if args.shard else None, dry_run=args.dry_run, as_json=args.json,
                     write_report=args.report, retrain_stale=args.retrain_stale)


def study_main(study: Study, argv=None, relaunch: Sequence[str] | None = None) -> int:
    """The command line of every study module: `python -m studies.NAME --help`. `relaunch` is the
    command that starts this study again (for `--parallel`'s worker processes)."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{study.name}", description=study.question)
    add_study_arguments(parser, seeds=",".join(map(str, study.seeds)),
                        results_dir=layout.results_folders_text(study.name))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    return run_command(lambda: run_study_command(study, args, argv, relaunch), kept="finished runs and epochs")


AUTO_SEEDS = "auto"  # --seeds auto


def parse_seeds(text):
    if text is None:
        return None
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or not all(seed_is_valid(s) for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} is not valid; expected distinct comma-separated integers in "
                          f"0..{LARGEST_SEED}, e.g. 42,43,44, or auto.")
    return seeds


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
