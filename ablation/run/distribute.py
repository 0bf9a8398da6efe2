"""Where a run computes: the tf.distribute strategy and the dtype policy.

`auto` takes MirroredStrategy over every GPU when there are several, else the one device
(the first GPU, or the CPU). `mirrored` with no GPU mirrors over the logical CPU devices, which
is how the multi-replica path is tested on CPU. The recipe's batch is the global batch: Keras
splits it across the replicas.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import tensorflow as tf


def make_strategy(name: str):
    """The strategy for `name` (one of choices.STRATEGIES, checked by RunConfig.resolve), and a
    description of the devices it runs on."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return _mirrored(tuple(devices)), devices
    # One device: TensorFlow's default strategy places ops on the first GPU, or the CPU.
    return tf.distribute.get_strategy(), [gpus[0].name if gpus else "/device:CPU:0"]


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per process and device set, shared by every run a process trains (a
    study's runs one after the other): a second strategy over the same devices starts its
    collective-op keys afresh, and its first all-reduce of a net of another size fails with
    "Shape mismatch in the collective instance"."""
    return tf.distribute.MirroredStrategy(list(devices))


def set_determinism(deterministic: bool) -> None:
    """TensorFlow's deterministic kernels for every op from now on, in this whole process (it has
    no way back): with the seeds set, the same run gives bitwise the same weights. An op without a
    deterministic kernel then raises instead of varying."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def set_seeds(seed: int) -> None:
    """Python's, NumPy's, Keras's and TensorFlow's seeds, from a run's seed.

    Seed 0 sets TensorFlow's global seed to 2**31 - 2 instead (TensorFlow takes seeds modulo
    2**31 - 1): with a global seed of 0, TensorFlow compares an op's seed with 0
    (`random_seed.get_seed`), which for the per-epoch seed tensor of the data pipeline's shuffle
    is a symbolic bool, and every run with seed 0 failed."""
    keras.utils.set_random_seed(seed)
    if seed == 0:
        tf.random.set_seed(2**31 - 2)


def set_precision(precision: str) -> None:
    """Mixed precision computes in float16/bfloat16 with float32 weights; the builders keep the
    logits in float32, and Keras wraps the optimizer in loss scaling for mixed_float16. `precision`:
    one of choices.PRECISIONS, checked by RunConfig.resolve."""
    keras.mixed_precision.set_global_policy(precision)


@contextlib.contextmanager
def precision_policy(precision: str):
    previous = keras.mixed_precision.global_policy()
    set_precision(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def device_kind() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x GPU ({details.get('device_name', 'unknown')})"
    return f"CPU ({len(tf.config.list_logical_devices('CPU'))} logical device(s))"
