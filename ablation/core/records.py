"""Every record a results folder holds, as a type: read in today's words, written whole with its format.

    config.json     RunRecord      the resolved run (its identity), how its net started, its data, its machine
    metrics.json    Metrics        the test results, written last: its presence marks the run finished
    history.csv     HistoryRow     a row per finished epoch (training_history.json: the same, by column)
    study.json      StudyRecord    the plan a study's tables are rebuilt from
    search.json     SearchRecord   what defines a dropout search, and how its nets start
    checksums.json  Checksums      each saved net's size, SHA-256 and modification time
    failure.json    Failure        why a run's last attempt failed
    blocks.json     Blocks         the net's stages, spelled as the papers do
    executions.json Execution      a search trial's executions (a list), each seed's score

Each JSON record is written with `"format": N` (the class's FORMAT); a file without one is format 1,
written before records had formats. Older formats are upgraded here and nowhere else (`UPGRADES`):
every other module gets today's typed object, or DamagedFile naming what is wrong. Folder
migrations (a run folder renamed to its run id, a stale one kept aside) are here too: they are the
records' older layouts. Writes are atomic (`ablation.core.io`); file names: `ablation.core.layout`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import reprlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.core import io, layout
from ablation.core.errors import ConfigError, DamagedFile, RunFailed, RunLocked
from ablation.core.locks import RunLock
from ablation.core.record_types import (
    HISTORY_COLUMNS,
    Blocks,
    Checksums,
    ConfigurationEntry,
    Execution,
    Failure,
    FileChecksum,
    HistoryRow,
    Metrics,
    PlannedRunEntry,
    ResolvedRunJSON,
    RunRecord,
    SearchRecord,
    Seeding,
    Status,
    StudyRecord,
    copy_disagreement,
    history_rows,
    parsed,
    run_unlike,
)

# The records' types are record_types'; every other module reaches them, and their files, here.
__all__ = ["HISTORY_COLUMNS", "Blocks", "Checksums", "ConfigurationEntry", "Execution", "Failure", "FileChecksum", "HistoryRow",
           "Metrics", "PlannedRunEntry", "ResolvedRunJSON", "RunRecord", "SearchRecord", "Seeding", "Status", "StudyRecord",
           "UPGRADES", "check_same_run", "clear_failure", "empty_history", "move_aside", "older_folder", "read_blocks",
           "read_checksums", "read_config", "read_executions", "read_failure", "read_history", "read_metrics", "read_per_class",
           "read_search", "read_study", "record_checksums", "record_failure", "rename_older_folder", "run_differences",
           "run_dir_of", "save_history", "sha256", "write_blocks", "write_config", "write_executions", "write_metrics",
           "write_per_class", "write_search", "write_study"]


def run_dir_of(results_dir, run_id: str) -> Path:
    return Path(results_dir) / layout.RUNS_DIR / run_id


# ----------------------------------------------------------------------------------------------
# Older formats: the one place that knows them. UPGRADES[kind][n] turns format n into n + 1.


def _study_1(data: dict) -> dict:
    """Before formats: "preset" was the protocol (and "protocol" its description), "label" a
    configuration's name; "metric" named test error without choosing it; a study without a declared
    baseline compares with its first configuration, one without `cumulative` is not."""
    data = dict(data)
    if "preset" in data:
        data["protocol_description"] = data.pop("protocol")
        data["protocol"] = data.pop("preset")
    for key in ("configurations", "runs"):
        data[key] = [{("configuration" if k == "label" else k): v for k, v in entry.items()} for entry in data[key]]
    data.pop("metric", None)
    data.setdefault("baseline", data["configurations"][0]["configuration"])
    data.setdefault("cumulative", False)
    data.setdefault("published_protocol", "")
    data.setdefault("seeding", {"auto": False})
    return data


def _search_1(data: dict) -> dict:
    """Before formats: "preset" was the protocol; no "initialization": trials from tied weights."""
    data = {("protocol" if k == "preset" else k): v for k, v in data.items()}
    data.setdefault("initialization", None)
    return data


def _family(run: dict) -> dict:
    """Format 2's resolved run named the preset's family "builder", the name Preset gives its function."""
    return {("family" if k == "builder" else k): v for k, v in run.items()}


UPGRADES: dict[type, dict[int, Callable[[Any], dict]]] = {
    # No "initialization" before 2026-12-02: the net started from tied initial weights (run_folder.stale);
    # a folder holding only its run (a run id's folder before it trained) has no data or machine yet.
    RunRecord: {1: lambda data: {"initialization": None, "data": {}, "environment": {}, **data},
                2: lambda data: {**data, "run": _family(data["run"])}},
    # "training_seconds" was the sum of the epochs' seconds.
    Metrics: {1: lambda data: {**{f.name: None for f in dataclasses.fields(Metrics)},
                               **{("total_epoch_seconds" if k == "training_seconds" else k): v for k, v in data.items()}}},
    StudyRecord: {1: _study_1, 2: lambda data: {**data, "runs": [{**r, "run": _family(r["run"])} for r in data["runs"]]}},
    SearchRecord: {1: _search_1, 2: lambda data: {**data, "run": _family(data["run"])}},
    Checksums: {1: lambda data: {"files": data}},  # the files' entries were the whole object
    Failure: {1: lambda data: {"error": "unknown error", "time": "", "traceback": "", **data}},
    Blocks: {1: lambda data: data},
    HistoryRow: {1: lambda data: data},  # training_history.json: the same columns, without a format
    Execution: {1: lambda data: data},
}


def _upgraded(kind: type, data) -> dict:
    version = data.pop("format", 1) if isinstance(data, dict) else 1
    if type(version) is not int or version < 1:
        raise ValueError(f"format {reprlib.repr(version)} is not a format number")
    if version > kind.FORMAT:
        raise ValueError(f"format {version!r}, newer than this version's {kind.FORMAT}: written by a newer version "
                         f"of the suite")
    for old in range(version, kind.FORMAT):
        data = UPGRADES[kind][old](data)
    return data


_ABSENT = object()  # io.read_json's answer for a missing file (a file holding `null` is damaged, not absent)


def _read(path: Path, kind: type):
    """The record at `path` in today's type; None if there is no such file; DamagedFile if it does not
    read as one."""
    data = io.read_json(path, default=_ABSENT)
    if data is _ABSENT:
        return None
    with _read_as_record(path):
        return parsed(kind, _upgraded(kind, data))


@contextlib.contextmanager
def _read_as_record(path: Path):
    """A record that parses as JSON but not as its type is a damaged file, named."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DamagedFile(path, f"not a {path.name} record: {type(error).__name__}: {error}") from None


