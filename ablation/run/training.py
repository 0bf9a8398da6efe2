"""One training run, the way the papers did it, leaving a complete, self-describing folder.

    from ablation.run import RunConfig, train
    metrics = train(RunConfig(model="wrn-16-2", dataset="npz:cifar10.npz", recipe_overrides={"epochs": 15}),
                    "results/wrn-16-2")

The folder, every file written atomically (the names: ablation.core.layout): the resolved config
and how the net started, the history per epoch, the metrics (test accuracy and loss of the final
weights, the test split read once, at the end; best validation accuracy and its epoch; params,
MACs, timings; written last, marking the run finished), the per-class table and the figures,
best.keras and final.keras (the net in Keras's own layers, no optimizer: `keras.saving.load_model`
opens them with Keras alone; callbacks.PortableExport), TensorBoard's logs, and while it trains,
the last finished epoch's resumable state (weights and optimizer, ours).

Re-running the same config resumes from `state/`; re-running a finished run does nothing. A folder
trained from tied initial weights (before 2026-12-02: `run_folder.stale`) is refused, or with
`retrain_stale` kept aside as NAME.stale and trained anew.
"""

from __future__ import annotations

import platform
import shutil
import traceback
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_datasets as tfds

from ablation.core import io, layout, locks, plots, records, run_folder
from ablation.core.errors import ConfigError, DamagedFile, StaleRun
from ablation.run import distribute
from ablation.run.callbacks import RunRecorder
from ablation.run.config import RunConfig, run_identity
from ablation.run.setup import RunSetup, set_up
from builders import count_macs, count_params


def train(config: RunConfig, out, *, log=print, on_built=None, retrain_stale=False,
          seconds_after=None) -> records.Metrics:
    """Train (or resume, or skip) the run of `config` in folder `out`; returns its metrics.

    `on_built(model)` is called with the net before it trains (a study draws its diagrams from
    it: the net as trained, its classifier sized by the data). `seconds_after`, what a study has
    left after this run, puts the study's remaining time in the progress lines. A folder holding this run trained
    from tied initial weights is refused (StaleRun), or with `retrain_stale` moved aside and
    trained anew.
    """
    out = Path(out)
    resolved = config.resolve()
    if retrain_stale and run_folder.stale(out) and records.run_differences(out, resolved.to_json(), run_identity) == []:
        aside = records.move_aside(out)
        log(f"{out}: started from tied initial weights; kept as {aside}, training the run anew")
    # One trainer per run folder, whatever started it (train, a study, a shard, the tuner).
    with locks.locked(out):
        records.check_same_run(out, resolved.to_json(), run_identity)
        if run_folder.stale(out):
            raise StaleRun(out)
        metrics = records.read_metrics(out)
        if metrics is not None:
            log(f"{out}: already finished (test accuracy {metrics.test_accuracy:.4f}); nothing to do.")
            if damaged := run_folder.damaged_text(run_folder.damaged_files(out)):
                log(f"warning: {run_folder.damage_report(out, damaged)}")
            return metrics
        run_folder.remove_stale_temporaries(out)
        try:
            with set_up(config) as run:
                if run_folder.finished_without_metrics(out, resolved.recipe_fields.epochs):
                    return _rebuild_results(run, out, log)
                return _train(run, out, log, on_built, seconds_after)
        except (KeyboardInterrupt, ConfigError):
            raise  # an interrupted run resumes; bad input is the caller's to report
        except Exception as error:  # Keras, TensorFlow, the disk: the run failed, its input may be fine
            failure = records.record_failure(out, error, traceback.format_exc())
            # An error inside a trace can leave Keras's global state half-entered (a name scope
            # never exited prefixes every later variable name); the next run in this process, a
            # study's, must start clean.
            keras.backend.clear_session()
            raise failure from error


