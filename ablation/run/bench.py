"""`python -m ablation bench`: where a training step's time goes, against the machine's limit.

In one process it measures
  * the training throughput of the model's real training step (the run's optimizer, weight
    decay and metrics, fed by the run's input pipeline): the median of the timed steps, after
    untimed steps that trace the graph (not the recipe's learning-rate warm-up);
  * its arithmetic: MACs per image, achieved FLOP/s = 2 FLOPs per MAC x 3 (forward, and a
    backward pass of twice the forward's cost) x MACs x images/s, the matrix-multiply FLOP/s of
    this machine measured now in the precision that ran (bfloat16 for mixed_bfloat16, whose
    peak is twice float32's where the CPU or GPU has bf16 units) and in float32, and their ratio,
    the model FLOPs utilisation (mfu, against the precision that ran);
  * the input pipeline alone (augmentation included), and its ratio to training; and with each
    data axis on (mixup, CutMix, Cutout, RandAugment at `python -m ablation axes`'s example values),
    the pipeline followed by the axis's augmentation chain on the training device, as a training
    step runs it, and its ratio to training;
  * the overhead of our training loop (metrics, progress, history, checkpoints, TensorBoard)
    over a bare `model.fit` of the same net, optimizer and data: its cost per step and per
    epoch, measured, and what they add to a real epoch (the data set's, or CIFAR-10's 351
    steps of 128 for the synthetic default input);
  * the process's peak resident memory.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ablation.core import layout, records
from ablation.core.errors import ConfigError
from ablation.run import data, distribute
from ablation.run.augment import BatchAugmentation
from ablation.run.axes import AXES, DATA
from ablation.run.callbacks import PortableExport, RunRecorder
from ablation.run.config import RunConfig
from ablation.run.data import Source
from ablation.run.setup import RunSetup, set_up
from builders import count_macs

FLOPS_PER_MAC = 2
TRAINING_PASSES = 3  # forward, and backward at about twice the forward's cost
MATMUL_SIZE = 2048
# A real epoch of the synthetic input: CIFAR-10's training images after a run's validation images
# (45,000 after 5,000).
CIFAR10_TRAIN = data.SPLIT_SIZES["cifar10"][0] - round(data.SPLIT_SIZES["cifar10"][0] * RunConfig.validation_fraction)


# ----------------------------------------------------------------------------------------------
# The arithmetic (pure, tested with known inputs)


def training_flops_per_image(macs: float) -> float:
    return FLOPS_PER_MAC * TRAINING_PASSES * macs


def achieved_flops(macs: float, images_per_second: float) -> float:
    return training_flops_per_image(macs) * images_per_second


def matmul_flops(n: int, seconds: float) -> float:
    """An n x n by n x n product is n^3 multiply-adds: 2 n^3 FLOPs."""
    return FLOPS_PER_MAC * n**3 / seconds


def utilisation(achieved: float, peak: float) -> float:
    return achieved / peak


def overhead(ours_seconds: float, bare_seconds: float) -> float:
    """Extra time of our loop as a fraction of the bare loop's."""
    return ours_seconds / bare_seconds - 1.0


def images_per_second(batch_size: int, step_seconds) -> float:
    return batch_size / statistics.median(step_seconds)


# ----------------------------------------------------------------------------------------------
# Measurements


def matmul_dtype(precision: str) -> str:
    """The dtype a policy multiplies in: the peak its mfu is measured against."""
    return keras.mixed_precision.Policy(precision).compute_dtype


def measure_matmul(n=MATMUL_SIZE, repeats=7, dtype="float32") -> float:
    """The machine's matrix-multiply FLOP/s in `dtype` through TensorFlow (oneDNN/cuBLAS), median."""
    a, b = (tf.cast(tf.random.uniform((n, n)), dtype) for _ in range(2))
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)))
    product().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        times.append(time.perf_counter() - start)
    return matmul_flops(n, statistics.median(times))


