"""A study's tables and plots, rebuilt from its run folders (`python -m ablation report results/NAME`).

Everything is read from disk (study.json and each run's records), so a report can be rebuilt at
any time, by any shard, without the study module. A plot that fails is a warning.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablation.core import io, layout, records, run_folder
from ablation.core.errors import DamagedFile
from ablation.core.plots import safe_plot
from ablation.core.records import Status
from ablation.report import hparams, pages
from ablation.report.figures import (
    plot_error_vs,
    plot_heatmap,
    plot_per_class,
    plot_seed_errors,
    plot_study_curves,
)
from ablation.report.summary import results_latex, study_summary
from ablation.run.config import ResolvedRun, run_identity
from ablation.statistics import compare_all, interval_of_mean

RESULT_COLUMNS = ["run_id", "configuration", "model", "seed", "trainable_params", "macs", "test_accuracy",
                  "test_error", "test_loss", "best_val_accuracy", "epochs", "seconds_per_epoch", "images_per_second",
                  "status", "protocol", "downsized", "damaged"]
COMPARISON_COLUMNS = ["configuration", "reference", "seeds", "mean_difference", "std_difference", "interval",
                      "confidence", "ci_low", "ci_high", "p_value", "adjusted_p_value", "better_fraction", "verdict",
                      "unresolved_reason", "minimum_detectable_difference", "seeds_needed"]
# What comparisons.csv's interval and p-values are, in its `interval` column.
INTERVAL = "paired t at the adjusted level"


def collect_results(results_dir: Path, study: records.StudyRecord | None = None) -> tuple[records.StudyRecord,
                                                                                       pd.DataFrame]:
    """study.json (or `study`, the same not yet written) and one row per planned run, from whatever
    the run folders hold now (of a `--seeds auto` study, every run its budget may use: `runs_shown`)."""
    study = study or records.read_study(results_dir)
    rows = []
    for planned in study.runs:
        run_dir = records.run_dir_of(results_dir, planned.run_id)
        run_status = run_folder.status(run_dir)
        try:
            metrics = records.read_metrics(run_dir)
            # A finished folder holding another run than the study declares (a copied folder, an edited
            # study.json): the runner refuses the mix, the tables leave it out, both saying so.
            differences = (records.run_differences(run_dir, planned.run, run_identity)
                           if run_status == Status.DONE and metrics is not None else None)
        except DamagedFile as error:  # the table goes on without that run's numbers
            warnings.warn(str(error), stacklevel=2)
            metrics, run_status, differences = None, Status.FAILED, None
        if differences:
            warnings.warn(f"{run_dir} holds another run than {layout.STUDY_FILE} declares ({'; '.join(differences)}): "
                          f"left out of the tables", stacklevel=2)
            run_status = Status.DIFFERS
        if run_status in (Status.STALE, Status.DIFFERS):  # another experiment's numbers: not in any table
            metrics = None
        damaged = run_folder.damaged_text(run_folder.damaged_files(run_dir)) if run_status == Status.DONE else ""
        if damaged:  # its results stand; say what is lost, once per report (the run's page shows this text)
            warnings.warn(run_folder.damage_report(run_dir, damaged), stacklevel=2)
        run = ResolvedRun.from_json(planned.run)
        row = {"run_id": planned.run_id, "configuration": planned.configuration, "model": run.model,
               "seed": planned.seed, "status": run_status, "protocol": study.protocol,
               "downsized": planned.downsized, "damaged": damaged,
               **{key: _cell(run.setting(key)) for key in varied_columns(study)}}
        if metrics is not None:
            row.update({k: v for k, v in dataclasses.asdict(metrics).items() if k in RESULT_COLUMNS})
        rows.append(row)
    columns = RESULT_COLUMNS[:3] + varied_columns(study) + RESULT_COLUMNS[3:]
    return study, pd.DataFrame(rows).reindex(columns=columns)


def undeclared_runs(results_dir: Path, study: records.StudyRecord) -> list[str]:
    """The finished runs under runs/ that the study does not declare (not a stale one kept aside)."""
    declared = {run.run_id for run in study.runs}
    folder = Path(results_dir) / layout.RUNS_DIR
    found = sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    return [name for name in found if name not in declared and not name.startswith(".")
            and layout.STALE_SUFFIX not in name and run_folder.status(folder / name) == Status.DONE]


def runs_shown(frame: pd.DataFrame, next_look: dict[str, list[int]]) -> pd.DataFrame:
    """Of a `--seeds auto` study's budget, the runs trained or started and those `next_look` (the
    seeds each configuration's next look needs) asks for."""
    needed = {(label, seed) for label, seeds in next_look.items() for seed in seeds}
    keep = [row.status != Status.PENDING or (row.configuration, row.seed) in needed for row in frame.itertuples()]
    return frame[keep].reset_index(drop=True)


