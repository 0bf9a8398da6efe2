"""One training run, the way the papers did it, leaving a complete, self-describing folder.

    from ablation.run import RunConfig, train
    metrics = train(RunConfig(model="wrn-16-2", dataset="npz:cifar10.npz", recipe_overrides={"epochs": 15}),
                    "results/wrn-16-2")

The folder (all files written atomically):
    config.json            the resolved config, library versions, devices and strategy
    history.csv            per epoch: train/validation cross-entropy and accuracy, lr, seconds
    training_history.json  the same, column-wise
    metrics.json           test accuracy and loss (final weights, test split read once, at the end),
                           best validation accuracy and its epoch, params, MACs, timings; its
                           presence marks the run finished
    per_class_accuracy.csv, confusion_matrix.png, learning_curves.png
    best.keras, final.keras, tensorboard/
    state/                 the last finished epoch's weights and optimizer, while training
    failure.json           why the last attempt failed, if it did

Re-running the same config resumes from `state/`; re-running a finished run does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import platform
import shutil
import time
import traceback
from pathlib import Path
from typing import Mapping

import numpy as np

from ablation import io
from ablation.errors import ConfigError

# --jit-compile: "auto" lets Keras decide (XLA on one GPU; off on CPU and under tf.distribute).
JIT_MODES = {"auto": "auto", "on": True, "off": False}

# Model arguments a run may override, and the dataset decides (num_classes).
MODEL_OVERRIDES = ("dropout_rate", "block_type", "depth", "widen_factor", "blocks_per_group", "dropout_position",
                   "bn_momentum", "bn_epsilon", "padding", "shortcut", "residual", "input_shape")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: str
    dataset: str = "cifar10"
    recipe: str | None = None  # None: the recipe of the model's paper (its preset's)
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)  # e.g. epochs, batch_size
    model_overrides: Mapping = dataclasses.field(default_factory=dict)  # e.g. dropout_rate, block_type
    seed: int = 42
    validation_fraction: float = 0.1
    augment: bool = True
    max_steps_per_epoch: int | None = None  # smoke runs: cut every epoch short
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: str = "auto"  # one of JIT_MODES
    data_dir: str | None = None  # tensorflow-datasets' data_dir

    def resolve(self) -> dict:
        """Everything that defines the run, validated, as plain JSON data (the run's identity)."""
        from ablation.distribute import PRECISIONS, STRATEGIES
        from ablation.recipes import get_recipe

        preset = preset_of(self.model)
        overrides = self.checked_model_overrides()
        recipe_name = self.recipe or preset.recipe
        recipe = get_recipe(recipe_name)
        if recipe_name == preset.recipe:
            recipe = recipe.replace(**preset.recipe_overrides)
        recipe = recipe.replace(**self.recipe_overrides)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} is not valid; expected a non-negative integer.")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"max_steps_per_epoch={self.max_steps_per_epoch!r} is not valid; expected >= 1.")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r} is not valid; expected one of "
                              f"{', '.join(STRATEGIES[:3])}.")
        if self.jit_compile not in JIT_MODES:
            raise ConfigError(f"jit_compile={self.jit_compile!r} is not valid; expected one of {', '.join(JIT_MODES)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is not valid; expected one of {', '.join(PRECISIONS)}.")
        model_kwargs = {**preset.kwargs, **overrides}
        if "input_shape" in model_kwargs:
            model_kwargs["input_shape"] = list(model_kwargs["input_shape"])
        return {
            "model": self.model, "builder": preset.family, "model_kwargs": model_kwargs,
            "input_shape": list(model_kwargs.get("input_shape") or preset.input_shape),
            "dataset": self.dataset, "recipe": recipe_name, "recipe_fields": dataclasses.asdict(recipe),
            "seed": self.seed, "validation_fraction": self.validation_fraction, "augment": self.augment,
            "max_steps_per_epoch": self.max_steps_per_epoch, "strategy": self.strategy,
            "precision": self.precision, "jit_compile": self.jit_compile,
        }

    def checked_model_overrides(self) -> dict:
        """The model overrides, each one a builder argument of this model's preset, and the block
        type in the paper's notation ("B(1, 3,1)" is "B(1,3,1)"): validated before any run trains."""
        from builders import format_block_type, parse_block_type

        preset = preset_of(self.model)
        accepted = inspect.signature(preset.builder).parameters
        for key, value in self.model_overrides.items():
            if key not in MODEL_OVERRIDES or key not in accepted:
                valid = [k for k in MODEL_OVERRIDES if k in accepted]
                raise ConfigError(f"{key}={value!r} does not apply to model {self.model!r} "
                                  f"({preset.family}); it accepts {', '.join(valid)}.")
        overrides = dict(self.model_overrides)
        if "block_type" in overrides:
            with builder_arguments():
                overrides["block_type"] = format_block_type(parse_block_type(overrides["block_type"]))
        return overrides

    def title(self) -> str:
        """The net in the papers' words, for plot titles: "wrn-40-2, block_type B(1,3,1)"."""
        return ", ".join([self.model, *(f"{key} {_plain(value)}" for key, value in
                                        self.checked_model_overrides().items())])


