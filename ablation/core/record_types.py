"""The records of a results folder as types, today's format of each (`ablation.core.records` reads,
upgrades and writes them; its docstring lists which file each is). A JSON record's FORMAT is written
into it; `records.UPGRADES` turns an older one into today's.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar


def parsed(kind: type, data):
    """`data` (a JSON object) as a `kind`: its own from_json, or its fields by name (an unknown key is
    an error: a record is read in full or not at all)."""
    if not isinstance(data, dict):
        raise ValueError(f"{type(data).__name__}, not an object")
    if hasattr(kind, "from_json"):
        return kind.from_json(data)
    names = {field.name for field in dataclasses.fields(kind)}
    if unknown := sorted(set(data) - names):
        raise ValueError(f"unknown key {unknown[0]!r}")
    return kind(**data)



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
    run: dict  # ResolvedRun.to_json(): what makes the run this run (config.run_identity)
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
    run: dict  # ResolvedRun.to_json()

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
    run: dict  # ResolvedRun.to_json()
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

    def __post_init__(self):
        if not (type(self.bytes) is int and type(self.mtime_ns) is int and isinstance(self.sha256, str)):
            raise ValueError("not a size, SHA-256 and time")


@dataclasses.dataclass(frozen=True)
class Checksums:
    """checksums.json: each saved net as it was written (layout.CHECKED_FILES)."""

    FORMAT: ClassVar[int] = 2
    files: dict[str, FileChecksum]

    @classmethod
    def from_json(cls, data: dict) -> Checksums:
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
