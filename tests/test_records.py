"""The records of a results folder as types: older formats read in today's words, and one module
that parses and writes them.

tests/fixtures/study-format-1 is a study folder written by commit 6db51b9 (before records carried a
format): `python -m ablation sweep --model wrn-10-1 --vary dropout_rate=0,0.3 --seeds 1,2,3 --protocol
smoke --epochs 1` on 300 random images, its records kept (its nets, plots and pages left out, so
each run's checksums name missing nets), one run's config.json without its "initialization" as a
version before 2026-12-02 wrote it (a stale run), and in expected/ the tables that commit's
`ablation report` wrote from exactly these records.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import shutil
import typing
import warnings
from pathlib import Path

import pandas as pd
import pytest

from ablation.cli import main
from ablation.core import io, layout, records, run_folder
from ablation.core.errors import ConfigError, DamagedFile
from ablation.core.records import Status
from ablation.run.config import ResolvedRun, RunConfig, run_identity
from ablation.run.training import train
from ablation.study import seeding
from tests.test_stale import TINY_RUN, partial_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "study-format-1"
TABLES = (layout.RESULTS_FILE, layout.COMPARISONS_FILE, layout.SUMMARY_FILE)
STALE_RUN = "wrn-10-1-dropout_rate=0.3-s3"


def _copy(tmp_path) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("expected"))
    return folder


def _report(folder: Path) -> list[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each run's nets are missing: a warning per run
        seeding.write_report(folder)
    return [(folder / name).read_bytes() for name in TABLES]


def test_a_folder_of_the_first_format_gives_the_tables_its_own_version_wrote(tmp_path):
    folder = _copy(tmp_path)
    assert _report(folder) == [(FIXTURE / "expected" / name).read_bytes() for name in TABLES]
    assert run_folder.status(records.run_dir_of(folder, STALE_RUN)) == Status.STALE
    statuses = {run.run_id: run_folder.status(records.run_dir_of(folder, run.run_id))
                for run in records.read_study(folder).runs}
    assert sorted(statuses.values()) == [Status.DONE] * 5 + [Status.STALE]


def test_its_records_read_as_todays_types(tmp_path):
    folder = _copy(tmp_path)
    assert "format" not in json.loads((folder / layout.STUDY_FILE).read_text())  # really the first format
    study = records.read_study(folder)
    assert study.baseline == "dropout_rate=0" and study.seeding == records.Seeding() and not study.cumulative
    run_dir = records.run_dir_of(folder, study.runs[0].run_id)
    config, metrics = records.read_config(run_dir), records.read_metrics(run_dir)
    assert config.initialization is not None and config.run["model"] == "wrn-10-1"
    assert config.run["family"] == "wide_resnet" and "builder" not in config.run  # format 2's word for it
    assert metrics.epochs == 1 and metrics.total_epoch_seconds > 0
    assert set(records.read_checksums(run_dir).files) == set(layout.CHECKED_FILES)
    assert records.read_config(records.run_dir_of(folder, STALE_RUN)).initialization is None


def test_rewritten_in_todays_format_it_gives_the_same_tables(tmp_path):
    """Every record read and written again (format 2) reads back to the same tables, stale run included."""
    folder = _copy(tmp_path)
    first = _report(folder)
    records.write_study(folder, records.read_study(folder))
    for run in records.read_study(folder).runs:
        run_dir = records.run_dir_of(folder, run.run_id)
        records.write_config(run_dir, records.read_config(run_dir))
        records.write_metrics(run_dir, records.read_metrics(run_dir))
        io.write_json(run_dir / layout.CHECKSUMS_FILE, {"format": records.Checksums.FORMAT, "files": {
            name: vars(entry) for name, entry in records.read_checksums(run_dir).files.items()}})
    for name in (layout.STUDY_FILE, f"{layout.RUNS_DIR}/{STALE_RUN}/{layout.CONFIG_FILE}"):
        assert json.loads((folder / name).read_text())["format"] == 3
    assert _report(folder) == first
    assert run_folder.status(records.run_dir_of(folder, STALE_RUN)) == Status.STALE


def test_a_record_of_a_newer_format_is_a_damaged_file_that_says_so(tmp_path):
    io.write_json(tmp_path / layout.METRICS_FILE, {"format": 99, "test_error": 5.0})
    with pytest.raises(DamagedFile, match="format 99, newer than this version's 2"):
        records.read_metrics(tmp_path)


def test_a_checksums_record_whose_size_is_text_is_damaged_not_a_crash(tmp_path):
    io.write_json(tmp_path / layout.CHECKSUMS_FILE, {
        layout.FINAL_MODEL_FILE: {"bytes": "12", "sha256": "0" * 64, "mtime_ns": 1}})
    problems = run_folder.damaged_files(tmp_path)
    assert list(problems) == [layout.CHECKSUMS_FILE] and "bytes is '12', expected an integer" in problems[layout.CHECKSUMS_FILE]


# ----------------------------------------------------------------------------------------------
# Hostile edits: a record the suite wrote that no longer reads as its type is a DamagedFile naming
# it (a study fails that run alone), never a traceback, nor bad input that stops a whole study.


def _valid_records(folder: Path) -> dict:
    """A record of each kind in `folder`, as this version writes it: file name -> how to read it."""
    run = RunConfig(model="wrn-10-1").resolve()
    records.write_config(folder, records.RunRecord(run=run.to_json(), initialization=run.initialization(),
                                                   data={"steps_per_epoch": 3}, environment={"python": "3.11"}))
    records.write_metrics(folder, records.Metrics(
        test_accuracy=0.5, test_loss=1.2, test_error=50.0, best_val_accuracy=0.5, best_epoch=1, final_val_accuracy=0.5,
        epochs=1, trainable_params=10, total_params=12, macs=100, total_epoch_seconds=2.0, seconds_per_epoch=2.0,
        images_per_second=64.0))
    io.write_json(folder / layout.FAILURE_FILE, {"format": 2, "error": "ValueError: x", "time": "", "traceback": ""})
    io.write_json(folder / layout.CHECKSUMS_FILE, {"format": 2, "files": {
        layout.FINAL_MODEL_FILE: {"bytes": 12, "sha256": "0" * 64, "mtime_ns": 1}}})
    records.write_study(folder, records.read_study(FIXTURE))
    return {layout.CONFIG_FILE: records.read_config, layout.METRICS_FILE: records.read_metrics,
            layout.FAILURE_FILE: records.read_failure, layout.CHECKSUMS_FILE: records.read_checksums,
            layout.STUDY_FILE: records.read_study}


def _set(*path, value=None, delete=False):
    """An edit of a record's JSON: the value at `path` set (or deleted)."""
    def edit(data):
        inner = data
        for key in path[:-1]:
            inner = inner[key]
        if delete:
            del inner[path[-1]]
        else:
            inner[path[-1]] = value
        return data
    return edit


