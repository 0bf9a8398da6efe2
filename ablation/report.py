"""Metrics, tables and plots made from run records.

Exports never kill a run: a plot that fails is reported as a warning and the run goes on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablation import io
from ablation.errors import ConfigError


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


# ----------------------------------------------------------------------------------------------
# Study tables and plots, rebuilt from the run folders (python -m ablation report results/NAME)

RESULT_COLUMNS = ["run_id", "configuration", "model", "seed", "trainable_params", "macs", "test_accuracy",
                  "test_error", "test_loss", "best_val_accuracy", "epochs", "seconds_per_epoch", "images_per_second",
                  "status", "preset", "downsized"]


def _setting(run: dict, key: str):
    """A hyperparameter's value in a run's resolved config: model argument, recipe field or run field,
    falling back to the builder's default (dropout_rate 0.0 when a preset does not set it)."""
    import inspect

    from builders import get_preset

    if key in run["model_kwargs"]:
        return run["model_kwargs"][key]
    if key in run["recipe_fields"]:
        return run["recipe_fields"][key]
    if key in run:
        return run[key]
    parameter = inspect.signature(get_preset(run["model"]).builder).parameters.get(key)
    return None if parameter is None else parameter.default


def collect_results(results_dir: Path) -> tuple[dict, pd.DataFrame]:
    """study.json and one row per planned run, from whatever the run folders hold now."""
    from ablation.study import status

    results_dir = Path(results_dir)
    study = io.read_json(results_dir / "study.json")
    if study is None:
        raise ConfigError(f"{results_dir} holds no study.json; expected a folder written by python -m studies.NAME.")
    rows = []
    for planned in study["runs"]:
        run_dir = results_dir / "runs" / planned["run_id"]
        metrics = io.read_json(run_dir / "metrics.json", {})
        row = {"run_id": planned["run_id"], "configuration": planned["label"], "model": planned["run"]["model"],
               "seed": planned["seed"], "status": status(run_dir), "preset": study["preset"],
               "downsized": planned["downsized"], **{key: _setting(planned["run"], key) for key in study["varies"]}}
        row.update({k: metrics.get(k) for k in RESULT_COLUMNS if k in metrics})
        rows.append(row)
    columns = RESULT_COLUMNS[:3] + list(study["varies"]) + RESULT_COLUMNS[3:]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    return study, frame


def summarise(frame: pd.DataFrame, configurations: list[dict]) -> pd.DataFrame:
    """Per configuration, over its finished seeds: test error median (the papers' protocol),
    mean, std, min, max; the published value and the difference; efficiency."""
    done = frame[frame["status"] == "done"]
    out = []
    for configuration in configurations:
        runs = done[done["configuration"] == configuration["label"]]
        errors = runs["test_error"].astype(float)
        published = configuration.get("published_error")
        median = errors.median() if len(errors) else np.nan
        params = runs["trainable_params"].iloc[0] if len(runs) else np.nan
        accuracy = runs["test_accuracy"].astype(float).median() if len(runs) else np.nan
        out.append({
            "configuration": configuration["label"], "runs": len(runs),
            "params": params, "macs": runs["macs"].iloc[0] if len(runs) else np.nan,
            "median_error": median, "mean_error": errors.mean() if len(errors) else np.nan,
            "std_error": errors.std(ddof=1) if len(errors) > 1 else np.nan,
            "min_error": errors.min() if len(errors) else np.nan, "max_error": errors.max() if len(errors) else np.nan,
            "published_error": published, "difference": median - published if published is not None else np.nan,
            "median_best_val_accuracy": runs["best_val_accuracy"].astype(float).median() if len(runs) else np.nan,
            "seconds_per_epoch": runs["seconds_per_epoch"].astype(float).median() if len(runs) else np.nan,
            # Accuracy points per million parameters: what a parameter buys.
            "accuracy_per_million_params": 100 * accuracy / (params / 1e6) if len(runs) else np.nan,
        })
    return pd.DataFrame(out)


def _fmt(value, spec="{:.2f}", missing="–"):
    return missing if value is None or (isinstance(value, float) and np.isnan(value)) else spec.format(value)


