"""Studies: declarations, the resumable and shardable runner, tables, plots and diagrams."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import runpy
import shutil
import subprocess
import sys
import threading
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import studies
from ablation.cli import main as ablation_main
from ablation.cli import study_main
from ablation.core import io, locks, plots, records
from ablation.core.errors import ConfigError, RunLocked
from ablation.core.locks import RunLock
from ablation.core.run_folder import status
from ablation.report import figures, tables
from ablation.report.diagrams import block_dot, block_stages, write_diagrams, write_run_diagrams
from ablation.run.config import RunConfig
from ablation.run.recipes import get_recipe
from ablation.study import Configuration, Options, Smoke, Study, claiming, seeding
from ablation.study.claiming import parse_shard
from ablation.study.planning import plan, slug
from ablation.study.runner import rename_labelled_folders, run_study
from builders import build, count_params
from tests.helpers import PNG, ROOT, STUDY_ENTRY_POINTS, diagram_drawn, needs_graphviz, quiet
from tests.tiny_study import STUDY as TINY

# The tiny study's configurations as their run ids name them: the net, then what departs from its recipe.
PLAIN, DROPOUT = "wrn-10-1-batch_size=32", "wrn-10-1-dropout_rate=0.3-batch_size=32"
ALL_MODULES = sorted(STUDY_ENTRY_POINTS)
# Those that declare a Study (tune_dropout declares a search instead).
STUDY_MODULES = [name for name, module in STUDY_ENTRY_POINTS.items() if hasattr(module, "STUDY")]


def load(name):
    return importlib.import_module(f"studies.{name}").STUDY


def test_the_studies_package_and_the_readme_name_every_study_in_the_folder():
    listed = {line.split()[0] for line in studies.__doc__.splitlines() if line.startswith("    ") and line.split()}
    assert listed == set(ALL_MODULES)
    readme = (ROOT / "README.md").read_text()
    in_table = {name for name in ALL_MODULES if f"| `python -m studies.{name}` |" in readme}
    assert in_table >= set(STUDY_MODULES) and STUDY_MODULES, sorted(set(STUDY_MODULES) - in_table)


# ----------------------------------------------------------------------------------------------
# Declarations


@pytest.mark.parametrize("name", STUDY_MODULES)
# Planning the smoke protocol builds every Wide ResNet to count its MACs (WRN-28-12: 52M params).
@pytest.mark.parametrize("protocol", ["paper", pytest.param("smoke", marks=pytest.mark.slow)])
def test_every_study_expands_into_valid_unique_runs(name, protocol):
    study = load(name)
    runs = plan(study, Options(protocol=protocol))  # plan() resolves, and so validates, every run
    assert runs and len({r.run_id for r in runs}) == len(runs)
    assert study.name == name and study.question.endswith("?")
    expected_seeds = study.seeds[: study.smoke.num_seeds] if protocol == "smoke" else study.seeds
    assert len(runs) == len(study.configurations) * len(expected_seeds)
    assert f"python -m studies.{name}" in importlib.import_module(f"studies.{name}").__doc__


@pytest.mark.slow
def test_importing_a_study_module_imports_no_tensorflow():
    # Declarations only: listing, importing or inspecting the studies costs no TensorFlow start-up.
    code = "import sys, studies.depth_vs_width, studies.tune_dropout; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_depth_vs_width_is_the_baseline_trio():
    # Their published params are checked once, beside the presets (tests/test_builders.py).
    runs = plan(load("depth_vs_width"), Options())
    assert [r.configuration.name for r in runs] == ["ResNet-110", "WRN-28-2", "WRN-28-2-dropout"]
    assert [r.config.model for r in runs] == ["resnet-110-projection", "wrn-28-2", "wrn-28-2-dropout"]
    assert {r.seed for r in runs} == {42} and {r.resolved.recipe for r in runs} == {"wrn"}


def test_dry_run_lists_every_run_with_the_params_of_its_net_and_its_status(capsys):
    study = load("block_types")
    assert run_study(study, Options(), dry_run=True, results_dir="/nonexistent") == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    *run_lines, total = lines[header + 1:]
    assert len(run_lines) == len(study.configurations) * len(study.seeds)
    assert total.startswith(f"cost: {len(run_lines)} of {len(run_lines)} runs to train")
    expected = [configuration for configuration in study.configurations for _ in study.seeds]
    for configuration, line in zip(expected, run_lines, strict=True):
        params = count_params(build(configuration.model, **configuration.model_overrides))["trainable_params"]
        assert f" {configuration.name} " in line and f"{params:,}" in line and " pending " in line


@pytest.mark.slow
def test_smoke_protocol_downsizes_big_nets_and_says_so():
    runs = {r.configuration.name: r for r in plan(load("widening"), Options(protocol="smoke"))}
    assert runs["WRN-28-12"].downsized == "widen_factor 12 -> 2"
    assert runs["WRN-40-1"].downsized == ""
    vs = {r.configuration.name: r for r in plan(load("plain_vs_residual"), Options(protocol="smoke"))}
    assert vs["ResNet-50 SGD"].resolved.input_shape == (64, 64, 3)


# ----------------------------------------------------------------------------------------------
# The runner, end to end on tiny data


@pytest.mark.slow
def test_smoke_study_end_to_end_with_a_failure_recorded_and_retried(easy, tmp_path, monkeypatch):
    results = tmp_path / "tiny"
    options = Options(protocol="smoke", dataset=easy)
    real_train = claiming.train

    def failing_once(config, out, **kwargs):
        if out.name == f"{DROPOUT}-s1":
            io.write_json(out / "failure.json", {"error": "RuntimeError: simulated"})
            raise RuntimeError("simulated")
        return real_train(config, out, **kwargs)

    lines = []
    monkeypatch.setattr(claiming, "train", failing_once)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = run_study(TINY, options, results_dir=results, log=lines.append)
    assert code == 1 and any("FAILED" in line and f"{DROPOUT}-s1" in line for line in lines)
    frame = pd.read_csv(results / "results.csv")
    assert dict(zip(frame["run_id"], frame["status"], strict=True)) == {
        f"{PLAIN}-s1": "done", f"{PLAIN}-s2": "done", f"{DROPOUT}-s1": "failed", f"{DROPOUT}-s2": "done"}

    # The exports of a study and of its runs.
    for name in ("learning_curves.png", "error_vs_params.png", "error_vs_time.png", "per_class_accuracy.png"):
        assert (results / name).read_bytes()[:8] == PNG, name
    run = results / "runs" / f"{PLAIN}-s1"
    for name in ("confusion_matrix.png", "learning_curves.png"):
        assert (run / name).read_bytes()[:8] == PNG, name
    assert diagram_drawn(run / "architecture") and diagram_drawn(run / "blocks")
    assert "group1_block1_conv1" in (run / "model_summary.txt").read_text()
    summary = (results / "summary.md").read_text()
    assert "SMOKE PROTOCOL" in summary and "Does dropout change a tiny net?" in summary
    # The failed run leaves one matched seed (2) against the baseline, the first configuration.
    assert "- WRN-10-1-dropout against WRN-10-1: not resolved with 1 seed (difference" in summary
    assert set(frame["protocol"]) == {"smoke"} and "dropout_rate" in frame
    assert sorted(frame["dropout_rate"]) == [0.0, 0.0, 0.3, 0.3]
    assert json.loads((results / "test_results_summary.json").read_text())["WRN-10-1"]["trainable_params"] > 0

    # The next call retries the failed run, and only it.
    trained = []
    monkeypatch.setattr(claiming, "train", lambda config, out, **kw: trained.append(out.name) or
                        real_train(config, out, **kw))
    lines.clear()
    assert run_study(TINY, options, results_dir=results, log=lines.append) == 0
    assert trained == [f"{DROPOUT}-s1"]
    assert any("failed last time" in line for line in lines)
    assert set(pd.read_csv(results / "results.csv")["status"]) == {"done"}

    # And the one after that trains nothing.
    trained.clear()
    assert run_study(TINY, options, results_dir=results, log=quiet) == 0 and trained == []

    # Tables are rebuilt from the run folders alone.
    (results / "results.csv").unlink()
    assert ablation_main(["report", str(results)]) == 0
    assert len(pd.read_csv(results / "results.csv")) == 4


@pytest.fixture
def entry_point_console(monkeypatch):
    """What an entry point's prepare_console() changes for the whole process (how warnings print,
    the tensorflow and absl loggers, TF_CPP_MIN_LOG_LEVEL), put back after a study module ran in
    this process, so that the tests after it see the process as pytest set it up."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    for name in ("TF_CPP_MIN_LOG_LEVEL",):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    loggers = [(logger, logger.level, list(logger.filters), logger.disabled)
               for logger in map(logging.getLogger, ("tensorflow", "absl"))]
    yield
    for logger, level, filters, disabled in loggers:
        logger.setLevel(level)
        logger.filters[:] = filters
        logger.disabled = disabled