class StepTimer(keras.callbacks.Callback):
    """Seconds between consecutive train-batch ends (so each includes waiting for input)."""

    def on_train_begin(self, logs=None):
        self.times, self.last = [], time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def synthetic_source(num_images=4096, shape=(32, 32, 3), num_classes=10, seed=0):
    """Random CIFAR-shaped images: throughput does not depend on what the pixels show."""
    rng = np.random.default_rng(seed)
    split = lambda n: tf.data.Dataset.from_tensor_slices(
        (rng.integers(0, 256, (n,) + tuple(shape), dtype=np.uint8), rng.integers(0, num_classes, n).astype(np.int64)))
    train, test = split(num_images), split(256)
    return Source("synthetic", tuple(str(i) for i in range(num_classes)), "test", read=lambda: (train, test))


@dataclasses.dataclass
class BenchConfig:
    model: str = "wrn-28-2"
    batch_size: int = 128
    timed_steps: int = 10
    untimed_steps: int = 3  # first, untimed: tracing the graph
    dataset: str | None = None  # None: synthetic CIFAR-shaped images
    precision: str = "float32"
    jit_compile: str = "auto"
    strategy: str = "auto"
    deterministic: bool = False  # to measure what TensorFlow's deterministic kernels cost


def run_bench(config: BenchConfig, log=print) -> dict:
    if config.timed_steps < 1 or config.untimed_steps < 0:
        raise ConfigError(f"timed_steps={config.timed_steps}, untimed_steps={config.untimed_steps} are not valid; "
                          f"expected timed_steps >= 1, untimed_steps >= 0.")
    # The training run it measures (seed 0: deterministic kernels refuse unseeded random ops; every
    # image trains), set up as every run is.
    run_config = RunConfig(model=config.model, dataset=config.dataset or RunConfig.dataset, seed=0,
                           validation_fraction=0.0, recipe_overrides={"batch_size": config.batch_size},
                           precision=config.precision, strategy=config.strategy, jit_compile=config.jit_compile,
                           deterministic=config.deterministic)
    input_shape = run_config.resolve().input_shape
    dtype = matmul_dtype(config.precision)
    log(f"measuring the {dtype} matrix-multiply rate ...")
    matmul = measure_matmul(dtype=dtype)
    matmul_float32 = matmul if dtype == "float32" else measure_matmul()
    synthetic = None if config.dataset else synthetic_source(num_images=max(4096, 2 * config.batch_size),
                                                              shape=input_shape)
    with set_up(run_config, source=synthetic) as run:
        strategy, devices, source = run.strategy, run.devices, run.source
        pipeline = run.pipeline
        model = run.compile(run.build(),
                            steps_per_epoch=min(pipeline.steps_per_epoch, config.untimed_steps + config.timed_steps))
        macs = count_macs(model)

        log(f"timing {config.timed_steps} training steps of {config.model} after {config.untimed_steps} untimed ones, "
            f"batch {config.batch_size} ...")
        step_times = _fit(model, pipeline, config.untimed_steps + config.timed_steps, [])[1][config.untimed_steps:]
        train_rate = images_per_second(config.batch_size, step_times)

        log("timing the input pipeline alone ...")
        pipeline_rate = _pipeline_rate(pipeline, batches=max(20, 2 * config.timed_steps))

        log("timing the input pipeline with each data axis on the device ...")
        augmentation_rates = {axis.word(axis.example): _augmentation_rate(run, axis, max(20, 2 * config.timed_steps),
                                                                          xla=bool(model.jit_compile))
                              for axis in DATA_AXES}

        log("timing our training loop against a bare model.fit ...")
        loop = _loop_overhead(model, config, run)

    # A real epoch: the data set's, or CIFAR-10's 45,000 training images for synthetic input.
    epoch_steps = (pipeline.num_train if config.dataset else CIFAR10_TRAIN) // config.batch_size
    achieved = achieved_flops(macs, train_rate)
    return {
        "model": config.model, "batch_size": config.batch_size, "timed_steps": config.timed_steps,
        "images_per_second": train_rate, "step_seconds_median": statistics.median(step_times),
        "macs": macs, "training_flops_per_image": training_flops_per_image(macs),
        "achieved_tflops": achieved / 1e12, "matmul_dtype": dtype, "matmul_tflops": matmul / 1e12,
        "matmul_float32_tflops": matmul_float32 / 1e12, "mfu": utilisation(achieved, matmul),
        "mfu_float32": utilisation(achieved, matmul_float32),
        "pipeline_images_per_second": pipeline_rate, "pipeline_ratio": pipeline_rate / train_rate,
        "augmentation_images_per_second": augmentation_rates,
        "augmentation_ratios": {name: rate / train_rate for name, rate in augmentation_rates.items()},
        "runner_overhead": loop.overhead(epoch_steps), "runner_overhead_short_epoch": loop.overhead(config.timed_steps),
        "runner_seconds_per_epoch": loop.fixed_seconds, "runner_seconds_per_step": loop.step_seconds,
        "epoch_steps": epoch_steps,
        "peak_rss_mb": peak_rss_mb(),
        "device": distribute.device_kind(), "devices": devices, "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync, "precision": config.precision,
        "deterministic": config.deterministic,
        "jit_compile_requested": config.jit_compile, "jit_compile": "on" if model.jit_compile else "off",
        "input": source.name,
    }