def summary_markdown(study: dict, summary: pd.DataFrame, frame: pd.DataFrame) -> str:
    lines = [f"# {study['name']}", ""]
    if study["preset"] != "paper":
        lines += [f"> **{study['preset'].upper()} PRESET.** These numbers check the pipeline end to end; they are "
                  f"not results and are not comparable to the published ones.", ""]
    lines += [f"**Question.** {study['question']}", "",
              f"**Protocol.** {study['protocol']}. Test error in %, from the final epoch's weights; the test split "
              f"is read once per run. Model selection uses the validation split only.", ""]
    if study.get("published_protocol"):
        lines += [f"**Published.** {study['published_protocol']}", ""]
    lines += ["| configuration | runs | params | test error median | mean ± std | min | max | published | "
              "difference | acc. % per M params | s / epoch |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    smoke = study["preset"] != "paper"
    for row in summary.itertuples():
        difference = "n/a (smoke)" if smoke and row.published_error is not None else _fmt(row.difference, "{:+.2f}")
        mean_std = (f"{_fmt(row.mean_error)} ± {_fmt(row.std_error)}" if row.runs > 1 else _fmt(row.mean_error))
        lines.append(f"| {row.configuration} | {row.runs} | {_fmt(row.params, '{:,.0f}')} | "
                     f"{_fmt(row.median_error)} | {mean_std} | {_fmt(row.min_error)} | {_fmt(row.max_error)} | "
                     f"{_fmt(row.published_error)} | {difference} | "
                     f"{_fmt(row.accuracy_per_million_params, '{:.1f}')} | {_fmt(row.seconds_per_epoch, '{:.1f}')} |")
    finished = summary.dropna(subset=["median_best_val_accuracy"])
    lines.append("")
    if len(finished):
        best = finished.loc[finished["median_best_val_accuracy"].idxmax()]
        lines.append(f"**Best on validation.** {best['configuration']} (median best validation accuracy "
                     f"{100 * best['median_best_val_accuracy']:.2f}%; its test error {_fmt(best['median_error'])}%).")
    counts = frame["status"].value_counts().to_dict()
    lines += ["", "**Runs.** " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".", ""]
    return "\n".join(lines)


def write_study_report(results_dir) -> pd.DataFrame:
    """results.csv, summary.md, test_results_summary.json and the plots, from the run folders."""
    results_dir = Path(results_dir)
    study, frame = collect_results(results_dir)
    summary = summarise(frame, study["configurations"])
    io.write_csv(results_dir / "results.csv", frame)
    io.write_text(results_dir / "summary.md", summary_markdown(study, summary, frame))
    io.write_json(results_dir / "test_results_summary.json", test_results_summary(frame, study))
    tag = "" if study["preset"] == "paper" else f" [{study['preset']} preset]"
    histories = _histories(results_dir, frame)
    safe_plot(results_dir / "learning_curves.png", plot_study_curves, histories, study["name"] + tag)
    safe_plot(results_dir / "error_vs_params.png", plot_error_vs, summary, "params", "trainable parameters",
              study["name"] + tag)
    safe_plot(results_dir / "error_vs_time.png", plot_error_vs, summary, "seconds_per_epoch", "seconds per epoch",
              study["name"] + tag)
    per_class = _per_class(results_dir, frame)
    if len(per_class):
        safe_plot(results_dir / "per_class_accuracy.png", plot_per_class, per_class, study["name"] + tag)
    if study.get("heatmap"):
        rows, columns = study["heatmap"]
        safe_plot(results_dir / f"{rows}_{columns}_heatmap.png", plot_heatmap, frame, rows, columns,
                  study["name"] + tag)
    return frame


def test_results_summary(frame: pd.DataFrame, study: dict) -> dict:
    """Per configuration (model): params, depth, k, test accuracy and loss (mean over seeds)."""
    done = frame[frame["status"] == "done"]
    out = {}
    for label, runs in done.groupby("configuration", sort=False):
        first = runs.iloc[0]
        out[label] = {"model": first["model"], "params": int(first["trainable_params"]),
                      "depth": _maybe(first.get("depth")), "k": _maybe(first.get("widen_factor")),
                      "test_accuracy": float(runs["test_accuracy"].mean()), "test_loss": float(runs["test_loss"].mean()),
                      "seeds": [int(s) for s in runs["seed"]], "preset": study["preset"]}
    return out


def _maybe(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)


def _histories(results_dir: Path, frame: pd.DataFrame) -> dict:
    """Per configuration, the per-epoch mean over its seeds of every run that has a history."""
    curves = {}
    for label, runs in frame.groupby("configuration", sort=False):
        tables = [pd.read_csv(p) for p in (results_dir / "runs" / r / "history.csv" for r in runs["run_id"]) if p.exists()]
        if tables:
            curves[label] = pd.concat(tables).groupby("epoch", as_index=False).mean(numeric_only=True)
    return curves


def _per_class(results_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    tables = []
    for row in frame[frame["status"] == "done"].itertuples():
        path = results_dir / "runs" / row.run_id / "per_class_accuracy.csv"
        if path.exists():
            tables.append(pd.read_csv(path).assign(configuration=row.configuration))
    if not tables:
        return pd.DataFrame(columns=["class", "configuration", "accuracy"])
    table = pd.concat(tables)
    return table.groupby(["class", "configuration"], sort=False, as_index=False)["accuracy"].mean()


def plot_study_curves(curves: dict, title: str):
    import matplotlib.pyplot as plt

    figure, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
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
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.5, 4.5))
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
    if column == "params":
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="test error % (median over seeds)", title=title)
    ax.grid(alpha=0.3)
    return figure


def plot_per_class(table: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="class", columns="configuration", values="accuracy")
    pivot = pivot.reindex(index=list(dict.fromkeys(table["class"])), columns=list(dict.fromkeys(table["configuration"])))
    figure, ax = plt.subplots(figsize=(max(7, 0.9 * len(pivot)), 4.5))
    pivot.plot.bar(ax=ax, width=0.8)
    ax.set(xlabel="", ylabel="test accuracy", title=f"{title}: per-class test accuracy", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_heatmap(frame: pd.DataFrame, rows: str, columns: str, title: str):
    """Median test error over two varying settings (depth x widen_factor for the widening study)."""
    import matplotlib.pyplot as plt

    done = frame[frame["status"] == "done"]
    grid = done.pivot_table(index=rows, columns=columns, values="test_error", aggfunc="median")
    figure, ax = plt.subplots(figsize=(1.5 + 0.9 * len(grid.columns), 1.2 + 0.7 * len(grid.index)))
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