HUGE = 10**400  # JSON has no limit; int64 has
NAN = float("nan")
FINAL = layout.FINAL_MODEL_FILE
HOSTILE_EDITS = [
    (layout.CONFIG_FILE, "an unknown key", _set("surprise", value=1)),
    (layout.CONFIG_FILE, "an unknown key in its run", _set("run", "surprise", value=1)),
    (layout.CONFIG_FILE, "a seed as text", _set("run", "seed", value="42")),
    (layout.CONFIG_FILE, "a seed as a float", _set("run", "seed", value=42.0)),
    (layout.CONFIG_FILE, "a seed of null", _set("run", "seed", value=None)),
    (layout.CONFIG_FILE, "a huge seed", _set("run", "seed", value=HUGE)),
    (layout.CONFIG_FILE, "a NaN seed", _set("run", "seed", value=NAN)),
    (layout.CONFIG_FILE, "no seed", _set("run", "seed", delete=True)),
    (layout.CONFIG_FILE, "a run that is a list", _set("run", value=[])),
    (layout.CONFIG_FILE, "a run of null", _set("run", value=None)),
    (layout.CONFIG_FILE, "builder arguments as a list", _set("run", "model_kwargs", value=[])),
    (layout.CONFIG_FILE, "recipe fields of null", _set("run", "recipe_fields", value=None)),
    (layout.CONFIG_FILE, "an input shape as text", _set("run", "input_shape", value="32x32")),
    (layout.CONFIG_FILE, "augment as a number", _set("run", "augment", value=1)),
    (layout.CONFIG_FILE, "an initialization as text", _set("initialization", value="per layer")),
    (layout.CONFIG_FILE, "data as a list", _set("data", value=[])),
    (layout.CONFIG_FILE, "an environment of null", _set("environment", value=None)),
    (layout.CONFIG_FILE, "a format as text", _set("format", value="3")),
    (layout.CONFIG_FILE, "a format 0", _set("format", value=0)),
    (layout.CONFIG_FILE, "a NaN format", _set("format", value=NAN)),
    (layout.CONFIG_FILE, "null", lambda data: None),
    (layout.METRICS_FILE, "a test accuracy as text", _set("test_accuracy", value="0.5")),
    (layout.METRICS_FILE, "a test accuracy of null", _set("test_accuracy", value=None)),
    (layout.METRICS_FILE, "a huge integer test accuracy", _set("test_accuracy", value=HUGE)),
    (layout.METRICS_FILE, "epochs as text", _set("epochs", value="1")),
    (layout.METRICS_FILE, "epochs 1.5", _set("epochs", value=1.5)),
    (layout.METRICS_FILE, "huge epochs", _set("epochs", value=HUGE)),
    (layout.METRICS_FILE, "a best epoch as a list", _set("best_epoch", value=[1])),
    (layout.METRICS_FILE, "params as an object", _set("trainable_params", value={})),
    (layout.METRICS_FILE, "huge MACs", _set("macs", value=HUGE)),
    (layout.METRICS_FILE, "a format of true", _set("format", value=True)),
    (layout.METRICS_FILE, "a list", lambda data: [data]),
    (layout.METRICS_FILE, "null", lambda data: None),
    (layout.FAILURE_FILE, "an error as a number", _set("error", value=5)),
    (layout.FAILURE_FILE, "an error of null", _set("error", value=None)),
    (layout.FAILURE_FILE, "a traceback as a list", _set("traceback", value=[])),
    (layout.FAILURE_FILE, "a list", lambda data: []),
    (layout.CHECKSUMS_FILE, "a size as text", _set("files", FINAL, "bytes", value="12")),
    (layout.CHECKSUMS_FILE, "a size of true", _set("files", FINAL, "bytes", value=True)),
    (layout.CHECKSUMS_FILE, "a huge size", _set("files", FINAL, "bytes", value=HUGE)),
    (layout.CHECKSUMS_FILE, "an infinite size", _set("files", FINAL, "bytes", value=float("inf"))),
    (layout.CHECKSUMS_FILE, "a time of null", _set("files", FINAL, "mtime_ns", value=None)),
    (layout.CHECKSUMS_FILE, "a SHA-256 as a number", _set("files", FINAL, "sha256", value=5)),
    (layout.CHECKSUMS_FILE, "files as a list", _set("files", value=[])),
    (layout.CHECKSUMS_FILE, "an entry as a list", _set("files", FINAL, value=[])),
    (layout.CHECKSUMS_FILE, "a file outside the run folder", _set("files", "../../elsewhere", value={
        "bytes": 1, "sha256": "0" * 64, "mtime_ns": 1})),
    (layout.STUDY_FILE, "runs as text", _set("runs", value="x")),
    (layout.STUDY_FILE, "a run of null", _set("runs", 0, value=None)),
    (layout.STUDY_FILE, "a run's seed as text", _set("runs", 0, "seed", value="1")),
    (layout.STUDY_FILE, "a run's huge seed", _set("runs", 0, "seed", value=HUGE)),
    (layout.STUDY_FILE, "a run's resolved run of null", _set("runs", 0, "run", value=None)),
    (layout.STUDY_FILE, "a resolved run's seed as text", _set("runs", 0, "run", "seed", value="1")),
    (layout.STUDY_FILE, "a resolved run's unknown key", _set("runs", 0, "run", "surprise", value=1)),
    (layout.STUDY_FILE, "builder arguments as a list", _set("runs", 0, "run", "model_kwargs", value=[])),
    (layout.STUDY_FILE, "configurations as an object", _set("configurations", value={})),
    (layout.STUDY_FILE, "a published error as text", _set("configurations", 0, "published_error", value="10")),
    (layout.STUDY_FILE, "varies as text", _set("varies", value="dropout_rate")),
    (layout.STUDY_FILE, "varies of numbers", _set("varies", value=[5])),
    (layout.STUDY_FILE, "a heatmap as a number", _set("heatmap", value=5)),
    (layout.STUDY_FILE, "a heatmap of one setting", _set("heatmap", value=["depth"])),
    (layout.STUDY_FILE, "a baseline as a number", _set("baseline", value=5)),
    (layout.STUDY_FILE, "cumulative as text", _set("cumulative", value="yes")),
    (layout.STUDY_FILE, "seeding of null", _set("seeding", value=None)),
    (layout.STUDY_FILE, "auto seeding as text", _set("seeding", "auto", value="yes")),
    (layout.STUDY_FILE, "a seed sequence as text", _set("seeding", "sequence", value="12")),
    (layout.STUDY_FILE, "a name as a number", _set("name", value=5)),
    (layout.STUDY_FILE, "a list", lambda data: []),
]


