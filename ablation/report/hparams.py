"""TensorBoard's HParams dashboard for a study or a search: `tensorboard --logdir results/NAME`.

Every finished run of a study (every completed trial of a search) is one session under
`results/NAME/hparams/<run id>/`, with its hyperparameters and its metrics as scalars, and the
experiment (which hyperparameters vary, which metrics there are) at `results/NAME/hparams/`.
The seed is a hyperparameter: the dashboard averages sessions whose hyperparameters are all
equal and shows no spread (tensorboard#2464), so each seed keeps its own row. The tree is
rebuilt whole with every report (it appears complete or not at all).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from ablation.core import io, layout


def _value(value):
    """An HParams value (bool, int, float or str), or None for a missing one."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def write_sessions(root, sessions, *, hparams, metrics) -> bool:
    """`sessions`: (name, {hparam: value}, {metric: value}) per run; `hparams`, `metrics`: names.
    Like a plot, this never fails what calls it: a failure is one warning (and False)."""
    try:
        _write(Path(root) / layout.HPARAMS_DIR, sessions, hparams, metrics)
        return True
    except Exception as error:  # noqa: BLE001 - TensorBoard data must never fail a report
        warnings.warn(f"TensorBoard HParams data not written: {type(error).__name__}: {error}", stacklevel=2)
        return False


def _write(target: Path, sessions, hparams, metrics) -> None:
    with io.atomic_directory(target) as tmp:
        with tf.summary.create_file_writer(str(tmp)).as_default() as writer:
            hp.hparams_config(hparams=[hp.HParam(name) for name in hparams],
                              metrics=[hp.Metric(name) for name in metrics])
            writer.flush()
        for name, values, results in sessions:
            writer = tf.summary.create_file_writer(str(tmp / name))
            with writer.as_default():
                hp.hparams({k: v for k, v in ((k, _value(v)) for k, v in values.items()) if v is not None},
                           trial_id=name)
                for metric, value in results.items():
                    if _value(value) is not None:
                        tf.summary.scalar(metric, float(value), step=0)
            writer.close()
