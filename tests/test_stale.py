"""Runs trained from tied initial weights (before 2026-12-02 every conv of one shape began from the
same kernel) are another experiment than today's net: never resumed, never counted, trained anew
only when asked, and never deleted.

A folder of that time is a folder of today without config.json's "initialization": that is the one
thing the earlier versions did not write, so the tests make one by removing it.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from ablation.cli import main, study_main
from ablation.core import io, layout, records, run_folder
from ablation.core.errors import StaleRun
from ablation.run.config import RunConfig
from ablation.run.training import train
from ablation.study import Options
from ablation.study.planning import plan
from ablation.study.runner import run_study
from ablation.study.tuning import run_search
from builders import INITIALIZATIONS
from tests.helpers import quiet
from tests.test_tuning import tiny_search
from tests.tiny_study import STUDY as TINY

TINY_RUN = dict(model="wrn-10-1", recipe_overrides={"epochs": 2, "batch_size": 32}, max_steps_per_epoch=2)


def as_before_the_fix(run_dir, initialization=None):
    """The run folder as a version before 2026-12-02 wrote it (or, given one, with another initialization)."""
    config = json.loads((run_dir / layout.CONFIG_FILE).read_text())
    if initialization is None:  # that version wrote neither an initialization nor a format
        del config["initialization"], config["format"]
    else:
        config["initialization"] = initialization
    io.write_json(run_dir / layout.CONFIG_FILE, config)


def partial_run(dataset, out):
    """A run interrupted (Ctrl-C) right after its first epoch, whose line comes after its state is saved."""
    def interrupt_after_epoch_1(line):
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig(dataset=dataset, **TINY_RUN), out, log=interrupt_after_epoch_1)
    assert run_folder.latest_state(out)[0] == 1
    return out


@pytest.mark.slow
def test_a_run_records_how_its_net_started_and_a_resumed_attempt_keeps_it(easy, tmp_path):
    out = partial_run(easy, tmp_path / "run")
    recorded = json.loads((out / layout.CONFIG_FILE).read_text())["initialization"]
    assert recorded == INITIALIZATIONS["wide_resnet"].to_json() and recorded["draws"] == "per layer"
    earlier = {**recorded, "reference": "what an earlier attempt recorded"}
    as_before_the_fix(out, earlier)
    lines = []
    train(RunConfig(dataset=easy, **TINY_RUN), out, log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines), lines
    assert json.loads((out / layout.CONFIG_FILE).read_text())["initialization"] == earlier


@pytest.mark.slow
def test_a_partial_run_from_tied_weights_is_never_resumed_and_is_trained_anew_when_asked(easy, tmp_path, capsys):
    out = as_before = partial_run(easy, tmp_path / "run")
    as_before_the_fix(as_before)
    assert run_folder.status(out) == "stale"
    with pytest.raises(StaleRun, match="tied initial weights"):
        train(RunConfig(dataset=easy, **TINY_RUN), out, log=quiet)
    assert run_folder.latest_state(out)[0] == 1  # left as it was

    command = ["train", "--model", "wrn-10-1", "--dataset", easy, "--epochs", "2", "--batch-size", "32",
               "--max-steps-per-epoch", "2", "--out", str(out)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--retrain-stale" in err and "run.stale" in err and "Traceback" not in err

    assert main([*command, "--retrain-stale"]) == 0
    assert "kept as" in capsys.readouterr().out
    kept = tmp_path / "run.stale"
    assert run_folder.latest_state(kept)[0] == 1 and "initialization" not in json.loads(
        (kept / layout.CONFIG_FILE).read_text())
    assert run_folder.status(out) == "done" and list(records.read_history(out)["epoch"]) == [1, 2]
    assert json.loads((out / layout.CONFIG_FILE).read_text())["initialization"]["draws"] == "per layer"


def test_a_folder_with_nothing_trained_is_not_stale(tmp_path):
    run = RunConfig(model="wrn-10-1").resolve().to_json()
    io.write_json(tmp_path / layout.CONFIG_FILE, {"run": run})  # an attempt killed before its first epoch
    assert not run_folder.stale(tmp_path) and run_folder.status(tmp_path) == "pending"


def test_moving_aside_never_overwrites_a_kept_folder(tmp_path):
    for n in range(3):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "n").write_text(str(n))
        records.move_aside(tmp_path / "run")
    kept = {path.name: (path / "n").read_text() for path in tmp_path.iterdir()}
    assert kept == {"run.stale": "0", "run.stale-2": "1", "run.stale-3": "2"}


@pytest.fixture(scope="module")
def tiny_study_results(easy, tmp_path_factory):
    results = tmp_path_factory.mktemp("tiny")
    assert run_study(TINY, Options(protocol="smoke", dataset=easy), results_dir=results, log=quiet) == 0
    return results


@pytest.mark.slow
def test_a_study_leaves_stale_runs_out_of_its_tables_and_trains_them_anew_when_asked(
        easy, tiny_study_results, tmp_path):
    results, options = tmp_path / "tiny", Options(protocol="smoke", dataset=easy)
    shutil.copytree(tiny_study_results, results)
    runs = plan(TINY, options)
    stale = [runs[0].run_id, runs[2].run_id]  # one seed of each configuration
    for run_id in stale:
        as_before_the_fix(records.run_dir_of(results, run_id))

    lines = []
    assert run_study(TINY, options, results_dir=results, dry_run=True, log=lines.append) == 0
    assert sum("2 of 4 runs are stale" in line and "--retrain-stale" in line for line in lines) == 1
    assert {line.split()[0] for line in lines if " stale " in f" {line} " and "tied initial weights" in line} >= set(stale)

    lines = []
    assert run_study(TINY, options, results_dir=results, log=lines.append) == 0
    assert sum("2 of 4 runs are stale" in line for line in lines) == 1
    assert [line for line in lines if "stale (started from tied initial weights), skipped" in line] == [
        f"[1/4] {stale[0]}: stale (started from tied initial weights), skipped",
        f"[3/4] {stale[1]}: stale (started from tied initial weights), skipped"]
    frame = pd.read_csv(results / "results.csv")
    assert dict(zip(frame["run_id"], frame["status"], strict=True)) == {
        run.run_id: "stale" if run.run_id in stale else "done" for run in runs}
    summary = (results / "summary.md").read_text()
    assert "Stale runs are left out of every table and plot" in summary and "2 done, 2 stale" in summary
    assert "| WRN-10-1 | 1 |" in summary and "| WRN-10-1-dropout | 1 |" in summary  # one seed counted each
    assert frame.loc[frame["status"] == "stale", "test_error"].isna().all()  # no numbers of another experiment
    assert (results / "index.html").read_text().count("<td>stale</td>") == 2  # the runs table marks them
    assert "Stale: this run started from tied initial weights" in (
        records.run_dir_of(results, stale[0]) / "index.html").read_text()

    lines = []
    assert run_study(TINY, options, results_dir=results, retrain_stale=True, log=lines.append) == 0
    assert sum("2 run(s) started from tied initial weights" in line for line in lines) == 1
    for run_id in stale:  # kept aside whole, and trained anew
        kept = records.run_dir_of(results, run_id).with_name(run_id + layout.STALE_SUFFIX)
        assert (kept / layout.METRICS_FILE).exists() and run_folder.status(kept) == "stale"
        assert run_folder.status(records.run_dir_of(results, run_id)) == "done"
    assert set(pd.read_csv(results / "results.csv")["status"]) == {"done"}
    assert "Stale runs" not in (results / "summary.md").read_text()


def _unknown_key(config):
    config["run"]["surprise"] = 1


def _seed_as_text(config):
    config["run"]["seed"] = str(config["run"]["seed"])


@pytest.mark.slow
@pytest.mark.parametrize("edit", [_unknown_key, _seed_as_text])
def test_a_finished_run_whose_config_no_longer_reads_fails_alone_and_the_study_goes_on(
        easy, tiny_study_results, tmp_path, capsys, edit):
    """Like a truncated config.json, one edited into valid JSON of another type (an unknown key, a
    seed as text) no longer says which run the folder holds: damage of that run (exit status 1 at the
    end, the run named), not bad input that stops the study (exit status 2) before the others."""
    results, options = tmp_path / "tiny", Options(protocol="smoke", dataset=easy)
    shutil.copytree(tiny_study_results, results)
    runs = plan(TINY, options)
    damaged = runs[1].run_id
    path = records.run_dir_of(results, damaged) / layout.CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    io.write_json(path, config)

    assert study_main(TINY, ["--protocol", "smoke", "--dataset", easy, "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if "FAILED" in line]
    assert len(failed) == 1 and f"{damaged}: FAILED ({path} is damaged" in failed[0], out
    assert sum(line.endswith(": done, skipped") for line in out) == 3
    assert out[-1].endswith(f"1 failed: {damaged}")
    frame = pd.read_csv(results / "results.csv")
    assert dict(zip(frame["run_id"], frame["status"], strict=True)) == {
        run.run_id: "failed" if run.run_id == damaged else "done" for run in runs}
    assert "3 done, 1 failed" in (results / "summary.md").read_text()


@pytest.mark.slow
def test_a_search_started_from_tied_weights_is_refused_and_searched_anew_when_asked(easy, tmp_path):
    search, folder = tiny_search(easy, max_trials=1, executions_per_trial=1), tmp_path / "search"
    old = {"tuner": "random", "run": search.run.resolve().to_json()}  # what a version before the fix wrote, in short
    io.write_json(folder / "search.json", old)
    with pytest.raises(StaleRun, match="holds a search started from tied initial weights.*--results-dir"):
        run_search(search, folder, log=quiet)
    assert json.loads((folder / "search.json").read_text()) == io.json_roundtrip(old)
    assert run_search(search, folder, log=quiet, retrain_stale=True) == 0
    assert json.loads((tmp_path / "search.stale" / "search.json").read_text()) == io.json_roundtrip(old)
    assert json.loads((folder / "search.json").read_text())["initialization"]["draws"] == "per layer"