@pytest.mark.parametrize(("name", "edit"), [pytest.param(name, edit, id=f"{name}: {what}")
                                            for name, what, edit in HOSTILE_EDITS])
def test_a_record_edited_into_another_type_is_a_damaged_file_naming_it(tmp_path, name, edit):
    read = _valid_records(tmp_path)[name]
    read(tmp_path)  # as written, it reads
    path = tmp_path / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(DamagedFile) as raised:
        read(tmp_path)
    assert raised.value.path == path and f"{path} is damaged (" in str(raised.value)


@pytest.mark.parametrize(("what", "edit"), [
    ("an unknown recipe field", _set("run", "recipe_fields", "surprise", value=1)),
    ("a recipe field as text", _set("run", "recipe_fields", "epochs", value="200")),
    ("a builder argument as text", _set("run", "model_kwargs", "depth", value="10")),
])
def test_a_run_edited_inside_its_recipe_or_arguments_is_damaged_not_another_run(tmp_path, what, edit):
    """Which keys a recipe has, and the types of its fields, are today's run's: config.json's run is
    compared with it where a folder is resumed or skipped as done."""
    _valid_records(tmp_path)
    run = RunConfig(model="wrn-10-1").resolve().to_json()
    records.check_same_run(tmp_path, run, run_identity)  # as written: the same run
    path = tmp_path / layout.CONFIG_FILE
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(DamagedFile, match="config.json is damaged"):
        records.check_same_run(tmp_path, run, run_identity)


