"""The records of a results folder as types, today's format of each (`ablation.core.records` reads,
upgrades and writes them; its docstring lists which file each is). A JSON record's FORMAT is written
into it; `records.UPGRADES` turns an older one into today's. A record is read in full or not at all:
every field of the JSON type its annotation declares (`parsed`), or it is damaged.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import math
import reprlib
import types
import typing
from typing import Any, ClassVar

from ablation.core import layout

LARGEST_INTEGER = 2**63 - 1  # int64's, as pandas holds them: every integer the suite writes (sizes, ns) fits


def parsed(kind: type, data):
    """`data` (a JSON object) as a `kind`, each field of its declared type (`mismatch`): its own
    from_json, or its fields by name (an unknown key is an error: a record is read in full or not at
    all). ValueError (or TypeError, KeyError) saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{type(data).__name__}, not an object")
    hints = _hints(kind)
    for field in dataclasses.fields(kind):
        if field.name in data and (problem := mismatch(hints[field.name], data[field.name], field.name)):
            raise ValueError(problem)
    if hasattr(kind, "from_json"):
        return kind.from_json(data)
    names = {field.name for field in dataclasses.fields(kind)}
    if unknown := sorted(set(data) - names):
        raise ValueError(f"unknown key {unknown[0]!r}")
    return kind(**data)


@functools.cache
def _hints(kind: type) -> dict:
    return typing.get_type_hints(kind)


def mismatch(hint, value, where: str) -> str | None:
    """What is wrong with `value`, read from JSON, as the type `hint` ("seed is '1', expected an
    integer"), or None. JSON's types: a tuple is a list; an int is a number where a float is
    declared, a bool is not; a dataclass is an object (its fields are checked where it is parsed)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        found = [mismatch(option, value, where) for option in args if value is None or option is not type(None)]
        return None if None in found else found[0] if len(found) == 1 else _wrong(value, where, hint)
    if typing.is_typeddict(hint):
        keys = _hints(hint)
        if not isinstance(value, dict):
            return _wrong(value, where, hint)
        if unknown := sorted(set(value) - set(keys)):
            return f"{where} has an unknown key {unknown[0]!r}"
        if missing := [key for key in keys if key not in value]:
            return f"{where} has no {missing[0]!r}"
        return _first(mismatch(keys[key], value[key], f"{where}.{key}") for key in keys)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, list):
            return _wrong(value, where, hint)
        fixed = origin is tuple and args and args[-1] is not Ellipsis  # tuple[str, str]: that many items
        if fixed and len(value) != len(args):
            return f"{where} has {len(value)} items, expected {len(args)}"
        items = args if fixed else (args[:1] or (Any,)) * len(value)
        return _first(mismatch(item, element, f"{where}[{i}]")
                      for i, (item, element) in enumerate(zip(items, value, strict=True)))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return _wrong(value, where, hint)
        return _first(mismatch(args[1] if args else Any, element, f"{where}[{key!r}]") for key, element in value.items())
    fits = {Any: True, bool: type(value) is bool, str: isinstance(value, str), type(None): value is None,
            int: type(value) is int and abs(value) <= LARGEST_INTEGER,
            float: type(value) is float or (type(value) is int and abs(value) <= LARGEST_INTEGER)}
    return None if (isinstance(value, dict) if dataclasses.is_dataclass(hint) else fits[hint]) else _wrong(value, where, hint)


def _first(problems) -> str | None:
    return next(filter(None, problems), None)


def _wrong(value, where: str, hint) -> str:
    return f"{where} is {reprlib.repr(value)}, expected {_described(hint)}"


def _described(hint) -> str:
    """A type in JSON's words: "an integer", "a number or null", "a list"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_described(option) for option in typing.get_args(hint))
    words = {bool: "true or false", str: "a string", int: "an integer", float: "a number", type(None): "null",
             tuple: "a list", list: "a list"}
    return words.get(typing.get_origin(hint) or hint, "an object")