def _write(path: Path, record) -> None:
    data = record.to_json() if hasattr(record, "to_json") else dataclasses.asdict(record)
    io.write_json(path, {"format": record.FORMAT, **data})


def read_config(run_dir) -> RunRecord | None:
    return _read(Path(run_dir) / layout.CONFIG_FILE, RunRecord)


def write_config(run_dir, record: RunRecord) -> None:
    _write(Path(run_dir) / layout.CONFIG_FILE, record)


def read_metrics(run_dir) -> Metrics | None:
    """metrics.json (None for an unfinished run)."""
    return _read(Path(run_dir) / layout.METRICS_FILE, Metrics)


def write_metrics(run_dir, metrics: Metrics) -> None:
    _write(Path(run_dir) / layout.METRICS_FILE, metrics)


def read_study(results_dir) -> StudyRecord:
    """study.json; ConfigError if the folder holds none (not a study's folder)."""
    study = _read(Path(results_dir) / layout.STUDY_FILE, StudyRecord)
    if study is None:
        raise ConfigError(f"{results_dir} holds no {layout.STUDY_FILE}; expected a folder written by "
                          f"python -m studies.NAME.")
    return study


def write_study(results_dir, study: StudyRecord) -> None:
    _write(Path(results_dir) / layout.STUDY_FILE, study)


def read_search(results_dir) -> SearchRecord | None:
    return _read(Path(results_dir) / layout.SEARCH_FILE, SearchRecord)


