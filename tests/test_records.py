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
import json
import shutil
import warnings
from pathlib import Path

import pytest

from ablation.core import io, layout, records, run_folder
from ablation.core.errors import DamagedFile
from ablation.core.records import Status
from ablation.study import seeding

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
    assert list(problems) == [layout.CHECKSUMS_FILE] and "not a size, SHA-256 and time" in problems[layout.CHECKSUMS_FILE]


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

