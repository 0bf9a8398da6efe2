"""The callbacks of a run: resumable state, history, best checkpoint, progress.

All of a run's per-epoch bookkeeping lives in `RunRecorder`, so that its order is explicit: the
best checkpoint, then the history row, then the state checkpoint, last, because it is what
resume trusts. A run stopped between two of these writes (a kill, a failed save, a full disk)
resumes from the previous epoch's state and trains the epoch again; resume truncates the history
to the restored epoch, so no epoch is lost and the records always agree. Each write is whole
(ablation.core.io): a history row cut short, or one its copy training_history.json does not hold the
same, was damaged afterwards, and the resume restarts the run (records.read_history).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ablation.core import io, layout, records, run_folder
from ablation.core.console import duration
from ablation.run.recipe_model import RecipeModel
from builders.portable import copy_weights, portable


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run fails (a search records the trial as failed)."""


class DivergenceCheck(keras.callbacks.Callback):
    """Fail at the end of the first epoch whose training loss is not finite (`check_divergence`): a
    run's recorder and a search's trials stop alike."""

    def __init__(self, what: str = ""):
        super().__init__()
        self.what = what  # said after the epoch: "with seed 43"

    def on_epoch_end(self, epoch, logs=None):
        check_divergence(logs or {}, epoch, self.what)


def check_divergence(logs: dict, epoch: int, what: str = "") -> None:
    if not math.isfinite(logs.get("loss", math.nan)):
        raise TrainingDiverged(f"loss is {logs.get('loss')} at epoch {epoch + 1}{' ' + what if what else ''}")


class NotEnoughSpace(RuntimeError):
    """Too little free disk for an epoch's checkpoints: the run fails cleanly before writing them (the
    HDF5 writer can crash the process on a full disk), and every finished epoch stays."""


# Free space an epoch's checkpoints need: the weights and optimizer state (momentum: twice the
# weights) in the state file, the model again in best.keras, and room for the small records.
CHECKPOINT_COPIES = 3
SPARE_BYTES = 32 * 2**20


class PortableExport:
    """best.keras and final.keras hold the net in Keras's own layers (builders.portable), so that
    `keras.saving.load_model` opens them where this project is not installed; no optimizer or
    schedule (the run's resume state, its own file, keeps those). The weights are those inference
    uses: with an EMA, the averages (RecipeModel.inference_weights). The copy is built at the first
    save and its weights refreshed at each."""

    def __init__(self, model: RecipeModel):
        self.model, self.copy = model, None

    def save(self, path: Path) -> None:
        if self.copy is None:
            self.copy = portable(self.model, self.model.inference_weights)
        else:
            copy_weights(self.model, self.copy, self.model.inference_weights)
        with io.atomic_path(path) as tmp:
            self.copy.save(tmp)


class RunRecorder(keras.callbacks.Callback):
    """Per epoch: the resumable state (weights and optimizer, atomically), `best.keras` when the
    validation accuracy improves, a row of `history.csv` / `training_history.json`, one progress
    line; and a progress bar over the steps when the output is a terminal."""

    def __init__(self, run_dir: Path, *, history: pd.DataFrame, epochs: int, steps_per_epoch: int,
                 batch_size: int, schedule, log=print, seconds_after: float | None = None):
        super().__init__()
        # What a study has left after this run (its cost model's estimate), for the progress lines.
        self.seconds_after = seconds_after
        self.run_dir, self.epochs = run_dir, epochs
        self.rows = [records.HistoryRow(**row) for row in history.to_dict("records")]
        self.steps, self.batch_size, self.schedule, self.log = steps_per_epoch, batch_size, schedule, log
        self.best = history["val_accuracy"].max() if len(history) else -math.inf
        self.best_saved_epoch = None  # the epoch whose model best.keras holds, if saved in this attempt
        self.show_bar = sys.stdout.isatty()

    def on_train_begin(self, logs=None):
        self.export = PortableExport(self.model)
        self._first_epoch = len(self.rows)  # epochs before this attempt: resumed, not timed here
        self._checkpoint_bytes = CHECKPOINT_COPIES * 4 * self.model.count_params() + SPARE_BYTES  # float32

    def _check_space(self):
        needed = self._checkpoint_bytes
        free = shutil.disk_usage(self.run_dir).free
        if free < needed:
            raise NotEnoughSpace(f"{self.run_dir} has {free / 2**20:.0f} MB free and this epoch's checkpoints "
                                 f"need about {needed / 2**20:.0f} MB; free some space and run the same command "
                                 f"again (finished epochs are kept)")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._train_end = time.perf_counter()
        self._training = True
        self._bar = keras.utils.Progbar(self.steps, verbose=1, unit_name="step") if self.show_bar else None
        if self._bar:
            print(f"epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        if self._bar:
            self._bar.update(batch + 1, [(k, v) for k, v in (logs or {}).items() if k in ("loss", "accuracy")])

    def on_test_begin(self, logs=None):
        if self._training:  # validation inside fit: the training part of the epoch is over
            self._train_end, self._training = time.perf_counter(), False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        end = time.perf_counter()
        train_seconds = (self._train_end if not self._training else end) - self._start
        check_divergence(logs, epoch)
        self._check_space()
        row = records.HistoryRow(
            epoch=epoch + 1,
            # Cross-entropy: the loss holds nothing else (weight decay acts in the optimizer).
            loss=logs.get("loss"), accuracy=logs.get("accuracy"),
            val_loss=logs.get("val_loss"), val_accuracy=logs.get("val_accuracy"),
            learning_rate=float(self.schedule(epoch * self.steps)),
            epoch_seconds=end - self._start, train_seconds=train_seconds,
            images_per_second=self.steps * self.batch_size / train_seconds,
        )
        if row.val_accuracy is not None and row.val_accuracy > self.best:
            self.export.save(self.run_dir / layout.BEST_MODEL_FILE)
            self.best = row.val_accuracy
            self.best_saved_epoch = epoch + 1
        self.rows.append(row)
        records.save_history(self.run_dir, self.rows)
        state = run_folder.state_path(self.run_dir, epoch + 1)
        with io.atomic_path(state) as tmp:
            self.model.save_weights(tmp)
        for _, old in run_folder.state_files(self.run_dir):
            if old != state:
                old.unlink()
        val = f" val_loss {row.val_loss:.4f} val_acc {row.val_accuracy:.4f}" if row.val_loss is not None else ""
        self.log(f"epoch {epoch + 1}/{self.epochs}: loss {row.loss:.4f} acc {row.accuracy:.4f}{val} "
                 f"lr {row.learning_rate:.4g} {row.epoch_seconds:.1f}s ({row.images_per_second:.0f} img/s)"
                 f"{self._left(epoch + 1)}")

    def _left(self, done: int) -> str:
        """"; 1m 10s left in the run, 5m 20s in the study": the epochs left at this attempt's
        typical epoch (its first traces the graph: left out once there are others)."""
        if done >= self.epochs:
            return f"; {duration(self.seconds_after)} left in the study" if self.seconds_after else ""
        seconds = [row.epoch_seconds for row in self.rows[self._first_epoch:]]
        typical = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
        run = typical * (self.epochs - done)
        study = "" if self.seconds_after is None else f", {duration(run + self.seconds_after)} in the study"
        return f"; {duration(run)} left in the run{study}"