def write_search(results_dir, search: SearchRecord) -> None:
    _write(Path(results_dir) / layout.SEARCH_FILE, search)


def read_failure(run_dir) -> Failure | None:
    return _read(Path(run_dir) / layout.FAILURE_FILE, Failure)


def record_failure(out: Path, error: BaseException, traceback_text: str) -> RunFailed:
    """Write the run's failure.json (error and traceback) and return the RunFailed to raise."""
    failure = RunFailed(out, Path(out) / layout.FAILURE_FILE, error)
    _write(failure.record, Failure(error=str(failure), time=time.strftime("%Y-%m-%dT%H:%M:%S"),
                                   traceback=traceback_text))
    return failure


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / layout.FAILURE_FILE).unlink(missing_ok=True)


def read_blocks(run_dir) -> Blocks | None:
    return _read(Path(run_dir) / layout.BLOCKS_FILE, Blocks)


def write_blocks(run_dir, blocks: Blocks) -> None:
    _write(Path(run_dir) / layout.BLOCKS_FILE, blocks)


def read_executions(trial_dir) -> list[Execution]:
    """A search trial's executions ([] before its first)."""
    path = Path(trial_dir) / layout.EXECUTIONS_FILE
    data = io.read_json(path, default=_ABSENT)
    if data is _ABSENT:
        return []
    with _read_as_record(path):
        version = data.get("format", 1) if isinstance(data, dict) else 1
        entries = data if version == 1 else data["executions"]  # format 1: the bare list
        return [parsed(Execution, _upgraded(Execution, {"format": version, **entry})) for entry in entries]


def write_executions(trial_dir, executions: list[Execution]) -> None:
    io.write_json(Path(trial_dir) / layout.EXECUTIONS_FILE,
                  {"format": Execution.FORMAT, "executions": [dataclasses.asdict(e) for e in executions]})


def empty_history() -> pd.DataFrame:
    return pd.DataFrame(columns=HISTORY_COLUMNS)


def read_history(run_dir, *, through: int = 0) -> pd.DataFrame:
    """history.csv: a row per finished epoch, 1..n, every cell a number (HistoryRow.OPTIONAL's may be
    empty); DamagedFile if it does not read as one. `through`, the epochs the run's resumable state
    holds: their rows must be there, and in training_history.json the same numbers.

    Both files are written whole each epoch (io), so a cut row is damage, never a kill; a row cut just
    after a digit (val_loss "2.0" of "2.0297...") still reads as numbers, so a row must end its line
    (a cut is a file's end: history_rows), and a resume compares the rows it keeps with the copy."""
    path, copy_path = Path(run_dir) / layout.HISTORY_FILE, Path(run_dir) / layout.HISTORY_JSON_FILE
    if not path.exists():
        if through:
            raise DamagedFile(path, f"missing, where the run's state holds {through} epochs")
        return empty_history()
    try:
        rows = history_rows(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DamagedFile(path, str(error)) from None
    if len(rows) < through:
        raise DamagedFile(path, f"its last epoch is {len(rows)}, the run's state's {through}")
    if through and (copy := io.read_json(copy_path, default=_ABSENT)) is not _ABSENT:
        with _read_as_record(copy_path):
            disagreement = copy_disagreement(rows[:through], _upgraded(HistoryRow, copy))
        if disagreement:
            raise DamagedFile(path, disagreement)
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS) if rows else empty_history()


def save_history(run_dir, rows: list[HistoryRow]) -> None:
    history = pd.DataFrame([dataclasses.asdict(row) for row in rows], columns=HISTORY_COLUMNS)
    io.write_csv(Path(run_dir) / layout.HISTORY_FILE, history)
    io.write_json(Path(run_dir) / layout.HISTORY_JSON_FILE,
                  {"format": HistoryRow.FORMAT, **{column: history[column].tolist() for column in history.columns}})


def read_per_class(run_dir) -> pd.DataFrame | None:
    """per_class_accuracy.csv (None before the run finished): class, support, correct, accuracy."""
    path = Path(run_dir) / layout.PER_CLASS_FILE
    return pd.read_csv(path) if path.exists() else None