@dataclasses.dataclass
class LoopCost:
    """What our loop adds to a bare model.fit: per step, and once per epoch (checkpoints, history,
    TensorBoard, the best model when validation improves)."""

    bare_step: float
    step_seconds: float  # extra per step: our metrics and batch callbacks
    fixed_seconds: float  # extra per epoch

    def overhead(self, steps_per_epoch: int) -> float:
        bare = self.bare_step * steps_per_epoch
        return overhead(bare + self.step_seconds * steps_per_epoch + self.fixed_seconds, bare)


def _loop_overhead(model, config: BenchConfig, run: RunSetup) -> LoopCost:
    """A bare model.fit (same net, optimizer and weight decay; the loss alone, no callbacks) against
    ours (the run's metrics and callbacks), an epoch of `timed_steps` steps each, interleaved twice."""
    recipe, pipeline = run.resolved.recipe_fields, run.pipeline
    bare_model = run.build()
    with run.strategy.scope():
        bare_model.set_weights(model.get_weights())
        bare_model.compile(optimizer=recipe.make_optimizer(config.timed_steps), loss=model.loss,
                           jit_compile=model.jit_compile)
    _fit(bare_model, pipeline, max(config.untimed_steps, 1), [])  # tracing
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(2):  # interleaved, so that drift hits both alike
            bare.append(_fit(bare_model, pipeline, config.timed_steps, []))
            run_dir = Path(tmp) / f"run{attempt}"
            recorder = RunRecorder(run_dir, history=records.read_history(run_dir), epochs=1,
                                   steps_per_epoch=config.timed_steps, batch_size=config.batch_size,
                                   schedule=recipe.schedule(config.timed_steps),
                                   log=lambda *_: None)
            tensorboard = keras.callbacks.TensorBoard(run_dir / layout.TENSORBOARD_DIR, write_graph=False, profile_batch=0)
            ours.append(_fit(model, pipeline, config.timed_steps, [recorder, tensorboard]))
        export = PortableExport(model)  # the best checkpoint, as if validation improved every epoch: its
        export.save(Path(tmp) / layout.BEST_MODEL_FILE)  # copy is built once a run, then only saved
        start = time.perf_counter()
        export.save(Path(tmp) / layout.BEST_MODEL_FILE)
        best_save = time.perf_counter() - start
    (bare_total, bare_steps), (ours_total, ours_steps) = min(bare), min(ours)
    bare_step, ours_step = statistics.median(bare_steps), statistics.median(ours_steps)
    step_extra = max(0.0, ours_step - bare_step)
    fixed = max(0.0, (ours_total - bare_total) - config.timed_steps * step_extra) + best_save
    return LoopCost(bare_step=bare_step, step_seconds=step_extra, fixed_seconds=fixed)


def _fit(model, pipeline, steps, callbacks):
    """(seconds for the whole fit, seconds of each step) of one epoch of `steps` steps."""
    timer = StepTimer()
    start = time.perf_counter()
    model.fit(pipeline.train_batches(0, 10**6), epochs=1, steps_per_epoch=steps, callbacks=[*callbacks, timer],
              verbose=0, shuffle=False)
    return time.perf_counter() - start, timer.times