def _train(run: RunSetup, out: Path, log, on_built, seconds_after=None) -> records.Metrics:
    config, resolved, source = run.config, run.resolved, run.source
    recipe = resolved.recipe_fields
    net = run.build()  # before the data passes the pipeline, so that bad model arguments fail at once
    if on_built is not None:
        on_built(net)
    pipeline = run.pipeline
    steps = pipeline.steps_per_epoch
    model = run.compile(net)  # the net as its recipe trains it: the same layers and weights
    with run.strategy.scope():
        initial_epoch, state = run_folder.latest_state(out)
        history, damage = _readable_history(out, initial_epoch)
        if state is not None and not run_folder.readable_checkpoint(state):
            damage = f"the state checkpoint {state.name} is damaged"
        if damage:  # a kill or a full disk while it was written, a copy cut short: what it held cannot be trusted
            log(f"{out}: {damage}; restarting the run from its first epoch")
            shutil.rmtree(out / layout.STATE_DIR, ignore_errors=True)
            initial_epoch, state = 0, None
        if state is not None:
            model.load_weights(state)  # weights and optimizer (built by compile_model)
            log(f"{out}: resuming after epoch {initial_epoch} of {recipe.epochs}")
    history = history[history["epoch"] <= initial_epoch]

    params = count_params(net)
    # How the net started belongs to the run's first attempt: a resumed one keeps it.
    recorded = records.read_config(out) if initial_epoch else None
    records.write_config(out, records.RunRecord(
        run=resolved.to_json(),
        initialization=(recorded and recorded.initialization) or resolved.initialization(),
        data={"class_names": list(source.class_names), "test_split": source.test_split,
              "num_train": pipeline.num_train, "num_validation": pipeline.num_validation,
              "num_test": pipeline.num_test, "steps_per_epoch": steps, "mean": pipeline.mean, "std": pipeline.std},
        environment={**environment(run.strategy, run.devices, model), "deterministic": config.deterministic},
    ))
    records.clear_failure(out)
    log(f"{out}: {config.title()} ({params['trainable_params']:,} params) on {source.name}, "
        f"{pipeline.num_train}/{pipeline.num_validation}/{pipeline.num_test} train/validation/test images, "
        f"{recipe.epochs} epochs of {steps} steps, batch {recipe.batch_size}, {len(run.devices)} replica(s)")

    recorder = RunRecorder(out, history=history, epochs=recipe.epochs, steps_per_epoch=steps,
                           batch_size=recipe.batch_size, schedule=recipe.schedule(steps), log=log,
                           seconds_after=seconds_after)
    callbacks = [recorder, keras.callbacks.TensorBoard(out / layout.TENSORBOARD_DIR, write_graph=False, profile_batch=0)]
    model.fit(pipeline.train_batches(initial_epoch, recipe.epochs), epochs=recipe.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, validation_data=pipeline.validation if pipeline.num_validation else None,
              callbacks=callbacks, shuffle=False, verbose=0)
    if recorder.best_saved_epoch == recipe.epochs:
        with io.atomic_path(out / layout.FINAL_MODEL_FILE) as tmp:
            shutil.copyfile(out / layout.BEST_MODEL_FILE, tmp)  # the final epoch was the best: the same model
    else:
        recorder.export.save(out / layout.FINAL_MODEL_FILE)

    return _record_results(run, out, model, trained_after=initial_epoch, log=log, net=net)


def _rebuild_results(run: RunSetup, out: Path, log) -> records.Metrics:
    """A run that trained every epoch and saved final.keras but has no metrics.json (deleted, or a
    kill before it was written): its results again from final.keras, nothing trained or discarded."""
    log(f"{out}: every epoch is trained and {layout.FINAL_MODEL_FILE} saved, but {layout.METRICS_FILE} is missing; "
        f"rebuilding the results from {layout.FINAL_MODEL_FILE} (the test split read again, by the same final weights)")
    if problem := run_folder.damaged_files(out).get(layout.FINAL_MODEL_FILE):
        raise RuntimeError(f"{problem}, so the results cannot be rebuilt; delete {out} to train the run again")
    try:
        with run.strategy.scope():
            model = keras.saving.load_model(out / layout.FINAL_MODEL_FILE)
    except Exception as error:
        raise RuntimeError(f"{layout.FINAL_MODEL_FILE} cannot be read ({type(error).__name__}: {error}), so the results "
                           f"cannot be rebuilt; delete {out} to train the run again") from error
    return _record_results(run, out, model, trained_after=0, log=log)