def write_per_class(run_dir, table: pd.DataFrame) -> None:
    io.write_csv(Path(run_dir) / layout.PER_CLASS_FILE, table)


# ----------------------------------------------------------------------------------------------
# Checksums: a finished run's saved nets, checked rather than trusted by name


def record_checksums(run_dir: Path) -> None:
    """checksums.json: each saved net's size, SHA-256 and modification time, as it is written."""
    run_dir = Path(run_dir)
    files = {}
    for name in layout.CHECKED_FILES:
        if (path := run_dir / name).exists():
            found = path.stat()
            files[name] = FileChecksum(bytes=found.st_size, sha256=sha256(path), mtime_ns=found.st_mtime_ns)
    _write(run_dir / layout.CHECKSUMS_FILE, Checksums(files))


def read_checksums(run_dir) -> Checksums | None:
    return _read(Path(run_dir) / layout.CHECKSUMS_FILE, Checksums)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# A run's identity, against the folder that holds it


def run_differences(out: Path, run: dict, identity) -> list[str] | None:
    """How the run a folder holds differs from `run` (the resolved config as JSON data; `identity`:
    what of it must match, config.run_identity): [] for the same run, None if it holds none yet.
    DamagedFile if its config.json's run is not of today's run's shape: another run is bad input (the
    wrong --out), a record that no longer reads is damage of that one run."""
    previous = read_config(out)
    if previous is None:
        return None
    today = io.json_roundtrip(run)
    if problem := run_unlike(previous.run, today):
        raise DamagedFile(Path(out) / layout.CONFIG_FILE, f"not a {layout.CONFIG_FILE} record: {problem}")
    old, new = identity(previous.run), identity(today)
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def check_same_run(out: Path, run: dict, identity) -> None:
    """Refuse a folder that holds another run: resuming it would mix two experiments."""
    differences = run_differences(out, run, identity)
    if differences:
        raise ConfigError(f"{out} holds a different run ({'; '.join(differences)}); "
                          f"choose another --out or --results-dir, or remove it.")


# ----------------------------------------------------------------------------------------------
# Folder migrations: the records' older layouts


def move_aside(run_dir) -> Path:
    """Rename a run folder (or a search's) to the first free NAME.stale, NAME.stale-2, ... beside it,
    under its lock (RunLocked if another process trains it): a run is never deleted, only kept aside."""
    run_dir = Path(run_dir)
    lock = RunLock(run_dir)
    if not lock.acquire(create=False):
        raise RunLocked(run_dir, lock.holder())
    try:
        for n in itertools.count(1):
            aside = run_dir.with_name(run_dir.name + layout.STALE_SUFFIX + ("" if n == 1 else f"-{n}"))
            if not aside.exists():
                break
        os.rename(run_dir, aside)  # atomic; the lock file moves with it
    finally:
        lock.release()
    return aside


def older_folder(old: Path, new: Path, run: dict, identity) -> Path | None:
    """`old`, a run's folder under the name an older version gave it, if it holds this very run (`run`,
    the resolved config as JSON) and has not been renamed to `new` yet."""
    if old == new or new.exists() or not old.is_dir():
        return None
    try:
        return old if run_differences(old, run, identity) == [] else None
    except DamagedFile:
        return None


def rename_older_folder(old: Path, new: Path) -> str | None:
    """Rename a run's folder to today's name, under its lock, so that its epochs are resumed, not
    trained again; one a process is training (an older version's) keeps its name. One line saying
    what happened (None if another worker renamed it first)."""
    lock = RunLock(old)
    if not lock.acquire(create=False):
        if old.exists():
            return f"{old.name}: being trained by another process; renamed to {new.name} on a later call"
        return None
    try:
        os.rename(old, new)  # atomic; the lock moves with it
    except OSError as error:  # another worker renamed it first, or started the run anew meanwhile
        return f"{old.name}: not renamed to {new.name} ({error.strerror})"
    finally:
        lock.release()
    return f"{old.name}: renamed to {new.name} (run ids now name what a run is)"
