"""The layout of a results folder: the name of every file and folder a study, a search or a run writes.

Each name is defined here once; every module writes and reads it through these constants (a test
checks that no other module spells a file name). Old results folders keep working because these
names are part of their format: change one and the folders already written no longer read.

    results/NAME/                       a study (python -m studies.NAME, ablation sweep)
        study.json                      the plan: what `ablation report` rebuilds everything from
        results.csv                     a row per run            comparisons.csv  the verdicts
        .report.lock                    held while a worker rebuilds the tables and pages
        summary.md                      the answer               results.tex      the table for a paper
        test_results_summary.json       the summary as data      index.html       the page
        error_over_seeds.png, error_vs_params.png, error_vs_time.png, learning_curves.png,
        per_class_accuracy.png, ROWS_COLUMNS_heatmap.png, hparams/ (TensorBoard's HParams)
        runs/RUN_ID/                    a run (python -m ablation train writes one anywhere)
            config.json                 the resolved config (the run's identity), how its net started
            history.csv                 one row per finished epoch (training_history.json: the same)
            metrics.json                written last: its presence marks the run finished
            checksums.json              the saved nets' sizes and SHA-256, written just before metrics.json
            failure.json                why the last attempt failed, if it did
            state/epoch-N.weights.h5    the last finished epoch's weights and optimizer, while training
            .lock                       held while a process trains the run
            best.keras, final.keras, per_class_accuracy.csv, learning_curves.png,
            confusion_matrix.png, tensorboard/, index.html
            model_summary.txt, architecture.{svg,png,dot}, blocks.{png,svg,json,dot}: the diagrams, drawn
                                        for a study's runs and a search's winner (`ablation train` draws none)
        runs/RUN_ID.stale/              a run trained from tied initial weights, kept aside
    results/tune_dropout/               a search
        keras_tuner/ (trial_*/executions.json), trials.csv, dropout_rate.png, search.json,
        summary.md, index.html, best/ (the winner's run folder)
"""

import re
from pathlib import Path

RESULTS_ROOT = "results"  # where studies and searches write, beside the checkout, unless --results-dir


def results_folder(name: str, protocol: str = "paper") -> Path:
    """A study's or a search's folder: results/NAME, results/NAME-smoke. Other protocols' results
    never mix with the paper protocol's."""
    return Path(RESULTS_ROOT) / (name if protocol == "paper" else f"{name}-{protocol}")


def results_folders_text(name: str) -> str:
    """The default folders, for a --results-dir help text."""
    return f"{results_folder(name)}, {results_folder(name, 'smoke')}"


# A study folder.
STUDY_FILE = "study.json"
RUNS_DIR = "runs"
RESULTS_FILE = "results.csv"
COMPARISONS_FILE = "comparisons.csv"
SUMMARY_FILE = "summary.md"  # also a search's
LATEX_FILE = "results.tex"
TEST_RESULTS_FILE = "test_results_summary.json"
INDEX_PAGE = "index.html"  # a study's, a search's and a run's page
ERROR_OVER_SEEDS_PLOT = "error_over_seeds.png"
ERROR_VS_PARAMS_PLOT = "error_vs_params.png"
ERROR_VS_TIME_PLOT = "error_vs_time.png"
PER_CLASS_PLOT = "per_class_accuracy.png"
LEARNING_CURVES_PLOT = "learning_curves.png"  # a study's (mean over seeds) and a run's
HEATMAP_SUFFIX = "_heatmap.png"  # ROWS_COLUMNS_heatmap.png, one per pair of varied hyperparameters
HPARAMS_DIR = "hparams"
REPORT_LOCK_FILE = ".report.lock"


def heatmap_plot(rows: str, columns: str) -> str:
    return f"{rows}_{columns}{HEATMAP_SUFFIX}"


# A run folder.
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
HISTORY_JSON_FILE = "training_history.json"
METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure.json"
LOCK_FILE = ".lock"
STATE_DIR = "state"
STATE_FILES = re.compile(r"epoch-(\d+)\.weights\.h5")  # state/epoch-N.weights.h5: Keras wants the suffix
BEST_MODEL_FILE = "best.keras"
FINAL_MODEL_FILE = "final.keras"
CHECKSUMS_FILE = "checksums.json"
CHECKED_FILES = (BEST_MODEL_FILE, FINAL_MODEL_FILE)  # what a finished run's checksums cover
PER_CLASS_FILE = "per_class_accuracy.csv"
CONFUSION_PLOT = "confusion_matrix.png"
TENSORBOARD_DIR = "tensorboard"
STALE_SUFFIX = ".stale"
# The diagrams of a run's net (ablation.report.diagrams); DOT text where Graphviz is missing.
MODEL_SUMMARY_FILE = "model_summary.txt"
ARCHITECTURE_SVG = "architecture.svg"  # every layer, its node's id the layer's name (the run page zooms it)
ARCHITECTURE_PNG = "architecture.png"
ARCHITECTURE_DOT = "architecture.dot"  # only where Graphviz could not render it
BLOCKS_PNG = "blocks.png"  # one box per stage, spelled as in the papers' tables
BLOCKS_SVG = "blocks.svg"
BLOCKS_DOT = "blocks.dot"
BLOCKS_FILE = "blocks.json"  # the same stages as data


def state_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.weights.h5"


# A search folder (ablation.study.tuning).
TUNER_PROJECT = "keras_tuner"  # keras-tuner's own project folder: its oracle and trials
EXECUTIONS_FILE = "executions.json"  # ours, in each trial_* folder: every execution's seed and score
TRIALS_FILE = "trials.csv"
DROPOUT_PLOT = "dropout_rate.png"
SEARCH_FILE = "search.json"
WINNER_DIR = "best"  # the retrained winner's run folder
ATTEMPTS_LOG = "attempts.log"  # ours, in each trial_* folder: who ran the trial when
TRIAL_FILES = "trial_*/trial.json"  # keras-tuner's record of each trial