class ResolvedRunJSON(typing.TypedDict):
    """config.json's "run" (a study.json run's, search.json's): `ablation.run.config.ResolvedRun.to_json()`
    in JSON's types. tests/test_records.py checks that its keys are ResolvedRun's fields: a new one
    is a new format of these records, read from older ones by an upgrade."""

    model: str
    family: str
    model_kwargs: dict[str, Any]  # the builder's arguments (the builder checks them)
    input_shape: tuple[int | None, ...]
    dataset: str
    recipe: str
    recipe_fields: dict[str, Any]  # the recipe's fields (records.run_differences checks them against today's)
    seed: int
    validation_fraction: float
    augment: bool
    max_steps_per_epoch: int | None
    strategy: str
    precision: str
    jit_compile: str


def run_unlike(recorded: ResolvedRunJSON, today: dict) -> str | None:
    """What makes a recorded run another shape than `today`'s (ResolvedRun.to_json() of this version,
    which knows a recipe's fields): a recipe field today's recipe has not, or a recipe field or builder
    argument of another JSON type (null may stand for anything: an option left unset). A builder
    argument today's run has not is another run, not another shape."""
    if unknown := sorted(set(recorded["recipe_fields"]) - set(today["recipe_fields"])):
        return f"run.recipe_fields has an unknown key {unknown[0]!r}"
    kind = lambda value: "number" if type(value) in (int, float) else type(value).__name__
    for part in ("recipe_fields", "model_kwargs"):
        ours, theirs = recorded[part], today[part]
        for key in sorted(set(ours) & set(theirs)):
            if None not in (ours[key], theirs[key]) and kind(ours[key]) != kind(theirs[key]):
                return f"run.{part}.{key} is {reprlib.repr(ours[key])}, expected a {kind(theirs[key])}"
    return None


class Status(enum.StrEnum):
    """A run's state (run_folder.status decides it), as results.csv, the pages and `--dry-run` spell it: a
    StrEnum, so each is its word."""

    DONE = "done"  # metrics.json written
    STALE = "stale"  # trained from tied initial weights: another experiment (`stale`)
    DIFFERS = "differs"  # finished, but another run than the study declares (tables.collect_results)
    FAILED = "failed"  # its last attempt failed (failure.json), or its records are damaged
    RUNNING = "running"  # another process holds its lock
    PARTIAL = "partial"  # epochs finished, resumable
    PENDING = "pending"  # nothing trained yet


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """config.json. `initialization` is None only in a folder written before 2026-12-02, whose nets
    started from tied initial weights (run_folder.stale)."""

    FORMAT: ClassVar[int] = 3
    run: ResolvedRunJSON  # what makes the run this run (config.run_identity)
    initialization: dict | None  # how the net started, kept from the run's first attempt
    data: dict  # class names, split sizes, steps per epoch, normalisation
    environment: dict  # versions, devices, strategy, precision


@dataclasses.dataclass(frozen=True)
class Metrics:
    """metrics.json: the test split read once, by the final weights; the run's size and speed."""

    FORMAT: ClassVar[int] = 2
    test_accuracy: float
    test_loss: float
    test_error: float  # in %
    best_val_accuracy: float | None
    best_epoch: int | None
    final_val_accuracy: float | None
    epochs: int
    trainable_params: int
    total_params: int
    macs: int | None
    total_epoch_seconds: float | None  # the sum of history.csv's epoch_seconds
    seconds_per_epoch: float | None
    images_per_second: float | None


@dataclasses.dataclass(frozen=True)
class HistoryRow:
    """A row of history.csv: one finished epoch. history.csv's format is its header (HISTORY_COLUMNS);
    FORMAT is training_history.json's."""

    FORMAT: ClassVar[int] = 2
    # The columns an epoch may leave empty: a run without a validation split has no validation (and a
    # NaN validation loss is written empty). Every other cell of a row is a number, or the row is damaged.
    OPTIONAL: ClassVar[tuple[str, ...]] = ("val_loss", "val_accuracy")
    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    epoch_seconds: float
    train_seconds: float
    images_per_second: float