def test_another_run_well_formed_is_still_bad_input(tmp_path):
    """The wrong --out, not damage: the command stops, saying which run the folder holds."""
    _valid_records(tmp_path)
    with pytest.raises(ConfigError, match="holds a different run .seed 42 -> 7"):
        records.check_same_run(tmp_path, RunConfig(model="wrn-10-1", seed=7).resolve().to_json(), run_identity)


def test_the_resolved_runs_json_type_has_the_resolved_runs_fields(tmp_path):
    """config.json's run is ResolvedRun.to_json(): a field added there is a new format of the records
    that hold it (records.ResolvedRunJSON, and an upgrade of the older ones)."""
    assert list(typing.get_type_hints(records.ResolvedRunJSON)) == [field.name for field in
                                                                     dataclasses.fields(ResolvedRun)]
    for config in (RunConfig(model="wrn-28-10-dropout", recipe_overrides={"epochs": 3}, max_steps_per_epoch=2),
                   RunConfig(model="imagenet-resnet-50", model_overrides={"input_shape": (64, 64, 3)})):
        run = config.resolve().to_json()
        records.write_config(tmp_path, records.RunRecord(run=run, initialization=None, data={}, environment={}))
        assert records.read_config(tmp_path).run == io.json_roundtrip(run)


@pytest.mark.parametrize("name", [layout.CONFIG_FILE, layout.METRICS_FILE, layout.CHECKSUMS_FILE, layout.STUDY_FILE])
def test_a_report_of_a_study_with_a_record_of_another_type_names_it_and_never_crashes(tmp_path, capsys, name):
    """`ablation report`: a run's damaged record fails that run alone (the tables go on without it);
    a damaged study.json, what the tables are rebuilt from, is one line and exit status 1."""
    folder = _copy(tmp_path)
    run_dir = records.run_dir_of(folder, records.read_study(folder).runs[0].run_id)
    path = folder / name if name == layout.STUDY_FILE else run_dir / name
    edits = {layout.CONFIG_FILE: _set("run", "seed", value="1"), layout.METRICS_FILE: _set("test_error", value="5"),
             layout.CHECKSUMS_FILE: _set(FINAL, "bytes", value="12"), layout.STUDY_FILE: _set("varies", value="x")}
    path.write_text(json.dumps(edits[name](json.loads(path.read_text()))))  # the fixture's records: format 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["report", str(folder)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if name == layout.STUDY_FILE:
        assert status == 1 and err.count("\n") == 1 and f"{path} is damaged" in err
        return
    assert status == 0
    frame = pd.read_csv(folder / layout.RESULTS_FILE)
    row = frame[frame["run_id"] == run_dir.name].iloc[0]
    if name == layout.CHECKSUMS_FILE:  # the nets' record: the results stand, the damage is named
        assert row["status"] == "done" and f"{path} is damaged" in row["damaged"]
    else:  # which run it is, or its results, unknown: not counted
        assert row["status"] == "failed"
    assert (frame["status"] == "done").sum() >= 4


