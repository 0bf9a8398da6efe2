"""What a run folder's records say about the run: its state (`status()`), its history, metrics,
resumable state and last failure, read in today's words, and its lock (`RunLock`).

The files' names and what each holds: `ablation.core.layout`. Every module asks for a run's state
here, and locks a run through `locked()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import time
from pathlib import Path

import h5py
import pandas as pd

from ablation.core import io, layout
from ablation.core.errors import ConfigError, DamagedFile, RunFailed, RunLocked

INITIALIZATION_KEY = "initialization"  # config.json: how the net started, kept from the run's first attempt
PROBE_SECONDS = 1.0  # how long a trainer waits out another process's probe of a run's lock

STATUSES = ("done", "failed", "partial", "pending", "running", "stale")
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds",
                   "train_seconds", "images_per_second"]


def run_dir_of(results_dir, run_id: str) -> Path:
    return Path(results_dir) / layout.RUNS_DIR / run_id


def status(run_dir) -> str:
    """done; stale (trained from tied initial weights: see `stale`); failed (the last attempt);
    running (another process holds its lock); partial (epochs finished, resumable); or pending."""
    run_dir = Path(run_dir)
    if (run_dir / layout.METRICS_FILE).exists():
        return "stale" if stale(run_dir) else "done"
    if (run_dir / layout.LOCK_FILE).exists() and RunLock(run_dir).held_elsewhere():
        return "running"
    if stale(run_dir):
        return "stale"
    if (run_dir / layout.FAILURE_FILE).exists():
        return "failed"
    if latest_state(run_dir)[1] is not None:
        return "partial"
    return "pending"


def recorded_initialization(run_dir) -> dict | None:
    """How the run's net started, as config.json records it (None before runs recorded it)."""
    return (io.read_json(Path(run_dir) / layout.CONFIG_FILE) or {}).get(INITIALIZATION_KEY)


def stale(run_dir) -> bool:
    """Whether the folder holds epochs trained from tied initial weights: before 2026-12-02 one
    initializer instance per net gave every conv of one shape the same kernel, and config.json
    recorded no initialization. Such a run is another experiment than today's net: it is never
    resumed nor counted in a study's tables; `move_aside` keeps it when it is trained anew. A folder
    with nothing trained yet is not stale: its next attempt starts from scratch anyway."""
    run_dir = Path(run_dir)
    try:
        config = io.read_json(run_dir / layout.CONFIG_FILE)
    except DamagedFile:
        return False  # reported where the run's identity is read
    if config is None or INITIALIZATION_KEY in config:
        return False
    return ((run_dir / layout.METRICS_FILE).exists() or (run_dir / layout.HISTORY_FILE).exists()
            or latest_state(run_dir)[1] is not None)


def move_aside(run_dir) -> Path:
    """Rename a run folder to the first free NAME.stale, NAME.stale-2, ... beside it, under its lock
    (RunLocked if another process trains it): a run is never deleted, only kept aside."""
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


def state_files(run_dir: Path) -> list[tuple[int, Path]]:
    """(epochs finished, path) of every resumable state the run folder holds."""
    folder = Path(run_dir) / layout.STATE_DIR
    return [(int(m.group(1)), path) for path in (folder.iterdir() if folder.is_dir() else ())
            if (m := layout.STATE_FILES.fullmatch(path.name))]


def latest_state(run_dir: Path):
    """(epochs finished, path) of the newest resumable state, or (0, None)."""
    return max(state_files(run_dir), default=(0, None))


def readable_checkpoint(path: Path) -> bool:
    """Whether an HDF5 checkpoint opens and its tree of arrays can be walked: HDF5 compares the end
    of file it recorded with the file's size at open, so a truncated one fails here, without
    reading the arrays that load_weights reads next."""
    try:
        with h5py.File(path, "r") as checkpoint:
            checkpoint.visititems(lambda *_: None)
        return True
    except Exception:  # h5py raises OSError, KeyError or ValueError on damaged files
        return False


def state_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / layout.STATE_DIR / layout.state_file(epoch)