HISTORY_COLUMNS = [field.name for field in dataclasses.fields(HistoryRow)]


def history_rows(text: str) -> list[dict]:
    """history.csv's rows; ValueError at the first that is not whole. Each has its line end, a cell per
    column of its header, and a number in each (NaN where an OPTIONAL one is empty). A column this
    version does not write is left out (the first versions' "objective")."""
    lines = text.split("\n")
    header = next(csv.reader(lines[:1]), [])
    if missing := [column for column in HISTORY_COLUMNS if column not in header]:
        raise ValueError(f"no column {missing[0]!r}" if header else "empty")
    if lines[-1]:  # after the last line end
        raise ValueError(f"its last line is cut short, with no line end: {lines[-1][:60]!r}")
    rows = []
    for n, cells in enumerate(csv.reader(lines[1:-1]), start=1):
        if len(cells) != len(header):
            raise ValueError(f"row {n} has {len(cells)} cells, its header {len(header)}")
        row = {}
        for column, cell in zip(header, cells, strict=True):
            if column in HISTORY_COLUMNS:
                try:
                    row[column] = int(cell) if column == "epoch" else float(cell) if cell else math.nan
                except ValueError:
                    raise ValueError(f"row {n}'s {column} is {cell!r}, not a number") from None
                if math.isnan(row[column]) and column not in HistoryRow.OPTIONAL:
                    raise ValueError(f"row {n} has no {column}")
        if row["epoch"] != n:
            raise ValueError(f"row {n} is epoch {row['epoch']}, expected epochs 1, 2, ... in order")
        rows.append(row)
    return rows


def copy_disagreement(rows: list[dict], copy) -> str | None:
    """Where training_history.json's columns (`copy`: written just after history.csv, from the same
    rows) differ from history.csv's `rows`, or None; ValueError if it is not a table of numbers."""
    if problem := mismatch(dict[str, list[float | None]], copy, layout.HISTORY_JSON_FILE):
        raise ValueError(problem)
    for column in HISTORY_COLUMNS:
        if len(copy[column]) < len(rows):
            return f"{layout.HISTORY_JSON_FILE} holds {len(copy[column])} epochs of {column}, {layout.HISTORY_FILE} {len(rows)}"
        for row, theirs in zip(rows, copy[column], strict=False):
            ours, theirs = row[column], math.nan if theirs is None else theirs
            # Both are the shortest repr of one float; the tolerance forgives a last digit that an
            # older version's reading of history.csv (pandas' own float parser) may have changed.
            if not (math.isnan(ours) and math.isnan(theirs)) and not math.isclose(ours, theirs, rel_tol=1e-12):
                return (f"epoch {row['epoch']}'s {column} is {ours!r} in {layout.HISTORY_FILE}, {theirs!r} in "
                        f"{layout.HISTORY_JSON_FILE}")
    return None


@dataclasses.dataclass(frozen=True)
class ConfigurationEntry:
    """A configuration of study.json: its name (results.csv's `configuration`), net and published error."""

    configuration: str
    model: str
    published_error: float | None
    versus: str | None = None  # the configuration it is compared with, if not the baseline


@dataclasses.dataclass(frozen=True)
class PlannedRunEntry:
    """A run of study.json: its id (its folder under runs/), configuration, seed and resolved run."""

    run_id: str
    configuration: str
    seed: int
    downsized: str  # what the smoke protocol changed in the net, if anything
    run: ResolvedRunJSON

    def __post_init__(self):
        # The report writes a page into runs/RUN_ID: a run id is never a path out of runs/.
        run_id = self.run_id
        if not isinstance(run_id, str) or run_id in ("", ".", "..") or "/" in run_id or "\0" in run_id:
            raise ValueError(f"the run id {run_id!r} is not a folder name")