# ----------------------------------------------------------------------------------------------
# history.csv: a cut row is damage, even one cut just after a digit


HISTORY = [records.HistoryRow(epoch=1, loss=2.3015, accuracy=0.125, val_loss=2.2987, val_accuracy=0.1, learning_rate=0.1,
                              epoch_seconds=3.25, train_seconds=2.5, images_per_second=38.4),
           records.HistoryRow(epoch=2, loss=2.2220988273620605, accuracy=0.1875, val_loss=2.0297231674194336,
                              val_accuracy=0.1328125, learning_rate=0.1, epoch_seconds=1.5, train_seconds=1.25,
                              images_per_second=102.4)]


def _history(folder: Path, rows=HISTORY) -> str:
    records.save_history(folder, rows)
    return (folder / layout.HISTORY_FILE).read_text()


def test_a_history_cut_anywhere_in_its_last_row_is_damaged(tmp_path):
    """The probe's cut: "2,2.2220988273620605,0.1875,2.0" parses as numbers up to val_loss 2.0 (of
    2.0297...); every cut of the row, after a digit or not, is damage, not a shorter row."""
    text = _history(tmp_path)
    last = text.rindex("\n", 0, len(text) - 1) + 1
    for cut in range(last + 1, len(text)):  # within the last row, its line end included
        (tmp_path / layout.HISTORY_FILE).write_text(text[:cut])
        for through in (0, 1, 2):  # read by a report, by a resume from epoch 1's state or epoch 2's
            with pytest.raises(DamagedFile, match="history.csv is damaged .its last line is cut short"):
                records.read_history(tmp_path, through=through)
    (tmp_path / layout.HISTORY_FILE).write_text(text[:last])  # a whole row gone: a shorter history
    assert list(records.read_history(tmp_path)["epoch"]) == [1]
    (tmp_path / layout.HISTORY_FILE).write_text(text[:text.index(",2.0297") + len(",2.0")])
    with pytest.raises(DamagedFile, match="last line is cut short, with no line end: '2,2.2220988273620605,0.1875,2.0'"):
        records.read_history(tmp_path, through=2)


@pytest.mark.parametrize(("row", "problem"), [
    ("2,2.2220988273620605,0.1875,2.0,,,,,", "row 2 has no learning_rate"),  # the probe's, as a resume rewrote it
    ("2,2.2220988273620605,0.1875,2.0", "row 2 has 4 cells, its header 9"),
    ("2,2.22,0.1875,2.03,0.13,0.1,1.5,1.25,1O2.4", "row 2's images_per_second is '1O2.4', not a number"),
    ("2,,0.1875,2.03,0.13,0.1,1.5,1.25,102.4", "row 2 has no loss"),
    ("3,2.22,0.1875,2.03,0.13,0.1,1.5,1.25,102.4", "row 2 is epoch 3"),
])
def test_a_history_row_with_a_missing_or_unreadable_cell_is_damaged(tmp_path, row, problem):
    text = _history(tmp_path)
    (tmp_path / layout.HISTORY_FILE).write_text(text[:text.index("\n2,") + 1] + row + "\n")
    with pytest.raises(DamagedFile, match=re.escape(problem)):
        records.read_history(tmp_path)


def test_a_run_without_validation_leaves_its_validation_cells_empty(tmp_path):
    rows = [dataclasses.replace(row, val_loss=None, val_accuracy=None) for row in HISTORY]
    _history(tmp_path, rows)
    history = records.read_history(tmp_path, through=2)
    assert history["val_accuracy"].isna().all() and list(history["loss"]) == [row.loss for row in HISTORY]


