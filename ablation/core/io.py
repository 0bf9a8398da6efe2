"""Atomic files: everything a run or a study writes appears whole or not at all.

Each writer writes a temporary file beside the target and renames it over the target with
`os.replace`, which is atomic on POSIX file systems: a crash leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from ablation.core.errors import DamagedFile

# The temporary files of atomic_path: only a killed process leaves one behind.
TEMPORARY_GLOB = ".*.tmp-*"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path with the target's suffix (Keras and matplotlib look at it); on success
    rename it over `path`, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary directory beside `path`; on success put it in place of `path` (two
    renames: a reader sees the old tree or the new one, never a half-written one; a crash between
    them leaves the old tree beside, under a temporary name), on failure remove it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def json_roundtrip(data):
    """`data` as it reads back from a JSON file (tuples become lists), for comparing with one."""
    return json.loads(json.dumps(data, default=_jsonable))


def read_json(path, default=None):
    """The file's JSON, `default` if there is no such file, DamagedFile if it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFile(path, f"{type(error).__name__}: {error}") from None


def write_csv(path, frame) -> None:
    """A pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _jsonable(value):
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