@dataclasses.dataclass(frozen=True)
class Seeding:
    """How a study chooses its seeds: declared, or `--seeds auto` (its seed sequence and looks)."""

    auto: bool = False
    sequence: tuple[int, ...] = ()
    looks: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Seeding:
        return cls(auto=data["auto"], sequence=tuple(data.get("sequence", ())), looks=tuple(data.get("looks", ())))


@dataclasses.dataclass(frozen=True)
class StudyRecord:
    """study.json: what `ablation report` rebuilds a study's tables from, without the study module."""

    FORMAT: ClassVar[int] = 3
    name: str
    question: str
    varies: tuple[str, ...]
    heatmap: tuple[str, str] | None
    protocol: str  # choices.PROTOCOLS
    protocol_description: str
    published_protocol: str
    baseline: str
    cumulative: bool
    seeding: Seeding
    configurations: tuple[ConfigurationEntry, ...]
    runs: tuple[PlannedRunEntry, ...]

    @classmethod
    def from_json(cls, data: dict) -> StudyRecord:
        return cls(**{**data, "varies": tuple(data["varies"]),
                      "heatmap": tuple(data["heatmap"]) if data["heatmap"] else None,
                      "seeding": parsed(Seeding, data["seeding"]),
                      "configurations": tuple(parsed(ConfigurationEntry, c) for c in data["configurations"]),
                      "runs": tuple(parsed(PlannedRunEntry, r) for r in data["runs"])})

    def configuration_names(self) -> list[str]:
        return [c.configuration for c in self.configurations]

    def versus(self) -> dict[str, str]:
        """The configurations compared with another than the baseline: configuration -> its reference."""
        return {c.configuration: c.versus for c in self.configurations if c.versus}


@dataclasses.dataclass(frozen=True)
class SearchRecord:
    """search.json: the settings that define a dropout search (not max_trials, which may grow), its
    run and how its nets start (None: trials from tied initial weights, before 2026-12-02)."""

    FORMAT: ClassVar[int] = 3
    settings: dict  # tuning.Search's fields but run and max_trials
    run: ResolvedRunJSON
    initialization: dict | None

    @classmethod
    def from_json(cls, data: dict) -> SearchRecord:
        data = dict(data)
        return cls(run=data.pop("run"), initialization=data.pop("initialization"), settings=data)

    def to_json(self) -> dict:
        return {**self.settings, "run": self.run, "initialization": self.initialization}


@dataclasses.dataclass(frozen=True)
class FileChecksum:
    bytes: int
    sha256: str
    mtime_ns: int


@dataclasses.dataclass(frozen=True)
class Checksums:
    """checksums.json: each saved net as it was written (layout.CHECKED_FILES)."""

    FORMAT: ClassVar[int] = 2
    files: dict[str, FileChecksum]

    @classmethod
    def from_json(cls, data: dict) -> Checksums:
        # Only the saved nets: a name is a path in the run folder, hashed when its time changed.
        if unknown := sorted(set(data["files"]) - set(layout.CHECKED_FILES)):
            raise ValueError(f"files has {unknown[0]!r}, expected only {', '.join(layout.CHECKED_FILES)}")
        return cls({name: parsed(FileChecksum, entry) for name, entry in data["files"].items()})


@dataclasses.dataclass(frozen=True)
class Failure:
    """failure.json: the error of a run's last attempt (one line) and its traceback."""

    FORMAT: ClassVar[int] = 2
    error: str
    time: str
    traceback: str


@dataclasses.dataclass(frozen=True)
class Blocks:
    """blocks.json: the net's stages as the stage view draws them."""

    FORMAT: ClassVar[int] = 2
    title: str
    stages: list


@dataclasses.dataclass(frozen=True)
class Execution:
    """An execution of a search trial (trial_*/executions.json holds a list): its seed and scores."""

    FORMAT: ClassVar[int] = 2
    seed: int
    val_accuracy: float
    final_val_accuracy: float
    epochs: int
    seconds: float
