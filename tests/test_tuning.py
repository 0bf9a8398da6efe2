"""The keras-tuner dropout search: hypermodel, per-execution scores, resume, failures,
distributed chief and workers, and the winner tested exactly once."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

from ablation.cli import search_main
from ablation.core import io, records
from ablation.run import setup
from ablation.run import training as run_module
from ablation.run.config import RunConfig
from ablation.run.setup import set_up
from ablation.study import SearchDefaults, cost, tuning
from ablation.study.tuning import DropoutHyperModel, Search, changed_settings, run_search
from tests.helpers import PNG, ROOT, diagram_drawn, quiet

SETTINGS = dict(recipe_overrides={"epochs": 1, "batch_size": 32}, max_steps_per_epoch=2)


def tiny_search(dataset, **kwargs):
    return Search(run=RunConfig(model="wrn-10-1", dataset=dataset, **SETTINGS), tuner="random",
                  **{"max_trials": 2, "executions_per_trial": 2, **kwargs})


def test_hypermodel_builds_the_net_for_the_drawn_rate(easy):
    search = tiny_search(easy)
    hp = kt.HyperParameters()
    hp.Float("dropout_rate", 0.0, 0.5, step=0.05)
    hp.values["dropout_rate"] = 0.35
    with set_up(search.run) as run:  # as run_search sets the trials up
        model = DropoutHyperModel(search, run).build(hp)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.35] * 3  # one per block of WRN-10-1, between its convs
    assert model.output.shape == (None, 4)
    assert model.optimizer.coupled_weight_decay == 5e-4  # the recipe's weight decay
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov


@pytest.mark.slow
def test_search_keeps_every_execution_and_tests_the_winner_once(easy, tmp_path, monkeypatch):
    calls = []
    real_predict = run_module.predict
    monkeypatch.setattr(run_module, "predict", lambda *a: calls.append(1) or real_predict(*a))
    search = tiny_search(easy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_search(search, tmp_path, log=quiet) == 0
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 2 and trials["dropout_rate"].nunique() == 2 and set(trials["status"]) == {"COMPLETED"}
    scores = trials[["val_accuracy_seed42", "val_accuracy_seed43"]]
    assert scores.notna().all().all()
    np.testing.assert_allclose(trials["mean_val_accuracy"], scores.mean(axis=1))
    assert (tmp_path / "dropout_rate.png").read_bytes()[:8] == PNG
    assert "Best rate" in (tmp_path / "summary.md").read_text()
    # A TensorBoard HParams session per trial, beside the experiment's description.
    assert sorted(p.name for p in (tmp_path / "hparams").iterdir() if p.is_dir()) == sorted(
        f"trial_{t}" for t in trials["trial_id"])
    assert list((tmp_path / "hparams").glob("events.out.tfevents.*"))
    best = trials.sort_values("mean_val_accuracy").iloc[-1]["dropout_rate"]
    config = io.read_json(tmp_path / "best" / "config.json")
    assert config["run"]["model_kwargs"]["dropout_rate"] == pytest.approx(best)
    assert (tmp_path / "best" / "metrics.json").exists() and diagram_drawn(tmp_path / "best" / "architecture")
    assert len(calls) == 1  # the test split was read by the retrained winner, and only by it
    # The search's page: summary.md, the plot, the trials, and the winner's run page.
    page = (tmp_path / "index.html").read_text()
    assert "Best rate" in page and 'src="dropout_rate.png"' in page and 'href="best/index.html"' in page
    assert "<h2>Trials</h2>" in page and 'class="node"' in (tmp_path / "best" / "index.html").read_text()

    # Called again: nothing more to search, nothing retrained, the test split not read again.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_search(search, tmp_path, log=quiet) == 0
    assert len(calls) == 1 and len(pd.read_csv(tmp_path / "trials.csv")) == 2


@pytest.mark.slow
def test_an_interrupted_search_resumes_cleanly(easy, tmp_path, monkeypatch):
    search = tiny_search(easy, max_trials=3, executions_per_trial=1)
    real_fit = keras.Model.fit
    fits = []

    def interrupt_second_trial(self, *args, **kwargs):
        fits.append(1)
        if len(fits) == 2:
            raise KeyboardInterrupt  # as Ctrl-C, or a kill, in the middle of trial 1
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", interrupt_second_trial)
    with pytest.raises(KeyboardInterrupt):
        run_search(search, tmp_path, log=quiet)
    monkeypatch.setattr(keras.Model, "fit", real_fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_search(search, tmp_path, log=quiet) == 0
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert sorted(trials["trial_id"]) == [0, 1, 2] and set(trials["status"]) == {"COMPLETED"}
    attempts = {t: len((tmp_path / "keras_tuner" / f"trial_{t}" / "attempts.log").read_text().splitlines())
                for t in range(3)}
    assert attempts == {0: 1, 1: 2, 2: 1}  # only the interrupted trial ran again, from scratch


@pytest.mark.slow
def test_every_trial_trains_under_the_runs_precision(easy, tmp_path, monkeypatch):
    real_compile, policies = setup.compile_model, []

    def recording(model, *args, **kwargs):
        policies.append(model.get_layer("group1_block1_conv1").dtype_policy.name)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(setup, "compile_model", recording)
    search = tiny_search(easy, max_trials=1, executions_per_trial=1)
    search = dataclasses.replace(search, run=dataclasses.replace(search.run, precision="mixed_bfloat16"))
    run_search(search, tmp_path / "search", log=quiet)
    # keras-tuner's discovery build, the trial's, and the retrained winner's: all in bfloat16.
    assert len(policies) >= 3 and set(policies) == {"mixed_bfloat16"}, policies


@pytest.mark.slow
def test_a_failed_trial_is_recorded_and_warned_about(easy, tmp_path, monkeypatch):
    real_compile = setup.compile_model
    builds = []

    def fail_first_trial(model, *args, **kwargs):
        builds.append(1)
        if len(builds) == 2:  # build 1 is keras-tuner's own, to discover the search space
            raise RuntimeError("simulated out-of-memory")
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(setup, "compile_model", fail_first_trial)
    search = tiny_search(easy, executions_per_trial=1)
    with pytest.warns(UserWarning, match="FAILED"):
        assert run_search(search, tmp_path, log=quiet) == 1
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert list(trials["status"]) == ["FAILED", "COMPLETED"]
    assert "simulated out-of-memory" in trials["error"].iloc[0]
    assert "did not complete" in (tmp_path / "summary.md").read_text()


def test_a_search_recorded_before_the_recipe_axes_goes_on_and_a_changed_one_is_refused(easy):
    search = tiny_search(easy)
    now = records.SearchRecord({"tuner": search.tuner}, search.run.resolve().to_json(), None)
    before = records.SearchRecord({"tuner": search.tuner}, json.loads(json.dumps(now.run)), None)
    for name in ("label_smoothing", "mixup_alpha", "ema_decay", "lr_schedule"):  # not recorded then
        del before.run["recipe_fields"][name]
    assert changed_settings(before, now) == []
    smoothed = dataclasses.replace(search, run=dataclasses.replace(search.run, recipe_overrides={
        **search.run.recipe_overrides, "label_smoothing": 0.1}))
    assert changed_settings(before, dataclasses.replace(now, run=smoothed.run.resolve().to_json())) == ["run"]


def test_changed_settings_are_refused(easy, tmp_path):
    io.write_json(tmp_path / "search.json", {"tuner": "hyperband", "run": tiny_search(easy).run.resolve().to_json(),
                                             "initialization": {"draws": "per layer"}})
    with pytest.raises(ValueError, match="other settings"):
        run_search(tiny_search(easy), tmp_path, log=quiet)


@pytest.mark.parametrize("args,expected", [
    (["--max-trials", "0"], "--max-trials 0 is not valid"),
    (["--executions-per-trial", "0"], "--executions-per-trial 0 is not valid"),
    (["--step", "0"], "--step 0 is not valid"),
    (["--min-rate", "0.5", "--max-rate", "0.5"], "--min-rate 0.5 --max-rate 0.5 is not valid"),
    # Execution i trains with seed + i: the last one must be a seed NumPy and TensorFlow take.
    (["--seed", "4294967295", "--executions-per-trial", "2"], "expected --seed at most 4294967294"),
    (["--seed", "4294967295", "--executions-per-trial", "2", "--dry-run"], "expected --seed at most 4294967294"),
])
def test_bad_search_settings_are_one_line(tmp_path, capsys, args, expected):
    # Refused before any data is read: a zero count no longer falls back to the default.
    assert search_main("tune_dropout", SearchDefaults(), [*args, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_with_a_chief_and_two_workers_on_loopback(easy, tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "studies.tune_dropout", "--protocol", "smoke", "--model", "wrn-10-1",
               "--dataset", easy, "--tuner", "random", "--max-trials", "4", "--executions-per-trial", "1",
               "--epochs", "1", "--results-dir", str(tmp_path)]
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        processes[tuner_id] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True)
    outputs = {name: p.communicate(timeout=600)[0] for name, p in processes.items()}
    assert {name: p.returncode for name, p in processes.items()} == {"chief": 0, "tuner0": 0, "tuner1": 0}, outputs
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 4 and trials["trial_id"].is_unique and set(trials["status"]) == {"COMPLETED"}
    assert trials["dropout_rate"].nunique() == 4
    runners = []
    for trial_id in trials["trial_id"]:
        lines = (tmp_path / "keras_tuner" / f"trial_{trial_id}" / "attempts.log").read_text().splitlines()
        assert len(lines) == 1  # every trial ran exactly once
        runners.append(lines[0].split()[1])
    assert set(runners) <= {"tuner0", "tuner1"}  # the workers trained; the chief only held the oracle
    assert (tmp_path / "best" / "metrics.json").exists()  # and the chief retrained the winner


@pytest.mark.slow
def test_model_without_dropout_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "studies.tune_dropout", "--model", "resnet-20",
                             "--results-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: model 'resnet-20' has no dropout_rate")


@pytest.mark.parametrize("executions,separated", [
    # Rate 0.3 beats 0.25 by 1-2 points on each of 4 matched executions: separated.
    ({0.3: [0.90, 0.91, 0.89, 0.92], 0.25: [0.89, 0.89, 0.88, 0.90]}, "**separated from** the runner-up"),
    # The same means, but the executions disagree: not separated.
    ({0.3: [0.90, 0.86, 0.94, 0.92], 0.25: [0.93, 0.89, 0.85, 0.89]}, "**not separated from** the runner-up"),
])
def test_the_best_rate_is_compared_with_the_runner_up_on_matched_executions(executions, separated):
    search = Search(run=RunConfig(model="wrn-16-4-dropout"), tuner="random", executions_per_trial=4)
    trials = pd.DataFrame([{"trial_id": f"t{rate}", "dropout_rate": rate, "status": "COMPLETED",
                            **{f"val_accuracy_seed{s}": a for s, a in zip(search.seeds(), scores, strict=True)},
                            "mean_val_accuracy": np.mean(scores)} for rate, scores in executions.items()])
    markdown = tuning.search_summary(search, trials, None)
    assert "**Best rate: 0.3**" in markdown and separated in markdown
    assert markdown.count(" to ") >= 2  # each trial's 95% interval of its mean
    one = tuning.search_summary(dataclasses.replace(search, executions_per_trial=1),
                                  trials[["trial_id", "dropout_rate", "status", "val_accuracy_seed42",
                                          "mean_val_accuracy"]], None)
    assert "not resolved with 1 seed" in one and "run --executions-per-trial 5" in one and "n/a: 1 execution |" in one


def test_a_searchs_dry_run_gives_its_cost_and_trains_nothing(easy, tmp_path, capsys, monkeypatch):
    profile = cost.Profile(machine="test", startup=2.0, startup_per_layer=0.1, rates=((2e6, 1e11), (8e6, 4e11)),
                           study_overhead=5.0)
    monkeypatch.setattr(cost, "machine_profile", lambda log=print: profile)
    args = ["--protocol", "smoke", "--model", "wrn-10-1", "--dataset", easy, "--results-dir", str(tmp_path / "s"),
            "--dry-run"]
    assert search_main("tune_dropout", SearchDefaults(), [*args, "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    # The smoke search: 3 trials x 2 executions, and the winner retrained, each one run of the net.
    one = estimate["per_run"]
    assert estimate["runs_to_train"] == 7 and not (tmp_path / "s").exists()
    assert estimate["estimated_seconds"] == pytest.approx(5.0 + 7 * one["estimated_seconds"])
    assert estimate["gpu_hours"]["H100"] == pytest.approx(7 * one["gpu_hours"]["H100"])
    assert search_main("tune_dropout", SearchDefaults(), args) == 0
    assert capsys.readouterr().out.startswith("cost: 7 runs of wrn-10-1 (3 trials x 2 executions")
    assert search_main("tune_dropout", SearchDefaults(), [*args, "--tuner", "hyperband"]) == 2
    assert "--dry-run with --tuner hyperband is not valid" in capsys.readouterr().err


def test_a_trial_whose_loss_is_not_finite_fails_with_the_runs_own_check():
    from ablation.run.callbacks import DivergenceCheck, TrainingDiverged

    check = DivergenceCheck("with seed 43")
    check.on_epoch_end(0, {"loss": 2.3})  # a finite loss goes on
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2 with seed 43"):
        check.on_epoch_end(1, {"loss": float("nan")})


@pytest.mark.parametrize("seed", [0, 42])
def test_every_seed_gives_the_tuner_the_same_draws_on_every_call(seed):
    # keras-tuner replaces a falsy seed with a random one: --seed 0 searched differently each call.
    first, again = (kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1,
                                                  seed=tuning.oracle_seed(seed)) for _ in range(2))
    assert first.seed == again.seed