def varied_columns(study: records.StudyRecord) -> list[str]:
    """The columns of what a study varies, but for one a result column already shows (epochs: the
    epochs trained, which are the run's)."""
    return [name for name in study.varies if name not in RESULT_COLUMNS]


def errors_by_configuration(frame: pd.DataFrame, study: records.StudyRecord) -> dict:
    """configuration -> {seed: test error} of the finished runs, in the study's order."""
    done = frame[frame["status"] == Status.DONE]
    errors = {label: dict(zip(runs["seed"], runs["test_error"].astype(float), strict=True))
              for label, runs in done.groupby("configuration")}
    return {name: errors.get(name, {}) for name in study.configuration_names()}


def summarise(frame: pd.DataFrame, configurations: tuple[records.ConfigurationEntry, ...]) -> pd.DataFrame:
    """Per configuration, over its finished seeds: test error median (the papers' protocol),
    mean, std, min, max; the published value and the difference; efficiency."""
    done = frame[frame["status"] == Status.DONE]
    out = []
    for configuration in configurations:
        runs = done[done["configuration"] == configuration.configuration]
        errors = runs["test_error"].astype(float)
        published = configuration.published_error
        median = errors.median() if len(errors) else np.nan
        trainable_params = runs["trainable_params"].iloc[0] if len(runs) else np.nan
        accuracy = runs["test_accuracy"].astype(float).median() if len(runs) else np.nan
        interval = interval_of_mean(errors)
        out.append({
            "configuration": configuration.configuration, "runs": len(runs),
            "trainable_params": trainable_params, "macs": runs["macs"].iloc[0] if len(runs) else np.nan,
            "median_error": median, "mean_error": errors.mean() if len(errors) else np.nan,
            "std_error": errors.std(ddof=1) if len(errors) > 1 else np.nan,
            "ci_low": interval[0] if interval else np.nan, "ci_high": interval[1] if interval else np.nan,
            "min_error": errors.min() if len(errors) else np.nan, "max_error": errors.max() if len(errors) else np.nan,
            "published_error": published, "difference": median - published if published is not None else np.nan,
            "median_best_val_accuracy": runs["best_val_accuracy"].astype(float).median() if len(runs) else np.nan,
            "seconds_per_epoch": runs["seconds_per_epoch"].astype(float).median() if len(runs) else np.nan,
            # Accuracy points per million parameters: what a parameter buys.
            "accuracy_per_million_params": 100 * accuracy / (trainable_params / 1e6) if len(runs) else np.nan,
        })
    return pd.DataFrame(out)


def comparisons(frame: pd.DataFrame, study: records.StudyRecord) -> list:
    """Every configuration against the study's baseline (and, in a cumulative study, against the
    one before it), on matched seeds of finished runs, as one family (`statistics.compare_all`);
    over the looks of a `--seeds auto` study."""
    seeding = study.seeding
    looks = [list(seeding.sequence[:n]) for n in seeding.looks] if seeding.auto else None
    return compare_all(errors_by_configuration(frame, study), study.baseline, cumulative=study.cumulative,
                       versus=study.versus(), looks=looks, **({"max_seeds": seeding.looks[-1]} if seeding.auto else {}))


def comparisons_frame(results: list) -> pd.DataFrame:
    rows = [{**dataclasses.asdict(result), "interval": INTERVAL} for result in results]
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)


HPARAMS_METRICS = ["test_error", "best_val_accuracy", "trainable_params", "seconds_per_epoch"]


def write_hparams(results_dir: Path, study: records.StudyRecord, frame: pd.DataFrame) -> None:
    """Every finished run as a session of TensorBoard's HParams dashboard: its configuration, seed
    and varying hyperparameters, and its metrics."""
    names = ["configuration", "seed", *study.varies]
    done = frame[frame["status"] == Status.DONE]
    sessions = [(row["run_id"], {n: row[n] for n in names}, {m: row[m] for m in HPARAMS_METRICS})
                for _, row in done.iterrows()]
    hparams.write_sessions(results_dir, sessions, hparams=names, metrics=HPARAMS_METRICS)


