"""What runs cost before they start: training compute, wall time on this machine, GPU-hours.

One cost model, `estimate`, serves `--dry-run`'s figures, the study's remaining time in the
progress lines, and the order in which a study's workers take runs (most expensive first).

- **Compute.** 2 FLOPs per multiply-accumulate; a training image costs a forward pass and a
  backward pass of about twice its cost (3 passes), an evaluated image (validation every epoch,
  the test split once) one pass.
- **Wall time on this machine.** A study costs its process start and its tables, plots and pages;
  a run costs a start-up (building the net, tracing the training
  and evaluation graphs, the first epoch's extra, saving) that grows with its layers, plus its
  compute at a rate that grows with the work per layer (thin nets keep a CPU or GPU less busy).
  Both come from a profile of this machine (`machine_profile`): two reference nets of different
  depth and width trained for real by `train()` on synthetic data, about a minute once, then
  cached per machine (CPU model, cores, GPUs, TensorFlow version) in `cache_dir()`.
- **GPU-hours.** The compute at a named GPU's dense peak times a utilisation assumed from the
  work per layer (`gpu_utilisation`; the assumption is written out in docs/benchmarks.md), plus
  the start-up measured here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ablation.core import io, layout, records
from ablation.core.console import duration
from ablation.report import tables
from ablation.report.diagrams import write_run_diagrams
from ablation.run import data, npz
from ablation.run.bench import FLOPS_PER_MAC, TRAINING_PASSES
from ablation.run.config import ResolvedRun, RunConfig, build_model
from ablation.run.training import train
from builders import count_macs, count_params

# Dense tensor-core peaks, FLOP/s: TF32 for float32 training (TensorFlow's default on Ampere and
# later), bfloat16 or float16 for mixed precision. NVIDIA's data sheets (SXM parts, no sparsity).
GPU_PEAKS = {"A100": {"float32": 156e12, "mixed": 312e12}, "H100": {"float32": 495e12, "mixed": 989e12}}
PROFILE_NETS = ("resnet-56", "wrn-16-2")  # deep and thin, shallow and wider: start-up and rate apart
PROFILE_STEPS = 6  # per epoch, two epochs: the second is the steady rate
PROFILE_VERSION = 2  # bump when the profile's measurement changes: older caches are measured again


@dataclasses.dataclass(frozen=True)
class Net:
    """What the cost of a net depends on: multiply-accumulates per image and weighted layers."""

    macs: float
    layers: int
    params: int = 0  # trainable

    @property
    def macs_per_layer(self) -> float:
        return self.macs / max(1, self.layers)


def net_of(run: ResolvedRun) -> Net:
    """The net a run trains, counted (built once, then cleared)."""
    model = build_model(run)
    try:
        layers = sum(isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) for layer in _all_layers(model))
        return Net(macs=float(count_macs(model)), layers=int(layers), params=count_params(model)["trainable_params"])
    finally:
        keras.backend.clear_session()


def _all_layers(model):
    for layer in model.layers:
        yield from (_all_layers(layer) if isinstance(layer, keras.Model) else [layer])


@dataclasses.dataclass(frozen=True)
class Profile:
    """This machine's start-up per run (seconds = startup + startup_per_layer x layers) and its
    training rates (FLOP/s) at the reference nets' work per layer."""

    machine: str
    startup: float
    startup_per_layer: float
    rates: tuple  # ((macs_per_layer, flop_per_second), ...) increasing in macs_per_layer
    study_overhead: float = 0.0  # a study's process start and its tables, plots and pages
    version: int = PROFILE_VERSION

    def startup_seconds(self, net: Net) -> float:
        return max(0.0, self.startup + self.startup_per_layer * net.layers)

    def rate(self, net: Net) -> float:
        """FLOP/s at this net's work per layer: log-log between the reference nets, constant outside."""
        (x0, r0), (x1, r1) = self.rates
        x = min(max(net.macs_per_layer, x0), x1)
        if x1 == x0:
            return r0
        weight = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
        return math.exp((1 - weight) * math.log(r0) + weight * math.log(r1))


@dataclasses.dataclass(frozen=True)
class Cost:
    """A run's estimated cost."""

    net: Net
    flops: float  # training and evaluation
    seconds: float  # on this machine, start-up included
    gpu_hours: dict  # {GPU name: hours}

    def to_json(self) -> dict:
        return {"training_flops": self.flops, "estimated_seconds": self.seconds, "gpu_hours": self.gpu_hours}