def empty_history() -> pd.DataFrame:
    return pd.DataFrame(columns=HISTORY_COLUMNS)


def read_history(run_dir: Path) -> pd.DataFrame:
    """history.csv: a row per finished epoch, 1..n; DamagedFile if it does not read as one."""
    path = Path(run_dir) / layout.HISTORY_FILE
    if not path.exists():
        return empty_history()
    try:
        history = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as error:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DamagedFile(path, f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    missing = [column for column in HISTORY_COLUMNS if column not in history]
    if missing:
        raise DamagedFile(path, f"no column {missing[0]!r}")
    if list(history["epoch"]) != list(range(1, len(history) + 1)):
        raise DamagedFile(path, f"epochs {list(history['epoch'])}, expected 1 to {len(history)} in order")
    return history


def save_history(run_dir: Path, rows: list[dict]) -> None:
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    io.write_csv(Path(run_dir) / layout.HISTORY_FILE, history)
    io.write_json(Path(run_dir) / layout.HISTORY_JSON_FILE, {column: history[column].tolist() for column in history.columns})


# metrics.json keys renamed since runs were first written: old name -> today's.
RENAMED_METRICS = {"training_seconds": "total_epoch_seconds"}  # the sum of history.csv's epoch_seconds


def read_metrics(run_dir: Path) -> dict | None:
    """metrics.json in today's words (None for an unfinished run)."""
    metrics = io.read_json(Path(run_dir) / layout.METRICS_FILE)
    for old, new in RENAMED_METRICS.items():
        if metrics is not None and old in metrics:
            metrics[new] = metrics.pop(old)
    return metrics


# ----------------------------------------------------------------------------------------------
# A finished run's files, checked rather than trusted by name


def record_checksums(run_dir: Path) -> None:
    """checksums.json: each saved net's size, SHA-256 and modification time, as it is written."""
    run_dir = Path(run_dir)
    recorded = {}
    for name in layout.CHECKED_FILES:
        if (path := run_dir / name).exists():
            found = path.stat()
            recorded[name] = {"bytes": found.st_size, "sha256": _sha256(path), "mtime_ns": found.st_mtime_ns}
    io.write_json(run_dir / layout.CHECKSUMS_FILE, recorded)


def damaged_files(run_dir: Path) -> dict[str, str]:
    """What is wrong with a finished run's saved nets: file name -> one line ({} if nothing, or if
    the run predates checksums.json). Bounded cost: a file whose size and modification time are as
    recorded is trusted; only one whose time changed (a copy, a touch) is read and hashed."""
    run_dir = Path(run_dir)
    try:
        recorded = io.read_json(run_dir / layout.CHECKSUMS_FILE) or {}
    except DamagedFile as error:
        return {layout.CHECKSUMS_FILE: str(error)}
    if not isinstance(recorded, dict) or not all(isinstance(entry, dict) and {"bytes", "sha256", "mtime_ns"} <= set(entry)
                                                 for entry in recorded.values()):
        return {layout.CHECKSUMS_FILE: f"{layout.CHECKSUMS_FILE} is damaged (not a size, SHA-256 and time per file)"}
    problems = {}
    for name, expected in recorded.items():
        path = run_dir / name
        if not path.is_file():
            problems[name] = f"{name} is missing"
            continue
        found = path.stat()
        if found.st_size != expected["bytes"]:
            problems[name] = f"{name} is damaged ({found.st_size:,} bytes; {expected['bytes']:,} when written)"
        elif found.st_mtime_ns != expected["mtime_ns"] and _sha256(path) != expected["sha256"]:
            problems[name] = f"{name} is damaged (its SHA-256 is not the one recorded when it was written)"
    return problems


def damaged_text(problems: dict[str, str]) -> str:
    """damaged_files' problems as one text ("" if none): results.csv's `damaged` column."""
    return "; ".join(problems.values())


def damage_report(run_dir: Path, damaged: str) -> str:
    """One line: what is damaged (damaged_text), what stands and what cannot be recovered."""
    return (f"{run_dir}: {damaged}. The run's results stand ({layout.METRICS_FILE}, "
            f"{layout.HISTORY_FILE}: its test results were computed before); a damaged net's weights cannot be "
            f"recovered but by training the run again (delete {run_dir} and run the same command)")


def finished_without_metrics(run_dir: Path, epochs: int) -> bool:
    """Whether a run of `epochs` trained every one and saved final.keras, but its metrics.json is gone
    (deleted, or a kill between the two): its results can be rebuilt from final.keras, not retrained."""
    run_dir = Path(run_dir)
    if (run_dir / layout.METRICS_FILE).exists() or not (run_dir / layout.FINAL_MODEL_FILE).is_file():
        return False
    if latest_state(run_dir)[1] is not None:  # the state of a later epoch: resuming finishes it
        return False
    try:
        history = read_history(run_dir)
    except DamagedFile:
        return False
    return len(history) > 0 and int(history["epoch"].max()) == epochs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_differences(out: Path, run: dict, identity) -> list[str] | None:
    """How the run a folder holds differs from `run` (the resolved config as JSON data; `identity`:
    what of it must match, config.run_identity): [] for the same run, None if it holds none yet."""
    previous = io.read_json(Path(out) / layout.CONFIG_FILE)
    if previous is None:
        return None
    old, new = identity(previous.get("run", {})), identity(io.json_roundtrip(run))
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def check_same_run(out: Path, run: dict, identity) -> None:
    """Refuse a folder that holds another run: resuming it would mix two experiments."""
    differences = run_differences(out, run, identity)
    if differences:
        raise ConfigError(f"{out} holds a different run ({'; '.join(differences)}); "
                          f"choose another --out or --results-dir, or remove it.")


def record_failure(out: Path, error: BaseException, traceback_text: str) -> RunFailed:
    """Write the run's failure.json (error and traceback) and return the RunFailed to raise."""
    failure = RunFailed(out, Path(out) / layout.FAILURE_FILE, error)
    io.write_json(failure.record, {"error": str(failure), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                   "traceback": traceback_text})
    return failure


def last_failure(run_dir: Path) -> str | None:
    """The error of the run's last failed attempt, or None if it has not failed."""
    try:
        record = io.read_json(Path(run_dir) / layout.FAILURE_FILE)
    except DamagedFile:
        return f"unknown error: its {layout.FAILURE_FILE} is damaged"
    return None if record is None else record.get("error", "unknown error")


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / layout.FAILURE_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(run_dir: Path):
    """Hold the run folder's lock while the block runs; RunLocked if another process holds it.
    `status()` probes a lock by taking it for an instant (a study's progress tally does, each
    time a run starts): a lock still held after PROBE_SECONDS is a trainer's, not a probe's."""
    lock = RunLock(run_dir)
    deadline = time.monotonic() + PROBE_SECONDS
    while not lock.acquire():
        if time.monotonic() > deadline:
            raise RunLocked(run_dir, lock.holder())
        time.sleep(0.02)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def report_lock(results_dir: Path):
    """Hold the study folder's report lock while the block runs, waiting for it: two workers that end
    together rebuild the tables one after the other, not into each other's files."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(results_dir) / layout.REPORT_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of atomic writes (io.atomic_path) that a killed process left behind; only
    called under the run's lock, when no writer can be at work."""
    for path in Path(run_dir).rglob(io.TEMPORARY_GLOB):  # the run folder and its state/
        if path.is_file():
            path.unlink()


class RunLock:
    """An exclusive lock on a run folder, so that no two processes (shards, machines on a shared
    file system, a second terminal) train the same run. `flock` locks die with their process,
    so a killed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / layout.LOCK_FILE
        self.fd = None

    def acquire(self, create: bool = True) -> bool:
        """True if locked; False if another process holds it (or, with create=False, the folder is gone)."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if create:
                raise
            return False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.uname().nodename} {os.getpid()}\n".encode())
        return True

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it: "host pid"."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def held_elsewhere(self) -> bool:
        if self.acquire():
            self.release()
            return False
        return True