def _record_results(run: RunSetup, out: Path, model: keras.Model, *, trained_after: int, log,
                    net: keras.Model | None = None) -> records.Metrics:
    """The test split, read once, by the final weights (as the papers report, not the best epoch's;
    with an EMA, the final averages); metrics.json written last. `trained_after`: the epochs before
    this attempt (their speed is another process's). `net`: what to count (the model's own layers)."""
    net = net or model
    config, source, pipeline = run.config, run.source, run.pipeline
    logits, labels = predict(model, pipeline.test)
    test = classification_metrics(logits, labels, source.class_names)
    history = records.read_history(out)
    trained = history["epoch"] > trained_after
    best = history.loc[history["val_accuracy"].idxmax()] if history["val_accuracy"].notna().any() else None
    metrics = records.Metrics(
        test_accuracy=test["accuracy"], test_loss=test["loss"], test_error=100 * (1 - test["accuracy"]),
        best_val_accuracy=None if best is None else float(best["val_accuracy"]),
        best_epoch=None if best is None else int(best["epoch"]),
        final_val_accuracy=None if best is None else float(history["val_accuracy"].iloc[-1]),
        epochs=int(len(history)), **count_params(net), macs=count_macs(net),
        total_epoch_seconds=float(history["epoch_seconds"].sum()),
        seconds_per_epoch=float(history["epoch_seconds"].median()) if len(history) else None,
        images_per_second=_steady(history.loc[trained, "images_per_second"]) if trained.any() else None,
    )
    write_run_exports(out, history, test, source.class_names, title=f"{config.title()} on {source.name}")
    records.record_checksums(out)
    records.write_metrics(out, metrics)
    shutil.rmtree(out / layout.STATE_DIR, ignore_errors=True)
    log(f"{out}: test accuracy {metrics.test_accuracy:.4f}, test loss {metrics.test_loss:.4f}, "
        f"best validation accuracy {_fmt(metrics.best_val_accuracy)} at epoch {metrics.best_epoch}")
    return metrics


def _readable_history(out: Path, epochs: int):
    """(history, None): history.csv, whole, with the `epochs` the state holds as training_history.json
    has them; or an empty history and what is damaged (the state and the history must agree)."""
    try:
        return records.read_history(out, through=epochs), None
    except DamagedFile as error:
        return records.empty_history(), str(error).split(";")[0]


def classification_metrics(logits: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """Cross-entropy, accuracy, per-class accuracy and confusion matrix from logits."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    predictions = logits.argmax(axis=1)
    k = len(class_names)
    confusion = np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)
    support = confusion.sum(axis=1)
    per_class = pd.DataFrame({
        "class": list(class_names), "support": support,
        "correct": np.diag(confusion),
        "accuracy": np.divide(np.diag(confusion), support, out=np.full(k, np.nan), where=support > 0),
    })
    return {"loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
            "accuracy": float((predictions == labels).mean()), "per_class": per_class, "confusion": confusion}


def write_run_exports(run_dir: Path, history: pd.DataFrame, test: dict, class_names, *, title: str) -> None:
    """The per-class table and the run's two figures (a figure that fails is a warning)."""
    records.write_per_class(run_dir, test["per_class"])
    plots.safe_plot(run_dir / layout.LEARNING_CURVES_PLOT, plots.plot_learning_curves, history, title)
    plots.safe_plot(run_dir / layout.CONFUSION_PLOT, plots.plot_confusion_matrix, test["confusion"], class_names,
                    title)


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
    # jit_compile in the run's own words (choices.JIT_MODES): what Keras decided for "auto".
    xla = bool(getattr(model, "jit_compile", False))
    return {
        "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "device": distribute.device_kind(), "strategy": type(strategy).__name__, "devices": devices,
        "replicas": strategy.num_replicas_in_sync, "dtype_policy": keras.mixed_precision.global_policy().name,
        "jit_compile": "on" if xla else "off",
    }