@pytest.mark.long
@pytest.mark.parametrize("name", ALL_MODULES)
def test_every_study_module_trains_every_configuration_and_writes_its_exports(name, easy, tmp_path, monkeypatch,
                                                                                 entry_point_console):
    # As a user runs it, `python -m studies.NAME --protocol smoke` (in this process: no second
    # TensorFlow start-up; the console settings its entry point changes are put back), on tiny data
    # and for one epoch: every configuration takes real steps.
    results = tmp_path / name
    monkeypatch.setattr(sys, "argv", [f"studies/{name}.py", "--protocol", "smoke", "--dataset", easy, "--epochs", "1",
                                      "--results-dir", str(results)])
    with warnings.catch_warnings(), pytest.raises(SystemExit) as exit_status:
        warnings.simplefilter("ignore")
        runpy.run_module(f"studies.{name}", run_name="__main__")
    assert exit_status.value.code == 0
    module = importlib.import_module(f"studies.{name}")
    if hasattr(module, "STUDY"):
        frame = pd.read_csv(results / "results.csv")
        study = module.STUDY
        assert len(frame) == len(study.configurations) * study.smoke.num_seeds
        assert list(dict.fromkeys(frame["configuration"])) == [c.name for c in study.configurations]
        assert set(frame["status"]) == {"done"} and (frame["epochs"] == 1).all()
        for run_id in frame["run_id"]:
            run = results / "runs" / run_id
            history = pd.read_csv(run / "history.csv")
            assert len(history) == 1 and np.isfinite(history["loss"]).all(), run_id
            for export in ("metrics.json", "final.keras", "model_summary.txt", "per_class_accuracy.csv"):
                assert (run / export).stat().st_size > 0, (run_id, export)
            for diagram in ("architecture", "blocks"):  # PNG, or DOT text where Graphviz is missing
                assert diagram_drawn(run / diagram), (run_id, diagram)
            assert f'<h1>{run_id}</h1>' in (run / "index.html").read_text()
        index = (results / "index.html").read_text()
        assert all(f'href="runs/{urllib.parse.quote(run_id)}/index.html"' in index for run_id in frame["run_id"])
        for export in ("summary.md", "comparisons.csv", "results.tex", "test_results_summary.json",
                       "learning_curves.png", "error_over_seeds.png", "error_vs_params.png", "error_vs_time.png",
                       "per_class_accuracy.png"):
            assert (results / export).stat().st_size > 0, export
        assert all(c.name in (results / "summary.md").read_text() for c in study.configurations)
    else:  # a search: every trial completed, the winner retrained and tested once
        trials = pd.read_csv(results / "trials.csv")
        assert len(trials) and set(trials["status"]) == {"COMPLETED"}
        assert json.loads((results / "best" / "metrics.json").read_text())["epochs"] == 1
        for export in ("summary.md", "dropout_rate.png", "index.html", "best/index.html"):
            assert (results / export).stat().st_size > 0, export


# Before block types had names TensorFlow accepts, a B(1,3,1) net was named "WRN-10-1-B(1,3,1)".
def _paper_notation_name(depth, widen_factor, kernels):
    suffix = "" if tuple(kernels) == (3, 3) else "-B(" + ",".join(map(str, kernels)) + ")"
    return f"WRN-{depth}-{widen_factor}{suffix}"


BLOCKS = Study(name="blocks", question="Which block?", varies=("block_type",), recipe="wrn",
               recipe_overrides={"batch_size": 32}, seeds=(1,),
               configurations=[Configuration("B(3,3)", "wrn-10-1"),
                               Configuration("B(1,3,1)", "wrn-10-1", {"block_type": "B(1,3,1)"})],
               smoke=Smoke(epochs=1, max_steps_per_epoch=2))