def write_study_report(results_dir, decide_next_look=None) -> pd.DataFrame:
    """results.csv, summary.md, test_results_summary.json, the plots and the web pages, from the run
    folders, read once. A `--seeds auto` study's report shows what `decide_next_look(study, frame)` says its
    next look needs: the study layer decides it (`ablation.study.seeding.write_report`, the one way
    its report is written)."""
    results_dir = Path(results_dir)
    study, frame = collect_results(results_dir)
    if study.seeding.auto and decide_next_look is None:
        raise ValueError("a --seeds auto study's report needs its next look: ablation.study.seeding.write_report")
    next_look = decide_next_look(study, frame) if study.seeding.auto else None
    if next_look is not None:
        frame = runs_shown(frame, next_look)
    summary = summarise(frame, study.configurations)
    results = comparisons(frame, study)
    io.write_csv(results_dir / layout.RESULTS_FILE, frame)
    io.write_csv(results_dir / layout.COMPARISONS_FILE, comparisons_frame(results))
    undeclared = undeclared_runs(results_dir, study)
    if undeclared:  # another study's study.json copied in: its own finished runs would vanish without a word
        warnings.warn(f"{results_dir / layout.RUNS_DIR} holds {len(undeclared)} finished run(s) that "
                      f"{layout.STUDY_FILE} does not declare ({', '.join(undeclared[:5])}"
                      f"{', ...' if len(undeclared) > 5 else ''}): left out of the tables; another study's "
                      f"{layout.STUDY_FILE}?", stacklevel=2)
    io.write_text(results_dir / layout.SUMMARY_FILE, study_summary(study, summary, frame, results, next_look,
                                                                   undeclared))
    io.write_text(results_dir / layout.LATEX_FILE, results_latex(study, summary, results))
    write_hparams(results_dir, study, frame)
    io.write_json(results_dir / layout.TEST_RESULTS_FILE, test_results_summary(frame, study))
    tag = "" if study.protocol == "paper" else f" [{study.protocol} protocol]"
    histories = _histories(results_dir, frame)
    safe_plot(results_dir / layout.LEARNING_CURVES_PLOT, plot_study_curves, histories, study.name + tag)
    safe_plot(results_dir / layout.ERROR_OVER_SEEDS_PLOT, plot_seed_errors, frame, summary, study.name + tag)
    safe_plot(results_dir / layout.ERROR_VS_PARAMS_PLOT, plot_error_vs, summary, "trainable_params", "trainable parameters",
              study.name + tag)
    safe_plot(results_dir / layout.ERROR_VS_TIME_PLOT, plot_error_vs, summary, "seconds_per_epoch", "seconds per epoch",
              study.name + tag)
    per_class = _per_class(results_dir, frame)
    if len(per_class):
        safe_plot(results_dir / layout.PER_CLASS_PLOT, plot_per_class, per_class, study.name + tag)
    if study.heatmap:
        rows, columns = study.heatmap
        safe_plot(results_dir / layout.heatmap_plot(rows, columns), plot_heatmap, frame, rows, columns,
                  study.name + tag)
    pages.safe_pages(pages.write_study_pages, results_dir, study, frame)  # last: they show all of the above
    return frame


def test_results_summary(frame: pd.DataFrame, study: records.StudyRecord) -> dict:
    """Per configuration (model): trainable params, depth, widen_factor, test accuracy and loss (mean over seeds)."""
    done = frame[frame["status"] == Status.DONE]
    out = {}
    for label, runs in done.groupby("configuration", sort=False):
        first = runs.iloc[0]
        out[label] = {"model": first["model"], "trainable_params": int(first["trainable_params"]),
                      "depth": _maybe(first.get("depth")), "widen_factor": _maybe(first.get("widen_factor")),
                      "test_accuracy": float(runs["test_accuracy"].mean()), "test_loss": float(runs["test_loss"].mean()),
                      "seeds": [int(s) for s in runs["seed"]], "protocol": study.protocol}
    return out


def _cell(value):
    """A setting as a table cell: tuples (an input shape) as lists, as JSON would have them."""
    return list(value) if isinstance(value, tuple) else value


def _maybe(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)


def _histories(results_dir: Path, frame: pd.DataFrame) -> dict:
    """Per configuration, the per-epoch mean over its seeds of every run that has a history (a stale
    run's is another experiment's)."""
    curves = {}
    for label, runs in frame[~frame["status"].isin((Status.STALE, Status.DIFFERS))].groupby("configuration", sort=False):
        tables = []
        for run_id in runs["run_id"]:
            try:
                tables.append(records.read_history(records.run_dir_of(results_dir, run_id)))
            except DamagedFile as error:  # the curves go on without that run
                warnings.warn(str(error), stacklevel=2)
        tables = [table for table in tables if len(table)]
        if tables:
            curves[label] = pd.concat(tables).groupby("epoch", as_index=False).mean(numeric_only=True)
    return curves


def _per_class(results_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    tables = []
    for row in frame[frame["status"] == Status.DONE].itertuples():
        table = records.read_per_class(records.run_dir_of(results_dir, row.run_id))
        if table is not None:
            tables.append(table.assign(configuration=row.configuration))
    if not tables:
        return pd.DataFrame(columns=["class", "configuration", "accuracy"])
    table = pd.concat(tables)
    return table.groupby(["class", "configuration"], sort=False, as_index=False)["accuracy"].mean()
