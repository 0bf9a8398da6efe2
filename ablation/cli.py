"""`python -m ablation`: one training run, reports, the model table and the benchmark.

Bad input ends with one line on stderr naming the bad value and exit status 2, no traceback
(set ABLATION_DEBUG=1 to see it). Ctrl-C keeps every finished epoch: run the command again.
"""

from __future__ import annotations

import argparse
import os
import sys

from ablation.errors import ConfigError
from ablation.run import RunFailed


def add_run_arguments(parser, *, single_run=True):
    """Options shared by `ablation train` and every study (one spelling for each)."""
    parser.add_argument("--dataset", default=None if not single_run else "cifar10",
                        help="a tensorflow-datasets name (cifar10, cifar100, svhn_cropped, cats_vs_dogs, ...) "
                             "or npz:PATH with keras.datasets keys (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the recipe's); the lr milestones scale with it")
    add_device_arguments(parser)
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")


def add_device_arguments(parser):
    from ablation.distribute import PRECISIONS, STRATEGIES

    parser.add_argument("--strategy", default="auto", choices=STRATEGIES,
                        help="auto: MirroredStrategy over all GPUs when there are several, else one device "
                             "(default: %(default)s)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="(default: %(default)s)")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "on", "off"),
                        help="XLA for the train step; auto lets Keras decide: on for one GPU, off on CPU and under "
                             "tf.distribute (default: %(default)s)")


def cmd_train(args):
    from ablation.run import RunConfig, train

    recipe = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                ("learning_rate", args.learning_rate)) if v is not None}
    model = {k: v for k, v in (("dropout_rate", args.dropout_rate), ("block_type", args.block_type)) if v is not None}
    config = RunConfig(model=args.model, dataset=args.dataset, recipe=args.recipe, recipe_overrides=recipe,
                       model_overrides=model, seed=args.seed, validation_fraction=args.validation_fraction,
                       augment=not args.no_augment, max_steps_per_epoch=args.max_steps_per_epoch,
                       strategy=args.strategy, precision=args.precision, jit_compile=args.jit_compile,
                       data_dir=args.data_dir)
    train(config, args.out)


def cmd_bench(args):
    import json

    from ablation.bench import BenchConfig, format_report, run_bench

    config = BenchConfig(model=args.model, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                         dataset=args.dataset, precision=args.precision, jit_compile=args.jit_compile,
                         strategy=args.strategy)
    result = run_bench(config, log=(lambda *_: None) if args.json else lambda line: print(line, flush=True))
    print(json.dumps(result, indent=2) if args.json else format_report(result))


def cmd_report(args):
    from ablation.report import write_study_report

    frame = write_study_report(args.results_dir)
    done = int((frame["status"] == "done").sum())
    print(f"{args.results_dir}: results.csv, summary.md, test_results_summary.json and plots rebuilt "
          f"from {done} finished of {len(frame)} runs")


def cmd_models(args):
    from builders import PRESETS, count_macs, count_params

    print(f"{'model':24} {'builder':16} {'input':12} {'recipe':6} {'params':>12} {'MACs/image':>12}")
    for name, preset in PRESETS.items():
        model = preset.build()
        params = count_params(model)["trainable_params"]
        shape = "x".join(map(str, preset.input_shape))
        print(f"{name:24} {preset.family:16} {shape:12} {preset.recipe:6} {params:>12,} "
              f"{count_macs(model) / 1e6:>11,.1f}M", flush=True)


def build_parser():
    from ablation.recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m ablation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="one training run into a self-describing folder",
                                description="Train one model the way its paper did; re-running the same "
                                            "command resumes it, or does nothing if it finished.")
    train.add_argument("--model", required=True, help="a preset name (python -m ablation models lists them)")
    add_run_arguments(train)
    train.add_argument("--recipe", choices=list(RECIPES), help="training recipe (default: the model's paper's)")
    train.add_argument("--batch-size", type=int, help="global batch, split across replicas (default: the recipe's)")
    train.add_argument("--learning-rate", type=float, help="initial learning rate (default: the recipe's)")
    train.add_argument("--dropout-rate", type=float, help="dropout between the convs of a block (Wide ResNets)")
    train.add_argument("--block-type", help='the paper\'s block type, e.g. "B(3,1,3)" (Wide ResNets)')
    train.add_argument("--seed", type=int, default=42, help="weights, split, data order (default: %(default)s)")
    train.add_argument("--validation-fraction", type=float, default=0.1,
                       help="of the training split, for model selection (default: %(default)s)")
    train.add_argument("--max-steps-per-epoch", type=int, help="cut every epoch short (smoke runs)")
    train.add_argument("--no-augment", action="store_true", help="no pad-crop-flip augmentation")
    train.add_argument("--out", required=True, help="the run folder")
    train.set_defaults(func=cmd_train)

    from ablation.bench import __doc__ as bench_doc

    bench = commands.add_parser("bench", help="training throughput, MFU, input pipeline, loop overhead, memory",
                                description=bench_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--model", default="wrn-28-2", help="a preset name (default: %(default)s)")
    bench.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    bench.add_argument("--steps", type=int, default=10, help="timed training steps (default: %(default)s)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first: tracing (default: %(default)s)")
    bench.add_argument("--dataset", help="npz:PATH or a tfds name (default: synthetic CIFAR-shaped images)")
    add_device_arguments(bench)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=cmd_bench)

    report = commands.add_parser("report", help="rebuild a study's tables and plots from its run folders")
    report.add_argument("results_dir", help="a study's results folder, e.g. results/depth_vs_width")
    report.set_defaults(func=cmd_report)

    models = commands.add_parser("models", help="list the model presets with params and multiply-accumulates")
    models.set_defaults(func=cmd_models)
    return parser


def run_command(action, *, kept="finished epochs") -> int:
    """The exit protocol of every command line here: `action()`'s status; bad input (ConfigError)
    as one line on stderr and status 2; a failed run as one line naming its failure.json and
    status 1; Ctrl-C as status 130, saying that `kept` survive."""
    try:
        return action() or 0
    except ConfigError as error:
        if os.environ.get("ABLATION_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        if os.environ.get("ABLATION_DEBUG"):
            raise
        print(f"error: the run in {error.out} failed ({error}); its traceback is in "
              f"{error.out / 'failure.json'}; run the same command again to retry it.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept} are kept; run the same command again to go on.", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.func(args))
