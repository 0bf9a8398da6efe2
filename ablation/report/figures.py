"""A study's figures (mean learning curves, error over seeds, against params and time, per class,
over two hyperparameters) and a search's (validation accuracy against the dropout rate). Saved
through `plots.safe_plot`, which never fails a run; built like every figure here without pyplot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablation.core.plots import figure_of
from ablation.core.records import Status


def plot_study_curves(curves: dict, title: str):
    figure, (ax_acc, ax_loss) = figure_of((12, 4.5), 1, 2)
    for label, history in curves.items():
        ax_acc.plot(history["epoch"], history["val_accuracy"], label=label)
        ax_loss.plot(history["epoch"], history["val_loss"], label=label)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    # Log scale: one configuration's early blow-up must not flatten the others' curves.
    ax_loss.set(xlabel="epoch", ylabel="validation cross-entropy", title="validation loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    if curves:
        ax_acc.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def plot_error_vs(summary: pd.DataFrame, column: str, xlabel: str, title: str):
    figure, ax = figure_of((6.5, 4.5))
    points = summary.dropna(subset=[column, "median_error"])
    ax.scatter(points[column].astype(float), points["median_error"], zorder=3, label="this study")
    for row in points.itertuples():
        ax.annotate(row.configuration, (float(getattr(row, column)), row.median_error), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    published = points.dropna(subset=["published_error"])
    if len(published):
        ax.scatter(published[column].astype(float), published["published_error"], marker="x", color="grey",
                   label="published", zorder=2)
    ax.legend(fontsize=8)
    if column == "trainable_params":
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="test error % (median over seeds)", title=title)
    ax.grid(alpha=0.3)
    return figure


def plot_seed_errors(frame: pd.DataFrame, summary: pd.DataFrame, title: str):
    """Test error per configuration: every seed a point, the mean with its 95% interval as a bar
    (where there are enough seeds for one), the published value a cross."""
    figure, ax = figure_of((max(6.5, 1.2 * len(summary)), 4.5))
    done = frame[frame["status"] == Status.DONE]
    spread = np.random.default_rng(0)  # a fixed horizontal jitter, so that equal errors stay visible
    legend = set()

    def label(text):  # each kind once in the legend
        return None if text in legend else legend.add(text) or text

    for x, row in enumerate(summary.itertuples()):
        errors = done.loc[done["configuration"] == row.configuration, "test_error"].astype(float)
        ax.scatter(x + spread.uniform(-0.12, 0.12, len(errors)), errors, s=14, alpha=0.7, color="C0", zorder=3,
                   label=label("a seed"))
        if not np.isnan(row.ci_low):
            ax.errorbar(x, row.mean_error, yerr=[[row.mean_error - row.ci_low], [row.ci_high - row.mean_error]],
                        fmt="_", color="black", capsize=6, markersize=14, zorder=4, label=label("mean, 95% CI"))
        if row.published_error is not None and not pd.isna(row.published_error):
            ax.scatter([x + 0.25], [row.published_error], marker="x", color="grey", zorder=2,
                       label=label("published"))
    ax.set_xticks(range(len(summary)), summary["configuration"], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="test error %", title=f"{title}: test error over seeds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def plot_per_class(table: pd.DataFrame, title: str):
    pivot = table.pivot(index="class", columns="configuration", values="accuracy")
    pivot = pivot.reindex(index=list(dict.fromkeys(table["class"])), columns=list(dict.fromkeys(table["configuration"])))
    figure, ax = figure_of((max(7, 0.9 * len(pivot)), 4.5))
    pivot.plot.bar(ax=ax, width=0.8)
    ax.set(xlabel="", ylabel="test accuracy", title=f"{title}: per-class test accuracy", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_heatmap(frame: pd.DataFrame, rows: str, columns: str, title: str):
    """Median test error over two varying settings (depth x widen_factor for the widening study)."""
    done = frame[frame["status"] == Status.DONE]
    grid = done.pivot_table(index=rows, columns=columns, values="test_error", aggfunc="median")
    figure, ax = figure_of((1.5 + 0.9 * len(grid.columns), 1.2 + 0.7 * len(grid.index)))
    image = ax.imshow(grid.values.astype(float), cmap="viridis_r")
    ax.set(xticks=range(len(grid.columns)), yticks=range(len(grid.index)), xlabel=columns.replace("_", " "),
           ylabel=rows.replace("_", " "), title=f"{title}: test error %")
    ax.set_xticklabels(grid.columns)
    ax.set_yticklabels(grid.index)
    for i in range(len(grid.index)):
        for j in range(len(grid.columns)):
            value = grid.values[i, j]
            if not np.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white", fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.046)
    return figure


def plot_dropout_search(trials: pd.DataFrame, seeds, title: str):
    """Validation accuracy of every execution over the dropout rate, and the mean per rate."""
    figure, ax = figure_of((6.5, 4.5))
    done = trials[trials["status"] == "COMPLETED"].sort_values("dropout_rate")
    for seed in seeds:
        ax.scatter(done["dropout_rate"], done[f"val_accuracy_seed{seed}"], s=18, alpha=0.6,
                   label=f"execution, seed {seed}")
    means = done.groupby("dropout_rate")["mean_val_accuracy"].mean()
    ax.plot(means.index, means.values, color="black", marker="o", label="mean over executions")
    ax.set(xlabel="dropout rate", ylabel="validation accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure
