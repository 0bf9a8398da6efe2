"""`python -m ablation {train,report,serve,sweep,models,axes,bench}`: the parser and each command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ablation.cli.options import (
    AUTO_SEEDS,
    add_alias,
    add_device_arguments,
    add_retrain_stale_argument,
    add_run_arguments,
    add_study_arguments,
    parse_seeds,
    study_options,
    train_config,
)
from ablation.cli.studies import run_study_command
from ablation.core import io, layout
from ablation.core.console import run_command
from ablation.core.errors import ConfigError
from ablation.core.records import Status
from ablation.report.server import exposed, make_server
from ablation.run import axes as axes_module
from ablation.run import bench as bench_module
from ablation.run.axes import AXES, MODEL, typed
from ablation.run.bench import BenchConfig, format_report, run_bench
from ablation.run.recipes import RECIPES, get_recipe
from ablation.run.training import train
from ablation.study import sweep as sweep_module
from ablation.study.seeding import write_report
from ablation.study.sweep import check_nets, sweep_study
from builders import PRESETS, count_macs, count_params

# ----------------------------------------------------------------------------------------------
# python -m ablation


def cmd_train(args):
    if not args.out.strip():
        raise ConfigError(f"--out {args.out!r} is not valid; expected the run's folder, e.g. runs/wrn-16-2.")
    train(train_config(args), args.out, retrain_stale=args.retrain_stale)


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
    if not args.dry_run and not args.worker:  # a --parallel worker's parent checked the nets
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
    print(f"{'model':24} {'family':16} {'input':12} {'recipe':6} {'params':>12} {'MACs/image':>12}")
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
