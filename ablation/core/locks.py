"""The locks of a results folder: a run's (`RunLock`, `locked`), held while a process trains it, and a
study's report lock (`report_lock`), held while its tables are rebuilt.

`flock` locks die with their process, so a killed worker never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from ablation.core import layout
from ablation.core.errors import RunLocked

PROBE_SECONDS = 1.0  # how long a trainer waits out another process's probe of a run's lock


@contextlib.contextmanager
def locked(run_dir: Path):
    """Hold the run folder's lock while the block runs; RunLocked if another process holds it.
    A run's status is probed by taking its lock for an instant (a study's progress tally does, each
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
    """Hold the study folder's report lock while the block runs, waiting for it: two reports at once
    (workers that end together, `ablation report`) are written one after the other, not into each
    other's files, and the later one reads what the earlier one could not yet see."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(results_dir) / layout.REPORT_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class RunLock:
    """An exclusive lock on a run folder, so that no two processes (shards, machines on a shared
    file system, a second terminal) train the same run."""

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