def test_a_declared_baseline_must_be_one_of_the_configurations():
    assert dataclasses.replace(BLOCKS, baseline="B(1,3,1)").baseline_name == "B(1,3,1)"
    assert BLOCKS.baseline_name == "B(3,3)"  # the first, by default
    with pytest.raises(ConfigError, match=r"baseline='B\(3,1\)' is not valid; expected one of the configurations: "
                                          r"B\(3,3\), B\(1,3,1\)"):
        dataclasses.replace(BLOCKS, baseline="B(3,1)")


@pytest.mark.slow
def test_an_error_inside_a_run_is_a_run_failure_not_bad_input(easy, tmp_path, monkeypatch):
    # TensorFlow's own ValueError at the first step, as users met it: recorded, the study goes
    # on, the next call retries that run alone.
    monkeypatch.setattr(importlib.import_module("builders.wide_resnet"), "model_name", _paper_notation_name)
    results, lines = tmp_path / "blocks", []
    options = Options(protocol="smoke", dataset=easy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_study(BLOCKS, options, results_dir=results, log=lines.append) == 1
    b33, b131 = "wrn-10-1-batch_size=32-s1", "wrn-10-1-block_type=B131-batch_size=32-s1"
    assert status(results / "runs" / b33) == "done" and status(results / "runs" / b131) == "failed"
    failure = json.loads((results / "runs" / b131 / "failure.json").read_text())
    assert failure["error"].startswith("ValueError: ") and "root scope name" in failure["error"]
    assert "Traceback" in failure["traceback"]
    assert any(f"{b131}: FAILED (ValueError:" in line and "retried" in line for line in lines)
    assert "1 done, 1 failed" in (results / "summary.md").read_text()

    monkeypatch.undo()
    lines.clear()
    assert run_study(BLOCKS, options, results_dir=results, log=lines.append) == 0
    assert any(f"{b131}: failed last time" in line for line in lines)
    assert any(f"{b33}: done, skipped" in line for line in lines)
    assert set(pd.read_csv(results / "results.csv")["status"]) == {"done"}


@pytest.mark.slow
def test_a_failed_run_on_the_command_line_is_one_line_naming_its_record(easy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(importlib.import_module("builders.wide_resnet"), "model_name", _paper_notation_name)
    out = tmp_path / "run"
    code = ablation_main(["train", "--model", "wrn-10-1", "--block-type", "B(1,3,1)", "--dataset", easy,
                          "--epochs", "1", "--batch-size", "32", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "ValueError" in err and str(out / "failure.json") in err and "run the same command again" in err
    assert (out / "failure.json").exists() and not (out / "metrics.json").exists()
    # The failed trace left no Keras state behind (it left a name scope entered, which prefixed
    # every later variable path with the refused name): the next net's optimizer builds.
    monkeypatch.undo()
    model = build("wrn-10-1")
    optimizer = get_recipe("wrn").make_optimizer(10)
    optimizer.build(model.trainable_variables)
    assert all("B(" not in variable.path for variable in optimizer.variables)


@pytest.mark.slow
def test_a_damaged_record_fails_its_run_alone_and_names_the_file(easy, tmp_path):
    results, lines = tmp_path / "tiny", []
    options = Options(protocol="smoke", dataset=easy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_study(TINY, options, results_dir=results, log=quiet) == 0
    metrics = results / "runs" / f"{PLAIN}-s1" / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])  # truncated, as by a full disk or a bad copy
    config = results / "runs" / f"{PLAIN}-s2" / "config.json"  # and an unfinished run's identity
    (config.parent / "metrics.json").unlink()
    config.write_text(config.read_text()[:60])
    with pytest.warns(UserWarning, match="metrics.json is damaged"):
        assert run_study(TINY, options, results_dir=results, log=lines.append) == 1
    for run_id, path in ((f"{PLAIN}-s1", metrics), (f"{PLAIN}-s2", config)):
        assert any(f"{run_id}: FAILED" in line and str(path) in line and "remove it" in line for line in lines)
    assert sum("done, skipped" in line for line in lines) == 2  # the others went on
    frame = pd.read_csv(results / "results.csv")
    statuses = dict(zip(frame["run_id"], frame["status"], strict=True))
    assert statuses[f"{PLAIN}-s1"] == "failed" and statuses[f"{DROPOUT}-s1"] == "done"
    # Their pages say so, and the others' are written.
    for run_id, path in ((f"{PLAIN}-s1", metrics), (f"{PLAIN}-s2", config)):
        assert f"{path} is damaged" in (results / "runs" / run_id / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("shares", ["claimed", "fixed"])
def test_two_workers_share_one_results_directory(shares, easy, tmp_path):
    # Two processes at once, as two SLURM array tasks on a shared file system: by default each claims
    # the next run that is neither done nor held; with --shard I/N each takes its fixed share.
    results = tmp_path / "shared"
    command = [sys.executable, "-m", "tests.tiny_study", "--protocol", "smoke", "--dataset", easy,
               "--results-dir", str(results)]
    workers = [subprocess.Popen(command + (["--shard", f"{i}/2"] if shares == "fixed" else []), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs
    trained = [output.count("for this run") for output in outputs]  # said once a worker has a run's lock
    if shares == "fixed":
        assert "2 of 4 runs in shard 0/2" in outputs[0] and "2 of 4 runs in shard 1/2" in outputs[1]
        assert trained == [2, 2]
    else:
        assert all("4 runs, each claimed by the next free worker, most expensive first" in o for o in outputs)
        assert sum(trained) == 4 and min(trained) >= 1, outputs  # both trained; no run twice
    statuses = {run.name: status(run) for run in (results / "runs").iterdir()}
    assert statuses == dict.fromkeys([f"{PLAIN}-s1", f"{PLAIN}-s2", f"{DROPOUT}-s1", f"{DROPOUT}-s2"],
                                     "done")
    for run in (results / "runs").iterdir():  # every run trained exactly once: one history row per epoch
        assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2]
    # The worker that ended last (no other holding a run) wrote the tables of all four; one that ended
    # while the other held a run left them to it. Each did exactly one of the two (both write, one after
    # the other, if they end together).
    frame = pd.read_csv(results / "results.csv")
    assert len(frame) == 4 and (frame["status"] == "done").all()
    wrote = ["tables and plots in" in o for o in outputs]
    left = ["the last of them rebuilds the tables" in o for o in outputs]
    assert [w + l for w, l in zip(wrote, left, strict=True)] == [1, 1] and any(wrote), outputs


@pytest.mark.slow
def test_a_run_locked_by_another_process_is_left_alone(easy, tmp_path):
    results = tmp_path / "locked"
    runs = plan(TINY, Options(protocol="smoke", dataset=easy))
    held = RunLock(results / "runs" / runs[0].run_id)
    assert held.acquire()
    try:
        # A separate process sees the lock (flock locks are per open file, as across machines).
        probe = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                                "from ablation.core.run_folder import status; print(status(Path(sys.argv[1])))",
                                str(results / "runs" / runs[0].run_id)], cwd=ROOT, capture_output=True, text=True)
        assert probe.stdout.strip() == "running"
        lines = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_study(TINY, Options(protocol="smoke", dataset=easy), results_dir=results, only=runs[0].run_id,
                      log=lines.append)
        assert any("being trained by another process" in line for line in lines)
        assert not (results / "runs" / runs[0].run_id / "metrics.json").exists()
        # Another worker holds a run: the last worker to end writes the tables, not this one.
        assert any("1 run(s) still trained by other workers" in line for line in lines)
        assert not (results / "results.csv").exists()
    finally:
        held.release()


@pytest.mark.slow
def test_killed_study_trains_only_the_missing_runs(easy, tmp_path):
    import signal
    import time

    results = tmp_path / "killed"
    command = [sys.executable, "-m", "tests.tiny_study", "--protocol", "smoke", "--dataset", easy,
               "--results-dir", str(results)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = results / "runs" / f"{PLAIN}-s1" / "metrics.json"
    deadline = time.time() + 300
    while not first.exists():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {run.name for run in (results / "runs").iterdir() if (run / "metrics.json").exists()}
    assert f"{PLAIN}-s1" in finished and len(finished) < 4
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    skipped = {line.split()[1].rstrip(":") for line in again.stdout.splitlines() if "done, skipped" in line}
    trained = {line.split()[1].rstrip(":") for line in again.stdout.splitlines() if "test accuracy" in line}
    assert skipped == finished and trained == {r.run_id for r in plan(TINY, Options(protocol="smoke"))} - finished
    assert set(pd.read_csv(results / "results.csv")["status"]) == {"done"}


def test_run_folders_named_by_their_label_are_renamed_to_their_run_ids(easy, tmp_path):
    """Run ids were the label's slug before they named the run's content: a folder of that time
    holding the very run is renamed (its epochs resumed, not trained again); others are left alone."""
    results, options = tmp_path / "tiny", Options(protocol="smoke", dataset=easy)
    runs = plan(TINY, options)  # WRN-10-1 s1, s2, then WRN-10-1-dropout s1, s2
    labelled = [results / "runs" / f"{slug(run.configuration.name)}-s{run.seed}" for run in runs]
    for run, folder in zip(runs, labelled, strict=True):
        io.write_json(folder / "config.json", {"run": run.resolved.to_json()})
    io.write_json(labelled[2] / "config.json", {"run": {**runs[2].resolved.to_json(), "seed": 7}})  # another run
    (results / "runs" / runs[3].run_id).mkdir()  # the run id is taken: nothing is overwritten

    lines = []
    assert run_study(TINY, options, results_dir=results, dry_run=True, log=lines.append) == 0
    assert any(runs[0].run_id in line and "in wrn-10-1-s1, renamed on the next call" in line for line in lines)
    held = RunLock(labelled[1])  # an older version is training it
    assert held.acquire()
    try:
        rename_labelled_folders(results, runs, lines.append)
    finally:
        held.release()
    assert not labelled[0].exists() and (results / "runs" / runs[0].run_id / "config.json").exists()
    assert "wrn-10-1-s1: renamed to wrn-10-1-batch_size=32-s1 (run ids now name what a run is)" in lines
    assert labelled[1].exists() and any("wrn-10-1-s2: being trained by another process" in line for line in lines)
    assert labelled[2].exists() and not (results / "runs" / runs[2].run_id).exists()
    assert labelled[3].exists() and not any((results / "runs" / runs[3].run_id).iterdir())


# ----------------------------------------------------------------------------------------------
# Tables from known records


def _fake_study(tmp_path, errors: dict, baseline=None, old_keys=False, cumulative=False):
    """A results folder whose runs hold the given test errors, as a finished study would (with
    `old_keys`, in the words of study.json and metrics.json before 2026-12-02; without
    `cumulative`, no such key, as before cumulative studies were declared)."""
    name_key = "label" if old_keys else "configuration"
    runs = []
    for label, values in errors.items():
        for seed, error in enumerate(values):
            run_id = f"{label.lower()}-s{seed}"
            resolved = RunConfig(model="wrn-10-1", seed=seed).resolve()
            run = resolved.to_json()
            runs.append({"run_id": run_id, name_key: label, "seed": seed, "downsized": "", "run": run})
            folder = tmp_path / "runs" / run_id
            records.write_config(folder, records.RunRecord(run=run, initialization=resolved.initialization(), data={},
                                                           environment={}))
            io.write_json(folder / "metrics.json", {
                "test_error": error, "test_accuracy": 1 - error / 100, "test_loss": 0.5, "best_val_accuracy": 0.9 - error / 100,
                "trainable_params": 2_000_000, "total_params": 2_000_100, "best_epoch": 2, "final_val_accuracy": 0.5,
                "macs": 100_000_000, "epochs": 2, "seconds_per_epoch": 10.0,
                "images_per_second": 100.0, ("training_seconds" if old_keys else "total_epoch_seconds"): 20.0})
            records.save_history(folder, [records.HistoryRow(epoch, 1.0, 0.5, val_loss, val_accuracy, 0.1, 10.0, 9.0, 100.0)
                                          for epoch, val_loss, val_accuracy in ((1, 1.0, 0.5), (2, 0.8, 0.6))])
    io.write_json(tmp_path / "study.json", {
        "name": "fake", "question": "Which is better?", "varies": ["depth"], "heatmap": None,
        **({"metric": "test_error"} if old_keys else {}),
        "protocol": "paper", "protocol_description": "paper protocol", "published_protocol": "",
        "configurations": [{name_key: label, "model": "wrn-10-1", "published_error": 5.0 if label == "A" else None}
                           for label in errors],
        "runs": runs, **({"baseline": baseline} if baseline else {}), **({"cumulative": True} if cumulative else {})})


def test_tables_from_known_run_records(tmp_path):
    _fake_study(tmp_path, {"A": [5.0, 6.0, 4.0, 7.0, 5.5], "B": [8.0, 9.0]})
    tables.write_study_report(tmp_path)
    study, frame = tables.collect_results(tmp_path)
    table = tables.summarise(frame, study.configurations).set_index("configuration")
    a, b = table.loc["A"], table.loc["B"]
    assert a["runs"] == 5 and a["median_error"] == 5.5 and a["mean_error"] == pytest.approx(5.5)
    assert a["std_error"] == pytest.approx(np.std([5.0, 6.0, 4.0, 7.0, 5.5], ddof=1))
    assert (a["min_error"], a["max_error"]) == (4.0, 7.0)
    assert a["difference"] == pytest.approx(0.5)  # median 5.5 against the published 5.0
    assert a["accuracy_per_million_params"] == pytest.approx(100 * 0.945 / 2.0)
    assert b["median_error"] == 8.5 and np.isnan(b["difference"])
    markdown = (tmp_path / "summary.md").read_text()
    low, high = a["ci_low"], a["ci_high"]
    assert 4.0 <= low < 5.5 < high <= 7.0 and np.isnan(b["ci_low"])  # two seeds: no interval
    assert (f"| A | 5 | 2,000,000 | 5.50 | 5.50 ± 1.12 | {low:.2f} to {high:.2f} | 4.00 | 7.00 | 5.00 | +0.50 |"
            in markdown)
    assert "| B | 2 | 2,000,000 | 8.50 | 8.50 ± 0.71 | n/a: 2 seeds |" in markdown
    assert "**Best on validation.** A" in markdown and "SMOKE" not in markdown
    # A folder written before baselines were declared compares with its first configuration.
    assert ("- B against A: not resolved with 2 seeds (difference +3.00 points): run --seeds 0,1,2,3,4, or --seeds "
            "auto." in markdown)


def test_a_folder_in_the_old_words_gives_the_same_tables_and_pages(tmp_path):
    errors = {"A": [5.0, 6.0, 4.0], "B": [8.0, 9.0, 8.5]}
    written = {}
    for old_keys in (False, True):
        folder = tmp_path / str(old_keys)
        _fake_study(folder, errors, old_keys=old_keys)
        tables.write_study_report(folder)
        written[old_keys] = [(folder / name).read_text() for name in ("results.csv", "comparisons.csv", "summary.md")]
        run_page = (folder / "runs" / "a-s0" / "index.html").read_text()
        assert "total_epoch_seconds" in run_page and "training_seconds" not in run_page
    assert written[True] == written[False]


def test_comparisons_with_the_baseline_on_matched_seeds(tmp_path):
    # C beats the baseline B by 0.5-0.7 points on each of five seeds; A is within B's noise.
    _fake_study(tmp_path, {"A": [6.3, 5.9, 6.0, 6.0, 5.9], "B": [6.0, 6.3, 5.8, 6.1, 5.9],
                           "C": [5.4, 5.7, 5.3, 5.5, 5.2]}, baseline="B")
    tables.write_study_report(tmp_path)
    table = pd.read_csv(tmp_path / "comparisons.csv")
    assert list(table.columns) == ["configuration", "reference", "seeds", "mean_difference", "std_difference", "interval",
                                   "confidence", "ci_low", "ci_high", "p_value", "adjusted_p_value", "better_fraction",
                                   "verdict", "unresolved_reason", "minimum_detectable_difference", "seeds_needed"]
    rows = table.set_index("configuration")
    assert list(rows.index) == ["A", "C"] and set(rows["reference"]) == {"B"} and set(rows["seeds"]) == {5}
    assert set(rows["interval"]) == {"paired t at the adjusted level"}
    assert rows.loc["C", "verdict"] == "lower" and rows.loc["C", "ci_high"] < 0 and rows.loc["C", "better_fraction"] == 1
    assert rows.loc["C", "mean_difference"] == pytest.approx(-0.6)
    b, c = [6.0, 6.3, 5.8, 6.1, 5.9], [5.4, 5.7, 5.3, 5.5, 5.2]
    assert rows.loc["C", "p_value"] == pytest.approx(stats.ttest_rel(c, b).pvalue)
    # Holm over two comparisons: C, the smaller p-value, tested at 0.05 / 2.
    assert rows.loc["C", "adjusted_p_value"] == pytest.approx(2 * rows.loc["C", "p_value"])
    assert rows.loc["C", "confidence"] == pytest.approx(0.975)
    assert rows.loc["A", "verdict"] == "not resolved" and rows.loc["A", "ci_low"] < 0 < rows.loc["A", "ci_high"]
    assert rows.loc["A", "unresolved_reason"] == "no difference of that size"
    assert rows.loc["A", "minimum_detectable_difference"] > 0
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.index("**Verdicts** against B") < markdown.index("| configuration |")
    assert "- C has 0.60 points lower error than B (97.5% CI " in markdown
    assert f"better on 5 of 5 seeds, p = {rows.loc['C', 'p_value']:.2g}, adjusted p = " in markdown
    assert "- A against B: not resolved, difference +0.00 points" in markdown
    # A's published 5.0 lies below the interval of its mean error (about 5.9 to 6.1).
    assert "| 5.00 | +1.00 | ours above |" in markdown
    tex = (tmp_path / "results.tex").read_text()
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert r"B & 2.00M & 6.00 & 6.02 $\pm$ 0.19 & -- & -- & baseline \\" in tex
    assert r"C & 2.00M & 5.40 & 5.42 $\pm$ 0.19 & -- & -- & $-0.60^{*}$ \\" in tex
    assert r"A & 2.00M & 6.00 & 6.02 $\pm$ 0.16 & 5.00 & +1.00 & $+0.00$ \\" in tex
    assert (tmp_path / "error_over_seeds.png").read_bytes()[:8] == PNG


def test_a_cumulative_study_compares_each_with_the_baseline_and_the_one_before_in_one_family(tmp_path):
    # B adds nothing to A; C is 0.6 points below A on every seed, and D_1 (a name LaTeX escapes) keeps that.
    a = [6.0, 6.3, 5.8, 6.1, 5.9]
    _fake_study(tmp_path, {"A": a, "B": [6.3, 5.9, 6.0, 6.0, 5.9], "C": [e - 0.6 + 0.05 * (i % 2) for i, e in enumerate(a)],
                           "D_1": [e - 0.6 + 0.1 * (i % 3 - 1) for i, e in enumerate(a)]}, cumulative=True)
    tables.write_study_report(tmp_path)
    table = pd.read_csv(tmp_path / "comparisons.csv")
    assert list(zip(table["configuration"], table["reference"], strict=True)) == [
        ("B", "A"), ("C", "A"), ("C", "B"), ("D_1", "A"), ("D_1", "C")]
    rows = table.set_index(["configuration", "reference"])
    assert rows.loc[("C", "B"), "verdict"] == "lower" and rows.loc[("D_1", "A"), "verdict"] == "lower"
    assert rows.loc[("D_1", "C"), "verdict"] == "not resolved" and rows.loc[("B", "A"), "verdict"] == "not resolved"
    assert rows["confidence"].max() == pytest.approx(1 - 0.05 / 5)  # one family of five: the first at alpha / 5
    markdown = (tmp_path / "summary.md").read_text()
    assert ("**Verdicts**, each configuration against A and against the one before it (a cumulative study: each adds "
            "one change to the one before), on matched seeds (test error in points; paired t-test of the differences, "
            "all in one Holm family of the 5 comparisons with 3 seeds or more") in markdown
    assert "- D_1 against C: not resolved" in markdown and "- C has 0.58 points lower error than B (" in markdown
    tex = (tmp_path / "results.tex").read_text()
    assert r"\begin{tabular}{lrrrrrrr}" in tex and r"& vs.\ A & vs.\ previous \\" in tex
    assert r"A & 2.00M & 6.00 & 6.02 $\pm$ 0.19 & 5.00 & +1.00 & baseline & -- \\" in tex
    b, c = rows.loc[("B", "A"), "mean_difference"], rows.loc[("C", "B"), "mean_difference"]
    assert f"B & 2.00M & 6.00 & 6.02 $\\pm$ 0.16 & -- & -- & ${b:+.2f}$ & ${b:+.2f}$ \\\\" in tex  # its step is its pair with A
    assert f"& ${c:+.2f}^{{*}}$ \\\\" in tex and r"D\_1 & " in tex  # names escaped as in every table


def _hparams_events(folder):
    """(hparams plugin data, {scalar tag: value}) of the event files in one folder."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugin, scalars = [], {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    plugin.append(plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
                elif value.HasField("tensor"):
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
    return plugin, scalars


def test_every_finished_run_is_a_session_of_tensorboards_hparams_dashboard(tmp_path):
    _fake_study(tmp_path, {"A": [5.0, 6.0, 4.0], "B": [8.0, 9.0]})
    tables.write_study_report(tmp_path)
    tables.write_study_report(tmp_path)  # rebuilt, not appended to
    root = tmp_path / "hparams"
    (experiment,), _ = _hparams_events(root)
    assert [h.name for h in experiment.experiment.hparam_infos] == ["configuration", "seed", "depth"]
    assert [m.name.tag for m in experiment.experiment.metric_infos] == tables.HPARAMS_METRICS
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["a-s0", "a-s1", "a-s2", "b-s0", "b-s1"]
    (session,), scalars = _hparams_events(root / "b-s1")
    values = session.session_start_info.hparams
    assert values["configuration"].string_value == "B" and values["seed"].number_value == 1
    assert scalars["test_error"] == pytest.approx(9.0) and scalars["trainable_params"] == 2_000_000
    assert not list(tmp_path.glob(".hparams.*"))  # no temporary tree left behind


@pytest.mark.slow
def test_tensorboard_itself_serves_the_study_as_hparams_session_groups(tmp_path):
    # The real TensorBoard on a free local port, asked what its HParams dashboard shows.
    import socket
    import time
    import urllib.request

    _fake_study(tmp_path, {"A": [5.0, 6.0, 4.0], "B": [8.0, 9.0]})
    tables.write_study_report(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(tmp_path),
                               "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = json.dumps({"experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
                       "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"]}).encode()
    try:
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups",
                                                 data=body, headers={"Content-Type": "application/json"})
                groups = json.loads(urllib.request.urlopen(request, timeout=10).read())["sessionGroups"]
                if len(groups) == 5:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, "TensorBoard did not serve the sessions"
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(30)
    by_run = {group["name"]: group for group in groups}
    assert by_run["b-s1"]["hparams"] == {"configuration": "B", "seed": 1.0, "depth": 10.0}
    assert {m["name"]["tag"]: m["value"] for m in by_run["b-s1"]["metricValues"]}["test_error"] == 9.0


def test_a_study_folder_written_before_the_vocabulary_change_still_reports(tmp_path):
    _fake_study(tmp_path, {"A": [5.0], "B": [8.0]})
    study = json.loads((tmp_path / "study.json").read_text())
    study["preset"], study["protocol"] = study.pop("protocol"), study.pop("protocol_description")
    io.write_json(tmp_path / "study.json", study)
    frame = tables.write_study_report(tmp_path)
    assert set(frame["protocol"]) == {"paper"} and "paper protocol" in (tmp_path / "summary.md").read_text()


def test_heatmap_for_two_varying_settings(tmp_path):
    frame = pd.DataFrame({"depth": [16, 16, 28, 28], "widen_factor": [4, 8, 4, 8], "test_error": [5.0, 4.5, 4.6, 4.0],
                          "status": ["done"] * 4})
    assert plots.safe_plot(tmp_path / "heat.png", figures.plot_heatmap, frame, "depth", "widen_factor", "t")
    assert (tmp_path / "heat.png").read_bytes()[:8] == PNG


# ----------------------------------------------------------------------------------------------
# Diagrams


def test_diagram_fallback_without_pydot_or_graphviz(tmp_path, monkeypatch):
    import keras

    import ablation.report.diagrams as diagrams

    def no_pydot(*args, **kwargs):
        raise ImportError("You must install pydot (`pip install pydot`) for `plot_model` to work.")

    monkeypatch.setattr(keras.utils, "model_to_dot", no_pydot)
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    monkeypatch.setattr(diagrams, "_warned", False)
    model = build("wrn-10-1", dropout_rate=0.3)
    with pytest.warns(UserWarning, match="DOT text") as caught:
        written = write_diagrams(model, tmp_path / "a")
        write_diagrams(model, tmp_path / "b")
    assert len(caught) == 1  # warned once
    assert written == {"architecture": "dot", "blocks": "dot"}
    dot = (tmp_path / "a" / "architecture.dot").read_text()
    assert dot.startswith("digraph") and '"group1_block1_dropout2" -> "group1_block1_conv2"' in dot
    blocks = (tmp_path / "a" / "blocks.dot").read_text()
    assert "BN-ReLU-dropout 0.3-conv3x3 16" in blocks
    assert (tmp_path / "a" / "model_summary.txt").exists() and not (tmp_path / "a" / "architecture.png").exists()


@needs_graphviz
def test_diagrams_cut_short_by_a_kill_are_completed(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model_summary.txt").write_text("written before the process was killed\n")
    write_run_diagrams(RunConfig(model="wrn-10-1"), run_dir, title="WRN-10-1")
    assert (run_dir / "architecture.png").read_bytes()[:8] == PNG and (run_dir / "blocks.png").read_bytes()[:8] == PNG
    # The SVG names each layer's node by the layer (the run page finds layers by it).
    svg = (run_dir / "architecture.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and '<g id="group1_block1_conv1" class="node"' in svg
    assert json.loads((run_dir / "blocks.json").read_text())["title"] == "WRN-10-1"
    summary = (run_dir / "model_summary.txt").read_text()
    # Every column, none cut at 80: the parameter counts and the connections of the residual sum.
    header = next(line for line in summary.splitlines() if "Layer (type)" in line)
    assert "Param #" in header and "Connected to" in header
    add_row = next(line for line in summary.splitlines() if "group1_block1_add" in line)
    assert "group1_block1_conv2" in add_row or "group1_block1_shortcut" in add_row
    conv = next(line for line in summary.splitlines() if line.startswith("│ group1_block1_conv1 "))
    assert "2,304" in conv  # 3 x 3 x 16 x 16 weights, no bias: the params column


def test_block_diagram_reads_like_the_papers_table():
    stages = block_stages(build("wrn-28-2"))
    assert stages[0] == {"stage": "input", "size": "32x32", "channels": 3}
    group2 = next(row for row in stages if row["stage"] == "group2")
    assert (group2["size"], group2["channels"]) == ("16x16", 64)
    assert group2["blocks"] == [{"count": 1, "block": "[BN-ReLU-conv3x3 64/2-BN-ReLU-conv3x3 64] + shortcut conv1x1 64/2"},
                                {"count": 3, "block": "[BN-ReLU-conv3x3 64-BN-ReLU-conv3x3 64] + identity"}]
    text = block_dot(stages, title="WRN-28-2")
    assert "group2: 16x16, 64 channels" in text and "3 x [BN-ReLU-conv3x3 64-BN-ReLU-conv3x3 64] + identity" in text
    # A plain net's blocks add nothing: they read differently from the residual ones.
    plain, residual = (block_stages(build(name, input_shape=(64, 64, 3)))[3]["blocks"]
                       for name in ("imagenet-plain-18", "imagenet-resnet-18"))
    assert plain[-1]["block"] == "[conv3x3 128-BN-ReLU-conv3x3 128-BN], then ReLU"
    assert residual[-1]["block"] == "[conv3x3 128-BN-ReLU-conv3x3 128-BN] + identity, then ReLU"


# ----------------------------------------------------------------------------------------------
# Shards and command-line errors


def test_a_job_arrays_index_names_the_worker_and_only_shard_deals_a_share(easy, tmp_path, monkeypatch):
    # Workers claim runs: a SLURM array task or an Indexed Job pod is named by its index in the log
    # lines, and its variables are checked, but only --shard I/N deals it a fixed share.
    assert claiming.worker_name({}) == ""
    assert claiming.worker_name({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4",
                               "SLURM_ARRAY_TASK_MIN": "3"}) == " (SLURM array task 5, one of 4)"
    # An array with a step or a list (--array=0-6:2, 1,3,5) deals no share either: its tasks were refused
    # ("6 is not valid for 4 shards").
    for task, low, count in (("6", "0", "4"), ("5", "1", "3")):
        assert claiming.worker_name({"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_MIN": low,
                                     "SLURM_ARRAY_TASK_COUNT": count}) == f" (SLURM array task {task}, one of {count})"
    assert claiming.worker_name({"JOB_COMPLETION_INDEX": "1", "JOB_COMPLETIONS": "3"}) == " (Indexed Job pod 1 of 3)"
    with pytest.raises(ValueError, match="JOB_COMPLETIONS"):
        claiming.worker_name({"JOB_COMPLETION_INDEX": "1"})
    # An index outside the count is named, as is a non-number (not in int()'s words).
    with pytest.raises(ValueError, match="= 3 is not valid for 3 shards"):
        claiming.worker_name({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "3"})
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID='x' is not valid; expected an integer"):
        claiming.worker_name({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"})
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError, match=f"--shard '{bad}'"):
            parse_shard(bad)

    # As task 1 of an array of 2: every one of the 4 runs is this worker's to claim; with --shard 1/2,
    # 2 of them are the other shard's.
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for name in ("SLURM_ARRAY_TASK_MIN", "JOB_COMPLETION_INDEX", "JOB_COMPLETIONS"):
        monkeypatch.delenv(name, raising=False)
    options = Options(protocol="smoke", dataset=easy)
    for shard, others in ((None, 0), ((1, 2), 2)):
        lines = []
        assert run_study(TINY, options, results_dir=tmp_path, shard=shard, dry_run=True, log=lines.append) == 0
        listed = [line for line in lines if line.startswith(f"{PLAIN}-s") or line.startswith(f"{DROPOUT}-s")]
        assert len(listed) == 4 and sum(line.endswith("other shard") for line in listed) == others, lines


def test_the_old_spelling_of_the_protocol_flag_still_works_with_a_notice(easy, tmp_path, capsys):
    assert study_main(TINY, ["--preset", "smoke", "--dry-run", "--dataset", easy, "--results-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "warning: --preset is deprecated; use --protocol (it means the same).\n"
    assert "SMOKE protocol" in captured.out


@pytest.mark.parametrize("args,expected", [
    (["--shard", "2/2"], "--shard '2/2' is not valid"),
    (["--seeds", "a,b"], "--seeds 'a,b' is not valid"),
    (["--seeds", "42,42"], "--seeds '42,42' is not valid; expected distinct"),
    (["--only", "nope"], "--only 'nope' matches no run"),
    (["--dataset", "npz:/missing.npz"], "no such file"),
])
def test_study_command_line_errors_are_one_line(easy, tmp_path, capsys, args, expected):
    code = study_main(TINY, ["--protocol", "smoke", "--dataset", easy, "--results-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_momentary_probe_of_a_runs_lock_does_not_turn_its_trainer_away(tmp_path):
    # status() probes a lock by taking it for an instant; a trainer starting then must not skip its run.
    probe = RunLock(tmp_path)
    assert probe.acquire()
    threading.Timer(0.2, probe.release).start()
    with locks.locked(tmp_path):
        assert RunLock(tmp_path).holder().endswith(f" {os.getpid()}")  # the trainer's, after the probe's
    holder = RunLock(tmp_path)  # a trainer's lock, kept: refused after the probe's patience
    assert holder.acquire()
    try:
        with pytest.raises(RunLocked), locks.locked(tmp_path):
            pass
    finally:
        holder.release()


def test_ablation_report_waits_for_the_report_lock_so_the_newest_tables_are_written_last(tmp_path, capsys):
    # A report started while the last run trained could rename its older tables over the last worker's.
    # Under the folder's report lock each report reads the folders once the one before it has written.
    from tests.test_records import FIXTURE
    folder = tmp_path / "study"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("expected"))
    codes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's runs have no nets: a warning each
        with locks.report_lock(folder):  # a worker rebuilding the tables
            reporting = threading.Thread(target=lambda: codes.append(ablation_main(["report", str(folder)])))
            reporting.start()
            reporting.join(timeout=3)
            assert reporting.is_alive() and not (folder / "results.csv").exists()
        reporting.join(timeout=120)
    assert codes == [0] and (folder / "results.csv").exists()
    assert "rebuilt from" in capsys.readouterr().out


def test_ablation_report_of_a_folder_that_is_no_study_leaves_nothing_in_it(tmp_path, capsys):
    assert ablation_main(["report", str(tmp_path)]) == 2
    assert "holds no study.json" in capsys.readouterr().err and not list(tmp_path.iterdir())


def _fixture_copy(tmp_path) -> Path:
    from tests.test_records import FIXTURE
    folder = tmp_path / "study"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("expected"))
    return folder


def _quiet_report(folder) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seeding.write_report(folder)
    return [str(w.message) for w in caught]


def test_a_finished_run_the_study_json_does_not_declare_is_named_by_the_report(tmp_path):
    # Another study's study.json copied in: the folder's own finished run vanished from the tables unsaid.
    folder = _fixture_copy(tmp_path)
    study = records.read_study(folder)
    left_out = next(run.run_id for run in study.runs if status(folder / "runs" / run.run_id) == "done")
    records.write_study(folder, dataclasses.replace(study, runs=tuple(r for r in study.runs if r.run_id != left_out)))
    said = _quiet_report(folder)
    assert any(f"1 finished run(s) that study.json does not declare ({left_out})" in line for line in said), said
    assert f"left out:** `{left_out}`" in (folder / "summary.md").read_text()
    assert left_out not in set(pd.read_csv(folder / "results.csv")["run_id"])


def test_a_run_trained_otherwise_than_the_study_declares_is_left_out_and_named(tmp_path):
    # study.json declaring 2 epochs over runs trained for 1: the protocol line said 2, nothing else did.
    folder = _fixture_copy(tmp_path)
    study = records.read_study(folder)
    target = next(run for run in study.runs if status(folder / "runs" / run.run_id) == "done")
    run = {**target.run, "recipe_fields": {**target.run["recipe_fields"], "epochs": 2}}
    records.write_study(folder, dataclasses.replace(study, runs=tuple(
        dataclasses.replace(r, run=run) if r.run_id == target.run_id else r for r in study.runs)))
    said = _quiet_report(folder)
    assert any("holds another run than study.json declares (recipe_fields" in line and target.run_id in line
               for line in said), said
    frame = pd.read_csv(folder / "results.csv").set_index("run_id")
    assert frame.loc[target.run_id, "status"] == "differs" and pd.isna(frame.loc[target.run_id, "test_error"])
    assert f"left out of every table and plot:** `{target.run_id}`" in (folder / "summary.md").read_text()


def test_a_folder_keeps_the_declaration_that_counts_every_run_and_refuses_another_study(tmp_path, capsys):
    from ablation.study.planning import declare, describe_study
    options = Options(protocol="smoke", seeds=(1, 2))
    runs = plan(TINY, options)
    whole, fewer = describe_study(TINY, options, runs), describe_study(TINY, options, runs[:2])
    lines = []
    declared = lambda: [run.run_id for run in records.read_study(tmp_path).runs]
    declare(tmp_path, fewer, log=lines.append)
    declare(tmp_path, whole, log=lines.append)  # seeds or configurations added: the new declaration
    assert declared() == [run.run_id for run in whole.runs] and not lines
    declare(tmp_path, fewer, log=lines.append)  # a call with fewer: the folder's, which counts them all
    assert declared() == [run.run_id for run in whole.runs] and "it is kept, so the tables count them all" in lines[0]
    other = dataclasses.replace(fewer, runs=(*fewer.runs[:1], dataclasses.replace(fewer.runs[0], run_id="x-s9")))
    with pytest.raises(ConfigError, match="holds another study .'tiny'.: its runs include .*, this call's x-s9, "
                                          "which the other does not; .*its own --name or --results-dir"):
        declare(tmp_path, dataclasses.replace(other, name="other", runs=(other.runs[1],)), dry_run=True)
    epochs = {**whole.runs[0].run, "recipe_fields": {**whole.runs[0].run["recipe_fields"], "epochs": 9}}
    with pytest.raises(ConfigError, match=r"other settings than this call \(recipe_fields.epochs 2 there, 9 here\)"):
        declare(tmp_path, dataclasses.replace(whole, runs=(dataclasses.replace(whole.runs[0], run=epochs),)))
    assert declared() == [run.run_id for run in whole.runs]


@pytest.mark.slow
def test_a_second_sweep_given_the_first_ones_name_and_folder_is_refused(easy, tmp_path, capsys):
    # Two sweeps 0.5 s apart on one --results-dir and --name: both exited 0, the tables were the second's,
    # and the first's finished run was in none.
    common = ["--model", "wrn-10-1", "--seeds", "42", "--protocol", "smoke", "--epochs", "1", "--dataset", easy,
              "--name", "shared", "--results-dir", str(tmp_path)]
    assert ablation_main(["sweep", "--vary", "dropout_rate=0,0.3", *common]) == 0
    capsys.readouterr()
    assert ablation_main(["sweep", "--vary", "label_smoothing=0,0.1", *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds another study ('shared')" in err
    frame = pd.read_csv(tmp_path / "results.csv")
    assert set(frame["status"]) == {"done"} and len(frame) == 2
    assert not any("label_smoothing" in path.name for path in (tmp_path / "runs").iterdir())
