"""What a run folder says about its run: its `Status`, whether it is stale, its resumable states, its
saved nets' damage and its last failure. Every module asks for a run's state here; the records it
reads are `ablation.core.records`'s, its lock `ablation.core.locks`'s.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from ablation.core import io, layout, records
from ablation.core.errors import DamagedFile
from ablation.core.locks import RunLock
from ablation.core.records import Status


def status(run_dir) -> Status:
    """The run's Status, from what its folder holds (and whether another process holds its lock);
    config.json read once."""
    run_dir = Path(run_dir)
    finished = (run_dir / layout.METRICS_FILE).exists()
    if not finished and (run_dir / layout.LOCK_FILE).exists() and RunLock(run_dir).held_elsewhere():
        return Status.RUNNING
    try:
        config = records.read_config(run_dir)
    except DamagedFile:  # which run it holds is unknown: its results are not counted (a study names the file)
        return Status.FAILED
    if _tied(run_dir, config):
        return Status.STALE
    if finished:
        return Status.DONE
    if (run_dir / layout.FAILURE_FILE).exists():
        return Status.FAILED
    if latest_state(run_dir)[1] is not None:
        return Status.PARTIAL
    return Status.PENDING


def stale(run_dir) -> bool:
    """Whether the folder holds epochs trained from tied initial weights: before 2026-12-02 one
    initializer instance per net gave every conv of one shape the same kernel, and config.json
    recorded no initialization (records.RunRecord). Such a run is another experiment than today's
    net: it is never resumed nor counted in a study's tables; `records.move_aside` keeps it when it
    is trained anew. A folder with nothing trained yet is not stale: its next attempt starts from
    scratch anyway."""
    try:
        config = records.read_config(run_dir)
    except DamagedFile:
        return False  # reported where the run's identity is read
    return _tied(Path(run_dir), config)


def _tied(run_dir: Path, config: records.RunRecord | None) -> bool:
    if config is None or config.initialization is not None:
        return False
    return ((run_dir / layout.METRICS_FILE).exists() or (run_dir / layout.HISTORY_FILE).exists()
            or latest_state(run_dir)[1] is not None)


def state_files(run_dir: Path) -> list[tuple[int, Path]]:
    """(epochs finished, path) of every resumable state the run folder holds."""
    folder = Path(run_dir) / layout.STATE_DIR
    return [(int(m.group(1)), path) for path in (folder.iterdir() if folder.is_dir() else ())
            if (m := layout.STATE_FILES.fullmatch(path.name))]


def latest_state(run_dir: Path):
    """(epochs finished, path) of the newest resumable state, or (0, None)."""
    return max(state_files(run_dir), default=(0, None))


def state_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / layout.STATE_DIR / layout.state_file(epoch)


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


def damaged_files(run_dir: Path) -> dict[str, str]:
    """What is wrong with a finished run's saved nets: file name -> one line ({} if nothing, or if
    the run predates checksums.json). Bounded cost: a file whose size and modification time are as
    recorded is trusted; only one whose time changed (a copy, a touch) is read and hashed."""
    run_dir = Path(run_dir)
    try:
        recorded = records.read_checksums(run_dir)
    except DamagedFile as error:
        return {layout.CHECKSUMS_FILE: str(error)}
    problems = {}
    for name, expected in (recorded.files if recorded else {}).items():
        path = run_dir / name
        if not path.is_file():
            problems[name] = f"{name} is missing"
            continue
        found = path.stat()
        if found.st_size != expected.bytes:
            problems[name] = f"{name} is damaged ({found.st_size:,} bytes; {expected.bytes:,} when written)"
        elif found.st_mtime_ns != expected.mtime_ns and records.sha256(path) != expected.sha256:
            problems[name] = f"{name} is damaged (its SHA-256 is not the one recorded when it was written)"
    return problems


def damaged_text(problems: dict[str, str]) -> str:
    """damaged_files' problems as one text ("" if none): results.csv's `damaged` column."""
    return "; ".join(problems.values())


def damage_report(run_dir: Path, damaged: str) -> str:
    """One line: what is damaged (damaged_text), what stands and what cannot be recovered."""
    return (f"{run_dir}: {damaged.rstrip('.')}. The run's results stand ({layout.METRICS_FILE}, "
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
        history = records.read_history(run_dir)
    except DamagedFile:
        return False
    return len(history) > 0 and int(history["epoch"].max()) == epochs


def last_failure(run_dir: Path) -> str | None:
    """The error of the run's last failed attempt, or None if it has not failed."""
    try:
        failure = records.read_failure(run_dir)
    except DamagedFile:
        return f"unknown error: its {layout.FAILURE_FILE} is damaged"
    return None if failure is None else failure.error


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of atomic writes (io.atomic_path) that a killed process left behind; only
    called under the run's lock, when no writer can be at work."""
    for path in Path(run_dir).rglob(io.TEMPORARY_GLOB):  # the run folder and its state/
        if path.is_file():
            path.unlink()
