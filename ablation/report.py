"""Metrics, tables and plots made from run records.

Exports never kill a run: a plot that fails is reported as a warning and the run goes on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablation import io


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
    io.write_csv(run_dir / "per_class_accuracy.csv", test["per_class"])
    safe_plot(run_dir / "learning_curves.png", plot_learning_curves, history, title)
    safe_plot(run_dir / "confusion_matrix.png", plot_confusion_matrix, test["confusion"], class_names, title)


def safe_plot(path: Path, plot, *args) -> bool:
    """Draw with `plot(*args)` -> Figure and save atomically; a failure is a warning, never an error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure = plot(*args)
        with io.atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(figure)
        return True
    except Exception as error:  # a plot must never cost a finished run
        warnings.warn(f"could not write {path.name}: {type(error).__name__}: {error}", stacklevel=2)
        return False


def plot_learning_curves(history: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    figure, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
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
    import matplotlib.pyplot as plt

    k = len(class_names)
    figure, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
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

