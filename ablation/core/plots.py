"""A run's figures (learning curves, confusion matrix), and the save that never fails a run (a
study's and a search's figures: ablation.report.figures).

Every plot function takes plain data and returns a matplotlib Figure built with the object
API (`matplotlib.figure.Figure`), not pyplot: no global backend or figure registry to set or
leak, so the suite can be imported into a notebook without changing its backend.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablation.core import io


def safe_plot(path: Path, plot, *args) -> bool:
    """Draw with `plot(*args)` -> Figure and save atomically; a failure is a warning, never an error."""
    try:
        figure = plot(*args)
        with io.atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
        return True
    except Exception as error:  # a plot must never cost a finished run
        warnings.warn(f"could not write {path.name}: {type(error).__name__}: {error}", stacklevel=2)
        return False


def plot_learning_curves(history: pd.DataFrame, title: str):
    figure, (ax_loss, ax_acc) = figure_of((11, 4), 1, 2)
    for column, label in (("loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(history["epoch"], history[column], label=label)
    for column, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        ax_acc.plot(history["epoch"], history[column], label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    return figure


def plot_confusion_matrix(confusion: np.ndarray, class_names, title: str):
    k = len(class_names)
    figure, ax = figure_of((1.0 + 0.55 * k, 0.8 + 0.5 * k))
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=f"{title}: test confusion")
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=ax, fraction=0.046)
    return figure


def figure_of(figsize, *grid):
    """A figure and its axes (`grid`: rows, columns), like pyplot.subplots without pyplot."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid)
