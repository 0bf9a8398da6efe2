"""A keras-tuner search over the dropout rate (and optionally the learning rate), with the
ablation discipline kept: trials are scored on the validation split only, each execution of a
trial has its own seed and its own recorded score, and the winner is retrained through the
normal run path and evaluated once on the test split.

    results/tune_dropout/
        keras_tuner/           keras-tuner's own project (oracle, trial_*/trial.json), so a
                               search resumes where it stopped; trial_*/executions.json and
                               attempts.log are ours: each execution's seed and score, and who
                               ran the trial when
        trials.csv             a row per trial: hyperparameters, score per execution, mean,
                               status, seconds
        dropout_rate.png       validation accuracy against dropout rate, executions and mean
        search.json            what defines the search, and how its nets start ("initialization")
        summary.md             the best rate, the runner-up spread, the retrained run's test result
        index.html             all of it as a web page, with the winner's run page (best/index.html)
        best/                  the best configuration's run folder, as in the studies

Distributed search uses keras-tuner's chief/worker mode: set KERASTUNER_TUNER_ID ("chief",
"tuner0", ...), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT. The chief holds the oracle and,
when every worker is done, writes the exports and retrains the winner.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from keras_tuner.src.distribute import utils as tuner_distribute
from keras_tuner.src.engine import trial as trial_module

from ablation.core import io, layout, plots, records
from ablation.core.choices import LARGEST_SEED, PROTOCOLS, checked, seed_is_valid
from ablation.core.errors import ConfigError, StaleRun
from ablation.report import figures, hparams, pages
from ablation.report.diagrams import write_run_diagrams
from ablation.run import distribute
from ablation.run.callbacks import DivergenceCheck
from ablation.run.config import RunConfig, run_identity
from ablation.run.setup import RunSetup, set_up
from ablation.run.training import train
from ablation.statistics import compare, interval_of_mean
from ablation.study import cost

TUNERS = ("random", "bayesian", "hyperband")


@dataclasses.dataclass(frozen=True)
class Search:
    """What is searched, and how (the command line of studies/tune_dropout.py)."""

    run: RunConfig  # the model, data, recipe and base seed every trial starts from
    tuner: str = "bayesian"
    max_trials: int = 10
    executions_per_trial: int = 1
    min_rate: float = 0.0
    max_rate: float = 0.5
    step: float = 0.05
    tune_learning_rate: bool = False
    protocol: str = "paper"  # one of choices.PROTOCOLS

    def __post_init__(self):
        # The messages name the flags of studies/tune_dropout.py, which spells every field.
        checked("--tuner", self.tuner, TUNERS)
        checked("--protocol", self.protocol, PROTOCOLS)
        for name in ("max_trials", "executions_per_trial"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not valid; expected a positive integer.")
        if not 0.0 <= self.min_rate < self.max_rate < 1.0:
            raise ConfigError(f"--min-rate {self.min_rate:g} --max-rate {self.max_rate:g} is not valid; expected "
                              f"0 <= min < max < 1.")
        if not 0.0 < self.step <= self.max_rate - self.min_rate:
            raise ConfigError(f"--step {self.step:g} is not valid; expected a number in (0, "
                              f"{self.max_rate - self.min_rate:g}], the width of the dropout range.")
        last = self.run.seed + self.executions_per_trial - 1 if seed_is_valid(self.run.seed) else None
        if last is not None and last > LARGEST_SEED:  # execution i trains with seed + i (a bad seed: its run's check)
            raise ConfigError(f"--seed {self.run.seed} with --executions-per-trial {self.executions_per_trial} is "
                              f"not valid: the executions' seeds go up to {last}; expected --seed at most "
                              f"{LARGEST_SEED - self.executions_per_trial + 1}.")

    def seeds(self) -> list[int]:
        """Execution i of every trial uses seed base + i: weights, data order, augmentation."""
        return [self.run.seed + i for i in range(self.executions_per_trial)]


def is_worker() -> bool:
    return tuner_distribute.has_chief_oracle() and not tuner_distribute.is_chief_oracle()


class DropoutHyperModel(kt.HyperModel):
    """Our builder and recipe, with the dropout rate (and the lr) drawn by the tuner."""

    def __init__(self, search: Search, run: RunSetup):
        super().__init__()
        self.search, self.run = search, run

    def build(self, hp):
        search, recipe = self.search, self.run.resolved.recipe_fields
        rate = round(hp.Float("dropout_rate", search.min_rate, search.max_rate, step=search.step), 6)
        trial_recipe = recipe
        if search.tune_learning_rate:
            lr = hp.Choice("learning_rate", [recipe.learning_rate / 2, recipe.learning_rate, recipe.learning_rate * 2])
            trial_recipe = recipe.replace(learning_rate=lr)
        return self.run.compile(self.run.build(dropout_rate=rate), trial_recipe)


class SeededTuner(kt.engine.base_tuner.BaseTuner):
    """Runs each trial's executions with their own seeds and keeps every score (keras-tuner's own
    Tuner averages executions away); the objective is their mean."""

    def __init__(self, search: Search, pipeline, epochs: int, log, **kwargs):
        # Underscored: BaseTuner's own names (search, ...) must stay its.
        self._search, self._pipeline, self._epochs, self._log = search, pipeline, epochs, log
        super().__init__(**kwargs)

    def run_trial(self, trial, **_):
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        trial_dir.mkdir(parents=True, exist_ok=True)
        with open(trial_dir / layout.ATTEMPTS_LOG, "a") as attempts:  # one line per time a trial runs
            attempts.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {self.tuner_id} {socket.gethostname()} "
                           f"{os.getpid()}\n")
        hp, pipeline = trial.hyperparameters, self._pipeline
        trial_epochs = hp.values.get("tuner/epochs", self._epochs)  # Hyperband's budget for this trial
        executions = []  # an interrupted trial restarts cleanly: earlier executions are dropped
        records.write_executions(trial_dir, executions)
        for execution_seed in self._search.seeds():
            start = time.perf_counter()
            distribute.set_seeds(execution_seed)
            model = self.hypermodel.build(hp)
            if model.augmentation is not None:  # the data axes draw from the execution's data seed too
                model.augmentation = dataclasses.replace(model.augmentation, seed=execution_seed)
            history = model.fit(pipeline.train_batches(0, trial_epochs, seed=execution_seed),
                                epochs=trial_epochs, steps_per_epoch=pipeline.steps_per_epoch,
                                validation_data=pipeline.validation, verbose=0, shuffle=False,
                                callbacks=[DivergenceCheck(f"with seed {execution_seed}")]).history
            executions.append(records.Execution(
                seed=execution_seed, val_accuracy=float(max(history["val_accuracy"])),
                final_val_accuracy=float(history["val_accuracy"][-1]), epochs=trial_epochs,
                seconds=time.perf_counter() - start))
            records.write_executions(trial_dir, executions)
        score = float(np.mean([e.val_accuracy for e in executions]))
        self._log(f"trial {trial.trial_id}: {_describe(hp.values)}: validation accuracy "
                 + ", ".join(f"{e.val_accuracy:.4f}" for e in executions) + f" (mean {score:.4f})")
        return {"val_accuracy": score}

    def save_model(self, trial_id, model, step=0):
        pass  # the winner is retrained through the normal run path instead

    def load_model(self, trial):
        raise NotImplementedError("the best configuration is retrained, not reloaded")


def oracle_seed(seed: int) -> int:
    """The seed of the tuner's own draws. keras-tuner takes a falsy seed as "pick one at random"
    (`seed or random.randint(1, 10000)`), so --seed 0 would search differently on every call: its
    oracle draws from LARGEST_SEED instead (shared only with --seed 4294967295's oracle)."""
    return seed or LARGEST_SEED


def make_tuner(search: Search, results_dir: Path, hypermodel, pipeline, log=print) -> SeededTuner:
    objective = kt.Objective("val_accuracy", direction="max")
    epochs = search.run.resolve().recipe_fields.epochs
    # A failed trial is recorded as FAILED and the search goes on (never retried in the same call).
    common = dict(objective=objective, seed=oracle_seed(search.run.seed), max_retries_per_trial=0,
                  max_consecutive_failed_trials=10**6)
    oracle = {
        "random": lambda: kt.oracles.RandomSearchOracle(max_trials=search.max_trials, **common),
        "bayesian": lambda: kt.oracles.BayesianOptimizationOracle(max_trials=search.max_trials, **common),
        # Hyperband decides the number of trials from its epoch budget; max_trials does not apply.
        "hyperband": lambda: kt.oracles.HyperbandOracle(max_epochs=max(epochs, 2), factor=3, **common),
    }[search.tuner]()
    return SeededTuner(search, pipeline, epochs, log, oracle=oracle, hypermodel=hypermodel,
                       directory=str(results_dir), project_name=layout.TUNER_PROJECT, overwrite=False)


def _describe(values: dict) -> str:
    return ", ".join(f"{k} {round(v, 6) if isinstance(v, float) else v}" for k, v in values.items()
                     if not k.startswith("tuner/"))


# ----------------------------------------------------------------------------------------------
# Exports, from keras-tuner's trial files and our executions files


def collect_trials(results_dir: Path, search: Search) -> pd.DataFrame:
    rows = []
    seeds = search.seeds()
    for path in sorted((Path(results_dir) / layout.TUNER_PROJECT).glob(layout.TRIAL_FILES)):
        trial = trial_module.Trial.load(str(path))
        executions = records.read_executions(path.parent)
        by_seed = {e.seed: e for e in executions}
        row = {"trial_id": trial.trial_id,
               **{k: round(v, 6) if isinstance(v, float) else v for k, v in trial.hyperparameters.values.items()
                  if not k.startswith("tuner/")},
               **{f"val_accuracy_seed{s}": by_seed[s].val_accuracy if s in by_seed else None for s in seeds},
               "mean_val_accuracy": float(np.mean([e.val_accuracy for e in executions])) if executions else None,
               "status": trial.status, "seconds": sum(e.seconds for e in executions),
               "error": (trial.message or "").strip().splitlines()[-1] if trial.message else ""}
        if "tuner/epochs" in trial.hyperparameters.values:
            row["epochs"] = trial.hyperparameters.values["tuner/epochs"]
        rows.append(row)
    return pd.DataFrame(rows)


TRIAL_COLUMNS = {"trial_id", "mean_val_accuracy", "status", "seconds", "error", "epochs"}


def write_exports(results_dir: Path, search: Search, trials: pd.DataFrame,
                  best_metrics: records.Metrics | None) -> None:
    io.write_csv(results_dir / layout.TRIALS_FILE, trials)
    # TensorBoard's HParams dashboard: a session per completed trial (its drawn values, its score).
    names = [c for c in trials.columns if c not in TRIAL_COLUMNS and not c.startswith("val_accuracy_seed")]
    done = trials[trials["status"] == "COMPLETED"] if len(trials) else trials
    hparams.write_sessions(results_dir, [(f"trial_{row['trial_id']}", {n: row[n] for n in names},
                                          {"mean_val_accuracy": row["mean_val_accuracy"], "seconds": row["seconds"]})
                                         for _, row in done.iterrows()],
                           hparams=names, metrics=["mean_val_accuracy", "seconds"])
    plots.safe_plot(results_dir / layout.DROPOUT_PLOT, figures.plot_dropout_search, trials, search.seeds(),
                    f"{search.run.model}: {search.tuner} search")
    io.write_text(results_dir / layout.SUMMARY_FILE, search_summary(search, trials, best_metrics))
    pages.safe_pages(pages.write_search_page, results_dir, f"Dropout-rate search: {search.run.model}")


def search_summary(search: Search, trials: pd.DataFrame, best_metrics: records.Metrics | None) -> str:
    """The search's summary.md: the trials, the best rate against the runner-up, the retrained winner."""
    done = trials[trials["status"] == "COMPLETED"].sort_values("mean_val_accuracy", ascending=False)
    columns = [f"val_accuracy_seed{s}" for s in search.seeds()]
    lines = [f"# Dropout-rate search: {search.run.model}", ""]
    if search.protocol != "paper":
        lines += [f"> **{search.protocol.upper()} PROTOCOL.** A check of the search end to end; these scores are not "
                  f"results.", ""]
    lines += [f"{search.tuner} search, {len(done)} completed of {len(trials)} trials, {search.executions_per_trial} "
              f"execution(s) per trial (seeds {', '.join(map(str, search.seeds()))}), scored on the validation "
              f"split (best epoch of each execution, mean over executions). The test split is read once, by the "
              f"retrained winner.", ""]
    failed = trials[~trials["status"].isin(["COMPLETED", "RUNNING", "IDLE"])]
    if len(failed):
        lines += [f"**{len(failed)} trial(s) did not complete:** " + "; ".join(
            f"{r.trial_id} ({r.status}: {r.error})" for r in failed.itertuples()), ""]
    if len(done):
        best = done.iloc[0]
        spread = done[columns].std(axis=1, ddof=1) if len(columns) > 1 else pd.Series(np.nan, index=done.index)
        lines += [f"**Best rate: {best['dropout_rate']:g}** (mean validation accuracy "
                  f"{100 * best['mean_val_accuracy']:.2f}%).", ""]
        if len(done) > 1:
            lines += [_separation(best, done.iloc[1], search.seeds(), search.run.model), ""]
        lines += ["| trial | dropout rate | " + " | ".join(c.replace("val_accuracy_", "") for c in columns)
                  + " | mean | std | 95% CI of mean |",
                  "| --- | ---: | " + " | ".join("---:" for _ in columns) + " | ---: | ---: | ---: |"]
        for (_, row), std in zip(done.iterrows(), spread, strict=True):
            values = " | ".join(f"{100 * row[c]:.2f}" if pd.notna(row[c]) else "–" for c in columns)
            scores = [100 * row[c] for c in columns if pd.notna(row[c])]
            interval = interval_of_mean(scores)
            plural = "" if len(scores) == 1 else "s"
            interval = f"{interval[0]:.2f} to {interval[1]:.2f}" if interval else f"n/a: {len(scores)} execution{plural}"
            lines.append(f"| {row['trial_id']} | {row['dropout_rate']:g} | {values} | "
                         f"{100 * row['mean_val_accuracy']:.2f} | {'–' if pd.isna(std) else f'{100 * std:.2f}'} | "
                         f"{interval} |")
        lines.append("")
    if best_metrics:
        lines += [f"**Retrained winner** (`best/`, seed {search.run.seed}): test accuracy "
                  f"{100 * best_metrics.test_accuracy:.2f}%, test loss {best_metrics.test_loss:.4f}, "
                  f"best validation accuracy {100 * best_metrics.best_val_accuracy:.2f}%.", ""]
    return "\n".join(lines)


def _separation(best, runner_up, seeds, model: str) -> str:
    """Whether the best rate is separated from the runner-up: their validation errors compared on
    matched executions (execution i of every trial trains with the same seed) by the studies'
    decision (`statistics.compare`). The two were picked as the top two on these very scores, so
    the gap is biased upward (the winner's curse): the line says so and names the sweep that
    compares them on fresh seeds."""
    def errors(trial):
        return {s: 100 * (1 - trial[f"val_accuracy_seed{s}"]) for s in seeds if pd.notna(trial[f"val_accuracy_seed{s}"])}

    gap = 100 * (best["mean_val_accuracy"] - runner_up["mean_val_accuracy"])
    result = compare(f"rate {best['dropout_rate']:g}", errors(best), f"rate {runner_up['dropout_rate']:g}",
                     errors(runner_up))
    separated = "separated from" if result.verdict == "lower" else "not separated from"
    return (f"Runner-up: {runner_up['dropout_rate']:g} at {100 * runner_up['mean_val_accuracy']:.2f}%, {gap:.2f} points "
            f"behind. The best rate is **{separated}** the runner-up on validation error: "
            f"{result.sentence('run --executions-per-trial 5')} Both were chosen as the top two on these same "
            f"scores, so this comparison is optimistic (the winner's curse); to compare them on fresh seeds: "
            f"`python -m ablation sweep --model {model} --vary dropout_rate={best['dropout_rate']:g},"
            f"{runner_up['dropout_rate']:g} --seeds auto`.")


def search_cost(search: Search) -> dict:
    """The cost of a search from scratch (`ablation.study.cost`): max_trials x executions_per_trial runs
    of the search's net (the dropout rate and the learning rate cost nothing), and the winner
    retrained in `best/`. Hyperband sizes its trials itself: no fixed count to estimate."""
    if search.tuner == "hyperband":
        raise ConfigError("--dry-run with --tuner hyperband is not valid; hyperband sizes its trials from --epochs "
                          "as it goes: expected --tuner bayesian or random for an estimate.")
    resolved, profile = search.run.resolve(), cost.machine_profile()
    one = cost.estimate(resolved, cost.net_of(resolved), cost.dataset_splits(search.run.dataset, search.run.data_dir),
                        profile)
    runs = search.max_trials * search.executions_per_trial + 1
    return {"search": search.run.model, "tuner": search.tuner, **cost.total([one] * runs, profile),
            "per_run": one.to_json()}


def changed_settings(previous: records.SearchRecord, now: records.SearchRecord) -> list[str]:
    """What differs between a search.json and this search's settings; the run compared as a run is
    (config.run_identity: a recipe field recorded before its axis existed is at its default)."""
    old, new = previous.settings, io.json_roundtrip(now.settings)
    changed = [k for k in set(new) | set(old) if old.get(k) != new.get(k)]
    return sorted(changed + (["run"] if run_identity(previous.run) != run_identity(io.json_roundtrip(now.run)) else []))


def run_search(search: Search, results_dir, *, log=print, retrain_stale=False) -> int:
    """Search (or go on searching), then, unless this is a worker, export and retrain the winner. A
    search whose trials started from tied initial weights (its search.json records no initialization)
    is refused, or with `retrain_stale` kept aside as NAME.stale and started anew."""
    results_dir = Path(results_dir)
    # What defines the search; max_trials may grow from one call to the next.
    resolved = search.run.resolve()
    settings = records.SearchRecord(
        settings={k: v for k, v in dataclasses.asdict(search).items() if k not in ("run", "max_trials")},
        run=resolved.to_json(), initialization=resolved.initialization())
    previous = records.read_search(results_dir)
    if previous is not None and previous.initialization is None:
        if not retrain_stale or is_worker():  # the chief alone moves the shared folder
            raise StaleRun(results_dir, "a search", "--results-dir")
        log(f"{results_dir}: its trials started from tied initial weights; kept as {records.move_aside(results_dir)}, "
            f"searching anew")
        previous = None
    changed = [] if previous is None else changed_settings(previous, settings)
    if changed:
        raise ConfigError(f"{results_dir} holds a search with other settings ({', '.join(changed)}); "
                          f"use another --results-dir.")
    if not is_worker():
        records.write_search(results_dir, settings)

    # Before the set-up, not inside it: clear_session resets Keras's global state, the precision
    # policy the set-up holds for the trials included.
    keras.backend.clear_session()
    with set_up(search.run) as run:
        # The search sees the training and validation splits only.
        run.pipeline = dataclasses.replace(run.pipeline, test=None)
        tuner = make_tuner(search, results_dir, DropoutHyperModel(search, run), run.pipeline, log=log)
        log(f"{search.tuner} search over {_describe({'dropout_rate': f'{search.min_rate:g}..{search.max_rate:g}'})} "
            f"on {search.run.model}: {len(tuner.oracle.trials) if hasattr(tuner.oracle, 'trials') else 0} trials "
            f"on record, results in {results_dir}")
        tuner.search()
    if is_worker():
        log(f"worker {tuner.tuner_id}: no more trials")
        return 0

    trials = collect_trials(results_dir, search)
    for row in trials[~trials["status"].isin(["COMPLETED"])].itertuples():
        warnings.warn(f"trial {row.trial_id} ({_describe({'dropout_rate': row.dropout_rate})}) is {row.status}"
                      + (f": {row.error}" if row.error else ""), stacklevel=2)
    done = trials[trials["status"] == "COMPLETED"]
    best_metrics = None
    if len(done):
        best = done.sort_values("mean_val_accuracy", ascending=False).iloc[0]
        overrides = {"dropout_rate": float(best["dropout_rate"])}
        recipe = dict(search.run.recipe_overrides)
        if "learning_rate" in best and pd.notna(best.get("learning_rate")):
            recipe["learning_rate"] = float(best["learning_rate"])
        config = dataclasses.replace(search.run, model_overrides={**search.run.model_overrides, **overrides},
                                     recipe_overrides=recipe)
        log(f"best: {_describe(overrides)}; retraining it and testing it once in {results_dir / layout.WINNER_DIR}")
        title = f"{config.model}, dropout {overrides['dropout_rate']:g}"
        best_metrics = train(config, results_dir / layout.WINNER_DIR, log=log, on_built=lambda model: write_run_diagrams(
            config, results_dir / layout.WINNER_DIR, title=title, model=model))
    write_exports(results_dir, search, trials, best_metrics)
    log(f"{layout.TRIALS_FILE}, {layout.DROPOUT_PLOT}, {layout.SUMMARY_FILE} and {layout.INDEX_PAGE} in {results_dir}")
    return 0 if (trials["status"] == "COMPLETED").all() else 1
