"""The valid values of every setting that takes one of a few names, written once.

Validators (`checked`), argparse `choices` and error messages all read them from here.
"""

import re

from ablation.core.errors import ConfigError

# tf.distribute strategies (ablation.run.distribute). MultiWorkerMirroredStrategy is not one: with
# model.fit it fails under Keras 3.15 ("Attempt to convert a value (PerReplica...)"); a study
# spreads over machines by its runs instead (--shard, --parallel; README, "Scaling out").
STRATEGIES = ("auto", "one_device", "mirrored")
# Keras dtype policies.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# XLA for the train step, and what each mode hands Keras's `jit_compile`: "auto" lets Keras decide
# (XLA on one GPU; off on CPU and under tf.distribute).
JIT_MODES = {"auto": "auto", "on": True, "off": False}
# How a study or a search is run: `paper`, the published protocol; `smoke`, the whole of it in
# minutes on a CPU, downsized and labelled as such.
PROTOCOLS = ("paper", "smoke")


# The largest value a seed may take (not design.MAX_SEEDS, how many seeds a study may spend): a
# seed seeds NumPy, Python and TensorFlow (keras.utils.set_random_seed), and NumPy takes 32 bits.
LARGEST_SEED = 2**32 - 1


def seed_is_valid(seed) -> bool:
    return isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= LARGEST_SEED


def one_of(values) -> str:
    return ", ".join(values)


def checked(name: str, value, valid):
    """`value`, if it is one of `valid`; else the one-line error naming it and the valid values."""
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid; expected one of {one_of(valid)}.")
    return value


# A study's or a search's name is the name of its results folder (and the heading of its pages):
# one path component that every filesystem and shell takes as it is.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def folder_name(name: str, value) -> str:
    """`value`, if it is a folder name; else the one-line error naming it and what would be valid."""
    if not isinstance(value, str) or not FOLDER_NAME.fullmatch(value):
        raise ConfigError(f"{name}={value!r} is not valid; expected a folder name: up to 100 letters, digits and "
                          f"'.', '_', '+', '-', starting with a letter or digit.")
    return value