def test_a_resume_keeps_only_rows_that_its_copy_holds_the_same(tmp_path):
    """A row rewritten whole but with other numbers (a cut last cell refilled, an edit) reads as
    history.csv alone; a resume compares the rows it keeps with training_history.json."""
    text = _history(tmp_path)
    (tmp_path / layout.HISTORY_FILE).write_text(text.replace("102.4\n", "10.0\n"))
    assert records.read_history(tmp_path)["images_per_second"].iloc[-1] == 10.0
    with pytest.raises(DamagedFile, match="epoch 2's images_per_second is 10.0 in history.csv, 102.4 in "
                                          "training_history.json"):
        records.read_history(tmp_path, through=2)
    assert len(records.read_history(tmp_path, through=1)) == 2  # from epoch 1's state: epoch 2 is trained again


def test_a_history_one_epoch_ahead_of_its_copy_and_its_state_resumes(tmp_path):
    """A kill between history.csv and its copy: the copy lacks the last row, whose state was never
    written either, so the resume does not need it."""
    _history(tmp_path, HISTORY[:1])
    copy = (tmp_path / layout.HISTORY_JSON_FILE).read_text()
    _history(tmp_path)
    (tmp_path / layout.HISTORY_JSON_FILE).write_text(copy)
    assert list(records.read_history(tmp_path, through=1)["epoch"]) == [1, 2]  # the resume keeps row 1
    with pytest.raises(DamagedFile, match="training_history.json holds 1 epochs"):
        records.read_history(tmp_path, through=2)


def test_a_history_shorter_than_the_runs_state_is_damaged(tmp_path):
    _history(tmp_path, HISTORY[:1])
    with pytest.raises(DamagedFile, match="its last epoch is 1, the run's state's 2"):
        records.read_history(tmp_path, through=2)
    (tmp_path / layout.HISTORY_FILE).unlink()
    assert records.read_history(tmp_path).empty  # nothing trained yet
    with pytest.raises(DamagedFile, match="history.csv is damaged .missing, where the run's state holds 2 epochs"):
        records.read_history(tmp_path, through=2)


@pytest.mark.slow
def test_a_partial_run_whose_history_was_cut_restarts_saying_so(easy, tmp_path):
    """The probe: a partial run whose history.csv was cut just after a digit resumed and kept the cut
    row. Its state and its history no longer agree: the run restarts from its first epoch, in one line."""
    out = partial_run(easy, tmp_path / "run")
    path = out / layout.HISTORY_FILE
    text = path.read_text()
    row = text[text.index("\n1,") + 1:]
    path.write_text(text[:text.index("\n1,") + 1] + row[:row.index(".") + 2])  # "1,2.3" of "1,2.30..."
    lines = []
    train(RunConfig(dataset=easy, **TINY_RUN), out, log=lines.append)
    said = [line for line in lines if "history.csv is damaged" in line]
    assert len(said) == 1 and said[0].endswith("restarting the run from its first epoch"), lines
    assert not any("resuming" in line for line in lines)
    history = records.read_history(out, through=2)
    assert list(history["epoch"]) == [1, 2] and history.drop(columns=["val_loss", "val_accuracy"]).notna().all().all()


def _calls(path: Path) -> list[str]:
    """The dotted names of the functions the module calls."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func, parts = node.func, []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                names.append(".".join([func.id, *reversed(parts)]))
    return names


JSON_CALLS = {"io.read_json", "io.write_json", "json.load", "json.loads", "pd.read_csv"}


def test_only_the_records_module_parses_or_writes_a_record():
    found = {}
    for path in sorted((ROOT / "ablation").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name in ("ablation/core/records.py", "ablation/core/io.py"):
            continue
        calls = sorted(set(_calls(path)) & JSON_CALLS)
        if calls:
            found[name] = calls
    # Not records: the machine profile's cache (outside any results folder), test_results_summary.json
    # (an export the report writes for people), trials.csv (the search's table, shown on its page).
    assert found == {"ablation/study/cost.py": ["io.read_json", "io.write_json"],
                     "ablation/report/tables.py": ["io.write_json"],
                     "ablation/report/pages.py": ["pd.read_csv"]}


def test_no_module_but_the_records_module_spells_an_old_formats_word():
    for path in sorted((ROOT / "ablation").rglob("*.py")):
        if path.name == "records.py":
            continue
        strings = [node.value for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)]
        assert not {"label", "training_seconds", "preset", "builder"} & set(strings), path