def _plain(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


@contextlib.contextmanager
def builder_arguments():
    """The builders know nothing of this framework and raise ValueError for a bad argument; a net
    built from a configuration is a function of that configuration alone, so here it is bad input."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def preset_of(model: str):
    """The preset named `model`, or a ConfigError listing the known ones."""
    from builders import get_preset

    with builder_arguments():
        return get_preset(model)


def build_model(resolved: dict, **overrides):
    """The net of a resolved config (its preset, arguments and input shape), with `overrides`,
    e.g. num_classes from the data or the dropout rate a tuner drew."""
    kwargs = {**resolved["model_kwargs"], "input_shape": tuple(resolved["input_shape"]), **overrides}
    with builder_arguments():
        return preset_of(resolved["model"]).build(**kwargs)


def make_pipeline(config: RunConfig, resolved: dict, source):
    """The data pipeline of a run, from its config (used by runs and by tuning searches alike)."""
    from ablation import data

    return data.make_pipeline(source, image_shape=tuple(resolved["input_shape"]),
                              batch_size=resolved["recipe_fields"]["batch_size"], seed=config.seed,
                              validation_fraction=config.validation_fraction, augment=config.augment,
                              max_steps_per_epoch=config.max_steps_per_epoch)


def check_same_run(out: Path, resolved: dict) -> None:
    """Refuse a folder that holds another run: resuming it would mix two experiments."""
    previous = io.read_json(Path(out) / "config.json")
    if previous is not None and previous.get("run") != io.json_roundtrip(resolved):
        differences = "; ".join(_differences(previous.get("run", {}), resolved))
        raise ConfigError(f"{out} holds a different run ({differences}); "
                          f"choose another --out or --results-dir, or remove it.")


def recipe_of(resolved: dict):
    """The Recipe of a resolved config (JSON lists back to tuples)."""
    from ablation.recipes import Recipe

    return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in resolved["recipe_fields"].items()})


def run_status(run_dir: Path) -> str:
    """done, failed (last attempt), partial (epochs finished, resumable) or pending."""
    from ablation.callbacks import latest_state

    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").exists():
        return "done"
    if (run_dir / "failure.json").exists():
        return "failed"
    if latest_state(run_dir)[1] is not None:
        return "partial"
    return "pending"


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def train(config: RunConfig, out, *, log=print, on_built=None) -> dict:
    """Train (or resume, or skip) the run of `config` in folder `out`; returns its metrics.

    `on_built(model)` is called with the net before it trains (a study draws its diagrams from
    it: the net as trained, its classifier sized by the data).
    """
    out = Path(out)
    resolved = config.resolve()
    check_same_run(out, resolved)
    if (out / "metrics.json").exists():
        metrics = io.read_json(out / "metrics.json")
        log(f"{out}: already finished (test accuracy {metrics['test_accuracy']:.4f}); nothing to do.")
        return metrics
    from ablation.distribute import precision_policy

    try:
        with precision_policy(config.precision):
            return _train(config, resolved, out, log, on_built)
    except (KeyboardInterrupt, ConfigError):
        raise  # an interrupted run resumes; bad input is the caller's to report
    except Exception as error:  # Keras, TensorFlow, the disk: the run failed, its input may be fine
        failure = RunFailed(out, error)
        io.write_json(out / "failure.json", {"error": str(failure), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "traceback": traceback.format_exc()})
        raise failure from error


class RunFailed(RuntimeError):
    """A run stopped by an error inside it, recorded in its `failure.json` with the traceback.

    Not bad input (that is a ConfigError): the configuration may be fine, and the next call
    retries the run from its last finished epoch.
    """

    def __init__(self, out: Path, error: BaseException):
        lines = str(error).strip().splitlines()
        super().__init__(f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": "))
        self.out = out


def _train(config: RunConfig, resolved: dict, out: Path, log, on_built) -> dict:
    import keras

    from ablation import data, distribute, report
    from ablation.callbacks import STATE_DIR, RunRecorder, latest_state, read_history
    from ablation.recipes import compile_model
    from builders import count_macs, count_params

    recipe = recipe_of(resolved)
    strategy, devices = distribute.make_strategy(config.strategy)
    source = data.open_source(config.dataset, data_dir=config.data_dir)
    keras.utils.set_random_seed(config.seed)  # same seed, same initial weights
    with strategy.scope():
        # Built before the data passes below, so that bad model arguments fail at once.
        model = build_model(resolved, num_classes=len(source.class_names))
    if on_built is not None:
        on_built(model)
    pipeline = make_pipeline(config, resolved, source)
    steps = pipeline.steps_per_epoch
    with strategy.scope():
        compile_model(model, recipe, steps, jit_compile=JIT_MODES[config.jit_compile])
        initial_epoch, state = latest_state(out)
        if state is not None:
            model.load_weights(state)  # weights and optimizer (built by compile_model)
            log(f"{out}: resuming after epoch {initial_epoch} of {recipe.epochs}")
    history = read_history(out)
    history = history[history["epoch"] <= initial_epoch]

    params = count_params(model)
    io.write_json(out / "config.json", {
        "run": resolved,
        "data": {"class_names": list(source.class_names), "test_split": source.test_split,
                 "num_train": pipeline.num_train, "num_validation": pipeline.num_validation,
                 "num_test": pipeline.num_test, "steps_per_epoch": steps, "mean": pipeline.mean, "std": pipeline.std},
        "environment": environment(strategy, devices, model),
    })
    (out / "failure.json").unlink(missing_ok=True)
    log(f"{out}: {config.title()} ({params['trainable_params']:,} params) on {source.name}, "
        f"{pipeline.num_train}/{pipeline.num_validation}/{pipeline.num_test} train/validation/test images, "
        f"{recipe.epochs} epochs of {steps} steps, batch {recipe.batch_size}, {len(devices)} replica(s)")

    recorder = RunRecorder(out, history=history, epochs=recipe.epochs, steps_per_epoch=steps,
                           batch_size=recipe.batch_size, schedule=recipe.schedule(steps), log=log)
    callbacks = [recorder, keras.callbacks.TensorBoard(out / "tensorboard", write_graph=False, profile_batch=0)]
    model.fit(pipeline.train_batches(initial_epoch, recipe.epochs), epochs=recipe.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, validation_data=pipeline.validation if pipeline.num_validation else None,
              callbacks=callbacks, shuffle=False, verbose=0)
    with io.atomic_path(out / "final.keras") as tmp:
        if recorder.best_saved_epoch == recipe.epochs:
            shutil.copyfile(out / "best.keras", tmp)  # the final epoch was the best: the same model
        else:
            model.save(tmp)

    # The test split, read once: final weights, as the papers report (not the best epoch).
    logits, labels = predict(model, pipeline.test)
    test = report.classification_metrics(logits, labels, source.class_names)
    history = read_history(out)
    trained = history["epoch"] > initial_epoch
    best = history.loc[history["val_accuracy"].idxmax()] if history["val_accuracy"].notna().any() else None
    metrics = {
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "test_error": 100 * (1 - test["accuracy"]),
        "best_val_accuracy": None if best is None else float(best["val_accuracy"]),
        "best_epoch": None if best is None else int(best["epoch"]),
        "final_val_accuracy": None if best is None else float(history["val_accuracy"].iloc[-1]),
        "epochs": int(len(history)), **params, "macs": count_macs(model),
        "training_seconds": float(history["epoch_seconds"].sum()),
        "seconds_per_epoch": float(history["epoch_seconds"].median()) if len(history) else None,
        "images_per_second": _steady(history.loc[trained, "images_per_second"]) if trained.any() else None,
    }
    report.write_run_exports(out, history, test, source.class_names, title=f"{config.title()} on {source.name}")
    io.write_json(out / "metrics.json", metrics)
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)
    log(f"{out}: test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}, "
        f"best validation accuracy {_fmt(metrics['best_val_accuracy'])} at epoch {metrics['best_epoch']}")
    return metrics


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"  # 0.0 is a value: not `value or nan`


def _steady(images_per_second):
    """Median throughput, leaving out the first epoch of an attempt (graph tracing) when there are more."""
    values = list(images_per_second)
    return float(np.median(values[1:] if len(values) > 1 else values))


def predict(model, dataset):
    """Logits and labels of a batched (image, label) dataset, in its order.

    `model.predict` rather than a loop of `predict_on_batch`: it splits the batches across
    replicas under MirroredStrategy (predict_on_batch hands each replica the whole batch).
    """
    logits = model.predict(dataset.map(lambda images, labels: images), verbose=0)
    labels = np.concatenate([labels.numpy() for _, labels in dataset])
    return np.asarray(logits, np.float32), labels


def environment(strategy, devices, model) -> dict:
    import keras
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from ablation.distribute import device_kind

    return {
        "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "device": device_kind(), "strategy": type(strategy).__name__, "devices": devices,
        "replicas": strategy.num_replicas_in_sync, "dtype_policy": keras.mixed_precision.global_policy().name,
        "jit_compile": bool(getattr(model, "jit_compile", False)),
    }
