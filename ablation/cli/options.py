"""The options of the command lines, each spelled once: a run's, a study's, the device's, and old
spellings kept as deprecated aliases."""

from __future__ import annotations

import argparse
import sys

from ablation.core import layout
from ablation.core.choices import JIT_MODES, LARGEST_SEED, PRECISIONS, PROTOCOLS, STRATEGIES, seed_is_valid
from ablation.core.errors import TIED_INITIAL_WEIGHTS, ConfigError
from ablation.design import MAX_SEEDS
from ablation.run.axes import AXES, MODEL, axis, needs_error, parse_setting
from ablation.run.config import RunConfig
from ablation.study.declaration import Options


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option that scripts may still use: it works, with a one-line notice."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.new} (it means the same).", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_alias(parser, old: str, new: str, dest: str, **kwargs) -> None:
    """`old` as a deprecated spelling of the option `new` (same `dest`), hidden from --help."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, help=argparse.SUPPRESS, **kwargs)


def add_run_arguments(parser, *, single_run=True):
    """Options shared by `ablation train` and every study (one spelling for each)."""
    parser.add_argument("--dataset", default=None if not single_run else "cifar10",
                        help="a tensorflow-datasets name (cifar10, cifar100, svhn_cropped, cats_vs_dogs, ...) "
                             "or npz:PATH with keras.datasets keys (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the recipe's); the lr milestones scale with it")
    add_device_arguments(parser)
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")


def add_deterministic_argument(parser):
    parser.add_argument("--deterministic", action="store_true",
                        help="TensorFlow's deterministic kernels, XLA off, every seed set: the same command gives "
                             "bitwise the same weights and metrics (slower; recorded in "
                             f"{layout.CONFIG_FILE})")


def add_device_arguments(parser):
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES,
                        help="auto: MirroredStrategy over all GPUs when there are several, else one device "
                             "(default: %(default)s). MultiWorkerMirroredStrategy is not offered: it fails with "
                             "model.fit under Keras 3.15; spread a study over machines by its runs (--shard)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="(default: %(default)s)")
    add_deterministic_argument(parser)
    parser.add_argument("--jit-compile", default="auto", choices=tuple(JIT_MODES),
                        help="XLA for the train step; auto lets Keras decide: on for one GPU, off on CPU and under "
                             "tf.distribute (default: %(default)s)")


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
    # What a --parallel parent starts: a worker that trains, leaving the nets' check before and the tables
    # after to its parent.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


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