def _pipeline_rate(pipeline, batches: int) -> float:
    iterator = iter(pipeline.train_batches(0, 10**6))
    for _ in range(5):  # fill the caches and the prefetch buffer
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * pipeline.batch_size / (time.perf_counter() - start)


# The data axes that switch an augmentation on (cutmix_prob and randaugment_magnitude tune one).
DATA_AXES = tuple(axis for axis in AXES.values() if axis.acts_on == DATA and axis.needs is None)


def _augmentation_rate(run: RunSetup, axis, batches: int, *, xla: bool) -> float:
    """Images/s of the input pipeline followed by `axis`'s augmentation chain at its example value (the
    whole chain: the pipeline's crop and flip move onto the device with it), on the device, as the
    training step runs it (compiled by XLA where the step is)."""
    recipe = run.resolved.recipe_fields.replace(**{axis.name: axis.example})
    raw = dataclasses.replace(run.pipeline, augment_on_device=True)
    chain = BatchAugmentation(recipe, num_classes=run.num_classes, mean=raw.mean, std=raw.std, seed=raw.seed,
                              steps_per_epoch=raw.steps_per_epoch, augment=raw.augment)
    step = tf.function(lambda images, labels, index: tf.reduce_sum(chain(images, labels, index, xla=xla)[0]),
                       jit_compile=xla)
    iterator = iter(raw.train_batches(0, 10**6))
    for index in range(3):  # tracing, caches and the prefetch buffer
        step(*next(iterator), tf.constant(index, tf.int64)).numpy()
    start = time.perf_counter()
    for index in range(batches):
        step(*next(iterator), tf.constant(index, tf.int64)).numpy()  # .numpy(): wait for the device
    return batches * raw.batch_size / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def format_report(result: dict) -> str:
    xla = result["jit_compile"]
    if result["jit_compile_requested"] not in ("auto", xla):
        xla += f" (requested {result['jit_compile_requested']}; Keras turned it {xla})"
    return "\n".join([
        f"{result['model']}, batch {result['batch_size']}, {result['precision']}, XLA {xla}, "
        f"{result['strategy']} over {result['replicas']} replica(s) on {result['device']}"
        + (", deterministic kernels" if result["deterministic"] else ""),
        f"  training       {result['images_per_second']:8.1f} images/s   "
        f"(median step {result['step_seconds_median']:.3f} s over {result['timed_steps']} timed steps)",
        f"  arithmetic     {result['macs'] / 1e6:8.1f} M MACs/image -> {result['achieved_tflops'] * 1e3:.1f} "
        f"GFLOP/s achieved (2 x 3 x MACs x images/s)",
        f"  matmul peak    {result['matmul_tflops'] * 1e3:8.1f} GFLOP/s ({result['matmul_dtype']}, {MATMUL_SIZE}^3, "
        f"this run; float32 {result['matmul_float32_tflops'] * 1e3:.1f})",
        f"  mfu            {result['mfu']:8.2f}   (against the {result['matmul_dtype']} peak; "
        f"{result['mfu_float32']:.2f} of float32's)",
        f"  input pipeline {result['pipeline_images_per_second']:8.0f} images/s = {result['pipeline_ratio']:.1f} x "
        f"training",
        *(f"    {name + ' on the device':31} {rate:8.0f} images/s = {result['augmentation_ratios'][name]:.1f} x training"
          for name, rate in result["augmentation_images_per_second"].items()),
        f"  runner         {100 * result['runner_overhead']:+7.2f} % over a bare model.fit, over an epoch of "
        f"{result['epoch_steps']} steps ({result['runner_seconds_per_step'] * 1e3:.1f} ms a step, "
        f"{result['runner_seconds_per_epoch']:.2f} s an epoch; {100 * result['runner_overhead_short_epoch']:+.1f} % "
        f"over the {result['timed_steps']} timed steps alone)",
        f"  peak memory    {result['peak_rss_mb']:8.0f} MB resident",
    ])