def images(run: ResolvedRun, splits: tuple[int, int]) -> tuple[int, int]:
    """(training images, evaluated images) over the run, as the pipeline cuts the data: the
    validation share of the training split, whole batches, a smoke run's cap on steps."""
    train_all, test = splits
    validation = int(round(train_all * run.validation_fraction))
    batch = run.recipe_fields.batch_size
    steps = (train_all - validation) // batch
    steps = min(steps, run.max_steps_per_epoch or steps)
    epochs = run.recipe_fields.epochs
    return steps * batch * epochs, validation * epochs + test


def gpu_utilisation(net: Net) -> float:
    """The share of a big GPU's peak a net keeps busy, assumed: 5% for CIFAR ResNets' thin layers
    (about 2M MACs each), rising with the work per layer to 50% from 200M MACs (WRN-28-10's)."""
    return min(0.5, max(0.05, 0.05 + 0.45 * math.log(net.macs_per_layer / 2e6) / math.log(100)))


def estimate(run: ResolvedRun, net: Net, splits: tuple[int, int], profile: Profile) -> Cost:
    train_images, eval_images = images(run, splits)
    flops = FLOPS_PER_MAC * net.macs * (TRAINING_PASSES * train_images + eval_images)
    startup = profile.startup_seconds(net)
    precision = "float32" if run.precision == "float32" else "mixed"
    gpu_hours = {name: (flops / (peaks[precision] * gpu_utilisation(net)) + startup) / 3600
                 for name, peaks in GPU_PEAKS.items()}
    return Cost(net=net, flops=flops, seconds=startup + flops / profile.rate(net), gpu_hours=gpu_hours)


def dataset_splits(dataset: str, data_dir=None) -> tuple[int, int]:
    """(training, test) images of a dataset without reading its images: an npz's headers, a
    prepared tfds dataset's metadata, or the known sizes of common ones; else CIFAR-10's, saying so.
    A name that is neither a tfds dataset nor npz:PATH is the one-line error of the run itself."""
    if dataset.startswith("npz:"):
        return npz.split_sizes(dataset)  # its one-line error for a file the run would refuse
    data.open_source(dataset, data_dir=data_dir)  # reads nothing: checks the name, as the run would
    import tensorflow_datasets as tfds

    try:
        splits = tfds.builder(dataset, data_dir=data_dir).info.splits
        if "train" in splits and "test" in splits:
            return splits["train"].num_examples, splits["test"].num_examples
        if "train" in splits:  # part of the train split is the test split, as `data` cuts it
            return data.held_out_splits(splits["train"].num_examples)
    except Exception:  # not prepared here: the table below
        pass
    if dataset not in data.SPLIT_SIZES:
        warnings.warn(f"dataset {dataset!r} is not prepared here and its size is not known to this suite: the cost "
                      f"assumes CIFAR-10's {data.SPLIT_SIZES['cifar10'][0]:,} training and "
                      f"{data.SPLIT_SIZES['cifar10'][1]:,} test images per epoch.", stacklevel=2)
    return data.SPLIT_SIZES.get(dataset, data.SPLIT_SIZES["cifar10"])


# ----------------------------------------------------------------------------------------------
# The profile of this machine


