"""`python -m ablation`: one training run, reports, the model table and the benchmark.

Bad input ends with one line on stderr naming the bad value and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys


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
    parser = argparse.ArgumentParser(prog="python -m ablation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the model presets with params and multiply-accumulates")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