def cache_dir() -> Path:
    """Where the profile is kept: $ABLATION_CACHE, else $XDG_CACHE_HOME/ablation, else ~/.cache/ablation."""
    if os.environ.get("ABLATION_CACHE"):
        return Path(os.environ["ABLATION_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ablation"


def machine_name() -> str:
    """What the profile is valid for: the CPU model and cores, the GPUs, TensorFlow's version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", "GPU")
            for g in tf.config.list_physical_devices("GPU")]
    # The machine's cores, not this process's share: a --parallel child reads the machine's profile.
    return f"{cpu}, {os.cpu_count()} cores{''.join(', ' + g for g in gpus)}, TensorFlow {tf.__version__}"


def machine_profile(log=print) -> Profile:
    """This machine's profile, measured once (about a minute) and then read from the cache."""
    machine = machine_name()
    path = profile_path(machine)
    cached = io.read_json(path)
    if cached is not None and cached.get("version") == PROFILE_VERSION and cached.get("machine") == machine:
        return Profile(**{**cached, "rates": tuple(tuple(r) for r in cached["rates"])})
    log(f"measuring this machine once for the cost estimates ({machine}); kept in {path}")
    profile = measure_profile(machine)
    io.write_json(path, dataclasses.asdict(profile))
    return profile


def profile_path(machine: str) -> Path:
    """Where `machine`'s profile is cached."""
    return cache_dir() / f"profile-{profile_file_word(machine)}.json"


def measure_profile(machine: str) -> Profile:
    """Train each of PROFILE_NETS for two short epochs on synthetic CIFAR-shaped data; the second
    epoch gives its rate, the rest of its wall time its start-up."""
    points = []
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        n = 128 * PROFILE_STEPS + 256
        npz = Path(folder) / "synthetic.npz"
        np.savez(npz, x_train=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y_train=rng.integers(0, 10, n), x_test=rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8),
                 y_test=rng.integers(0, 10, 256))
        for model in PROFILE_NETS:
            config = RunConfig(model=model, dataset=f"npz:{npz}", recipe_overrides={"epochs": 2},
                               max_steps_per_epoch=PROFILE_STEPS)
            run = config.resolve()
            net = net_of(run)
            start = time.perf_counter()
            out = Path(folder) / model
            # As a study's run: its diagrams drawn too.
            train(config, out, log=lambda *_: None,
                  on_built=lambda built, c=config, o=out: write_run_diagrams(c, o, title=model, model=built))
            seconds = time.perf_counter() - start
            keras.backend.clear_session()
            history = records.read_history(out)
            steady = float(history["epoch_seconds"].iloc[-1])
            train_images, eval_images = images(run, (n, 256))
            per_epoch_flops = FLOPS_PER_MAC * net.macs * (TRAINING_PASSES * train_images / 2
                                                          + int(round(n * run.validation_fraction)))
            rate = per_epoch_flops / steady
            flops = FLOPS_PER_MAC * net.macs * (TRAINING_PASSES * train_images + eval_images)
            points.append((net, rate, seconds - flops / rate))
        overhead = _process_start() + _report_seconds(Path(folder), npz)
    (net_a, _, startup_a), (net_b, _, startup_b) = points
    per_layer = (startup_a - startup_b) / (net_a.layers - net_b.layers)
    rates = tuple(sorted((net.macs_per_layer, rate) for net, rate, _ in points))
    return Profile(machine=machine, startup=startup_a - per_layer * net_a.layers, startup_per_layer=per_layer,
                   rates=rates, study_overhead=overhead)


def _process_start() -> float:
    """Seconds for a new process to import what a study needs (TensorFlow, Keras, the suite)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ablation.study.runner"], check=True, capture_output=True)
    return time.perf_counter() - start


def _report_seconds(folder: Path, npz: Path) -> float:
    """Seconds to write the tables, plots and pages of a study of the profile's two runs."""
    runs = tuple(records.PlannedRunEntry(model, model, 42, "", RunConfig(
        model=model, dataset=f"npz:{npz}", recipe_overrides={"epochs": 2},
        max_steps_per_epoch=PROFILE_STEPS).resolve().to_json()) for model in PROFILE_NETS)
    (folder / layout.RUNS_DIR).mkdir()
    for model in PROFILE_NETS:
        (folder / model).rename(records.run_dir_of(folder, model))
    records.write_study(folder, records.StudyRecord(
        name="profile", question="How fast is this machine?", varies=(), heatmap=None, protocol="smoke",
        protocol_description="profile", published_protocol="", baseline=PROFILE_NETS[0], cumulative=False,
        seeding=records.Seeding(), configurations=tuple(records.ConfigurationEntry(m, m, None) for m in PROFILE_NETS),
        runs=runs))
    start = time.perf_counter()
    tables.write_study_report(folder)
    return time.perf_counter() - start


def profile_file_word(text: str) -> str:
    """The machine's name as a file name's word."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:120]


def total(costs: list[Cost], profile: Profile) -> dict:
    """What runs cost together, launched as one study or search: with its process's start and its
    tables at the end (the profile's study overhead)."""
    return {"runs_to_train": len(costs), "training_flops": sum(c.flops for c in costs),
            "estimated_seconds": profile.study_overhead + sum(c.seconds for c in costs),
            "gpu_hours": {name: sum(c.gpu_hours[name] for c in costs) for name in GPU_PEAKS},
            "machine": profile.machine}


def total_text(summed: dict) -> str:
    """A `total` as the dry runs print it: compute, time on this machine, GPU-hours."""
    return (f"{flops_text(summed['training_flops'])} (training and evaluation), about "
            f"{duration(summed['estimated_seconds'])} on this machine "
            f"({summed['machine']}), or " + ", ".join(f"{hours:.2g} {name} GPU-hours"
                                                      for name, hours in summed["gpu_hours"].items()))


def flops_text(flops: float) -> str:
    """12.3 TFLOP, 280 PFLOP."""
    for unit, size in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12)):
        if flops >= size:
            return f"{flops / size:.3g} {unit}"
    return f"{flops / 1e9:.3g} GFLOP"
