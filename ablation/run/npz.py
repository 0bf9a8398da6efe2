"""NumPy archives as datasets (`npz:PATH`, the keys of `keras.datasets`), checked before they are
trusted: every member's .npy header is read and checked before any array is decompressed (a 3 MB
archive can hold gigabytes of zeros, a header can claim terabytes), then the pixels' range and the
labels (class indices, not ids: a stray 10**6 would build a net of a million outputs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import lzma
import math
import os
import warnings
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from ablation.core.errors import ConfigError

# An npz holds keras.datasets' arrays, and optionally the class names.
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
LABEL_NAMES = "label_names"
# The .npy header readers by format version: 3.0 differs from 2.0 only in its header's encoding (UTF-8,
# for structured field names), which none of these arrays needs.
NPY_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0,
                      (3, 0): npy_format.read_array_header_2_0}
# What a bad archive raises while it is read: a damaged zip, a truncated or corrupt member (deflate, LZMA;
# bzip2 raises OSError), a compression method or encryption zipfile does not read, numpy's "EOF: reading
# array data" or a header too long to parse safely.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError,
                   RuntimeError)
LISTED = 5  # a warning names this many classes, then says how many more


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """What an archive member's .npy header claims, read before its data is decompressed."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: a lying shape cannot overflow


def read_npz(dataset: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], tuple[str, ...]]:
    """`npz:PATH`'s (images, labels, class names), each split keyed "train" and "test": 8-bit images,
    int64 labels that are class indices, checked; raises ConfigError naming what is wrong."""
    with _archive(dataset) as archive:
        members, _ = _checked(dataset, archive)  # before any array is decompressed
        arrays = {key: _read_npy(archive, info) for key, info in members.items()}
    images, labels = {}, {}
    for split in ("train", "test"):
        y = arrays[f"y_{split}"].reshape(-1)
        if y.min() < 0:
            raise ConfigError(f"dataset {dataset!r}: y_{split} holds the label {y.min()}; expected labels >= 0.")
        images[split] = _pixels(dataset, f"x_{split}", arrays[f"x_{split}"])
        # Non-negative, so uint64 holds any integer label (int64 beside uint64 would compare as floats).
        labels[split] = y.astype(np.uint64)
    names = arrays.get(LABEL_NAMES)
    class_names = _class_names(dataset, labels, names)
    # Every label is below the class count now (at most twice the images without label_names): int64 holds it.
    labels = {split: y.astype(np.int64) for split, y in labels.items()}
    if names is None:
        _check_classes(dataset, labels, len(class_names))
    return images, labels, class_names


def split_sizes(dataset: str) -> tuple[int, int]:
    """(training, test) images of `npz:PATH` from its checked headers alone, nothing decompressed."""
    with _archive(dataset) as archive:
        _, headers = _checked(dataset, archive)
    return headers["x_train"].shape[0], headers["x_test"].shape[0]


@contextlib.contextmanager
def _archive(dataset: str):
    path = dataset[len("npz:"):]
    if not os.path.isfile(path):
        raise ConfigError(f"dataset {dataset!r}: no such file {path!r}.")
    with _readable(dataset, path), zipfile.ZipFile(path) as archive:
        yield archive


def _checked(dataset: str, archive: zipfile.ZipFile) -> tuple[dict[str, zipfile.ZipInfo], dict[str, NpyHeader]]:
    """The archive's members by key and their headers, every header read and checked."""
    members = _npz_members(dataset, archive)
    headers = {key: _npy_header(dataset, archive, info, key) for key, info in members.items()}
    _check_headers(dataset, headers)
    return members, headers


@contextlib.contextmanager
def _readable(dataset: str, path: str):
    """A file that does not read as an npz archive as one line, not a traceback (nor a run to retry)."""
    try:
        yield
    except ConfigError:
        raise
    except NPZ_READ_ERRORS as error:
        if isinstance(error, zipfile.BadZipFile) and _starts_with(path, npy_format.MAGIC_PREFIX):
            raise ConfigError(f"dataset {dataset!r}: a single .npy array, not an .npz archive; expected "
                              f"numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...).") from None
        said = str(error).splitlines()[0] if str(error) else type(error).__name__  # numpy's run over lines
        raise ConfigError(f"dataset {dataset!r}: not a readable .npz archive ({said}).") from None


def _starts_with(path: str, prefix: bytes) -> bool:
    with open(path, "rb") as file:
        return file.read(len(prefix)) == prefix


def _npz_members(dataset: str, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by key, named as numpy.load names them (without .npy); a key held twice
    is refused, since numpy.load would read one of them silently."""
    members = {}
    for info in archive.infolist():
        key = info.filename.removesuffix(".npy")
        if key not in (*NPZ_ARRAYS, LABEL_NAMES):
            continue
        if key in members:
            raise ConfigError(f"dataset {dataset!r}: the archive holds {key} twice ({members[key].filename} and "
                              f"{info.filename}); expected one array per key.")
        members[key] = info
    missing = [key for key in NPZ_ARRAYS if key not in members]
    if missing:
        held = first_few([name.removesuffix(".npy") for name in archive.namelist()[:LISTED]],
                          len(archive.namelist()), ", ") or "nothing"
        raise ConfigError(f"dataset {dataset!r}: missing keys {missing} (it holds {held}); expected x_train, "
                          f"y_train, x_test, y_test (as keras.datasets) and optionally label_names.")
    return members


def _npy_header(dataset: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> NpyHeader:
    """A member's .npy header, read without its data, and checked against the member's size and this
    machine's memory: a header that lies would make numpy.load allocate what it claims."""
    with archive.open(info) as member:
        try:
            version = npy_format.read_magic(member)
        except ValueError:
            version = None
        if version not in NPY_HEADER_READERS:
            raise ConfigError(f"dataset {dataset!r}: {info.filename} is not a .npy array numpy can read "
                              f"({'format version ' + str(version) if version else 'no .npy magic string'}); "
                              f"expected arrays written by numpy.savez.")
        shape, _, dtype = NPY_HEADER_READERS[version](member)
        data_start = member.tell()
    header = NpyHeader(shape, dtype)
    said = f"{key}'s .npy header claims the shape {shape} of {dtype}"
    if dtype.hasobject:
        raise ConfigError(f"dataset {dataset!r}: {key} holds Python objects (dtype {dtype}), which are not "
                          f"unpickled; expected numeric arrays (and strings for label_names).")
    if any(n < 0 for n in shape):
        raise ConfigError(f"dataset {dataset!r}: {said}, a negative size; not a readable .npy array.")
    memory = _memory_bytes()
    if memory is not None and header.nbytes > memory:
        raise ConfigError(f"dataset {dataset!r}: {said}, {_byte_size(header.nbytes)}, more than this machine's "
                          f"{_byte_size(memory)} of memory; expected arrays that fit in memory.")
    held = info.file_size - data_start
    if held != header.nbytes:
        raise ConfigError(f"dataset {dataset!r}: {said} ({header.nbytes:,} bytes), but its member {info.filename} "
                          f"holds {held:,} bytes of data; a damaged or hand-made archive: write it again with "
                          f"numpy.savez.")
    return header


def _check_headers(dataset: str, headers: dict[str, NpyHeader]) -> None:
    """keras.datasets' shapes and dtypes, from the headers alone: (N, H, W, 3) images of a pixel dtype,
    (N,) or (N, 1) integer labels, at least one image, and all of it fitting in memory."""
    memory, total = _memory_bytes(), sum(header.nbytes for header in headers.values())
    if memory is not None and total > memory:
        sizes = ", ".join(f"{key} {_byte_size(header.nbytes)}" for key, header in headers.items())
        raise ConfigError(f"dataset {dataset!r}: its arrays ({sizes}) claim {_byte_size(total)} in all, more than "
                          f"this machine's {_byte_size(memory)} of memory; expected arrays that fit in memory.")
    for split in ("train", "test"):
        x, y = headers[f"x_{split}"], headers[f"y_{split}"]
        if len(x.shape) != 4 or x.shape[-1] != 3:
            raise ConfigError(f"dataset {dataset!r}: x_{split} has shape {x.shape}; expected (N, H, W, 3) images.")
        if 0 in x.shape[1:3]:
            raise ConfigError(f"dataset {dataset!r}: x_{split} has shape {x.shape}, images of no pixels; expected "
                              f"(N, H, W, 3) images with H and W at least 1.")
        n, labels = x.shape[0], y.shape[:1] if y.shape[1:] == (1,) else y.shape
        if labels != (n,):
            raise ConfigError(f"dataset {dataset!r}: y_{split} has shape {labels} for {n} images; "
                              f"expected ({n},) integer labels.")
        if n == 0:
            raise ConfigError(f"dataset {dataset!r}: x_{split} holds no images; expected at least one.")
        if not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"dataset {dataset!r}: y_{split} has dtype {y.dtype}; expected integer labels.")
        _check_pixel_dtype(dataset, f"x_{split}", x.dtype)
    names = headers.get(LABEL_NAMES)
    if names is not None and len(names.shape) != 1:
        raise ConfigError(f"dataset {dataset!r}: label_names has shape {names.shape}; expected (K,) class names, "
                          f"one per class.")


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as member:
        return npy_format.read_array(member, allow_pickle=False)


def _memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say): no array larger can be read.
    Physical, not currently free, memory: the limit is the same on every call."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _byte_size(n: int) -> str:
    """2.79 TiB, 81.9 MiB, 80 B."""
    size, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.3g} {unit}"


def first_few(said: list[str], total: int, separator: str) -> str:
    """The first LISTED of `total` things, then how many more: a warning stays one readable line."""
    return separator.join(said[:LISTED]) + (f"{separator}... and {total - LISTED:,} more" if total > LISTED else "")


# Unsigned integer images wider than 8 bits are scaled by their dtype's range (a 16-bit PNG's 0..65535).
SCALED_DTYPES = (np.uint16, np.uint32)
RARE_CLASS_FRACTION = 0.1  # a class with fewer training images than this fraction of the median class's


def _check_pixel_dtype(dataset: str, name: str, dtype: np.dtype) -> None:
    if dtype == np.uint8 or np.issubdtype(dtype, np.floating) or dtype.type in SCALED_DTYPES:
        return
    raise ConfigError(f"dataset {dataset!r}: {name} has dtype {dtype}; expected uint8 pixels, floats in [0, 1] "
                      f"or [0, 255], or {'/'.join(np.dtype(t).name for t in SCALED_DTYPES)} (scaled by their range).")


def _pixels(dataset: str, name: str, x: np.ndarray) -> np.ndarray:
    """Images as 8-bit pixels: uint8 as they are; floats in [0, 1] or [0, 255]; uint16 and uint32 scaled
    by their range, saying so; anything else (signed integers, normalised floats) refused in one line."""
    _check_pixel_dtype(dataset, name, x.dtype)
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise ConfigError(f"dataset {dataset!r}: {name} holds non-finite pixels (NaN or inf); expected "
                              f"finite values in [0, 255] (or [0, 1]).")
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise ConfigError(f"dataset {dataset!r}: {name} holds pixel values from {low:g} to {high:g}; expected "
                              f"raw pixels in [0, 255] or [0, 1] (not normalised ones: runs normalise by the "
                              f"training split's statistics).")
        return np.clip(x * 255.0 if high <= 1.0 else x, 0, 255).astype(np.uint8)
    # uint16 or uint32, in either byte order (dtype.type: a big-endian >u2 is a uint16 too)
    top = np.iinfo(x.dtype).max
    warnings.warn(f"dataset {dataset!r}: {name} is {x.dtype.type.__name__}: its pixels are scaled from 0..{top} "
                  f"to 0..255", stacklevel=3)
    return ((x.astype(np.uint64) * 255 + top // 2) // top).astype(np.uint8)


def _class_names(dataset: str, labels: dict[str, np.ndarray], names: np.ndarray | None) -> tuple[str, ...]:
    """label_names, or without them the classes 0..max label, checked against the labels: at least two
    classes trained on; every label named; without names, labels that are class indices, not ids."""
    present = np.unique(labels["train"])
    if len(present) < 2:
        raise ConfigError(f"dataset {dataset!r}: y_train holds only the label {present[0]}, one class; expected "
                          f"at least two classes.")
    occurring = np.union1d(present, labels["test"])  # sorted: np.unique allocates by the count, not the max
    top = int(occurring[-1])
    if names is not None:
        class_names = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist())
        if len(class_names) <= top:
            raise ConfigError(f"dataset {dataset!r}: label_names has {len(class_names)} names but labels go up to "
                              f"{top}.")
        _check_distinct(dataset, class_names)
        return class_names
    # Without names the net gets max label + 1 outputs: labels that leave most of 0..max empty are ids
    # (or a stray 10**6), not class indices, and would build a net of a million outputs; refused before
    # anything is allocated by the max label. Half still lets a few missing classes through to a warning.
    if 2 * len(occurring) < top + 1:
        raise ConfigError(f"dataset {dataset!r}: labels go up to {top} but only {len(occurring)} distinct labels "
                          f"occur ({top + 1 - len(occurring):,} of the {top + 1:,} classes 0..{top} have no image); "
                          f"expected consecutive labels 0..K-1, or label_names naming every class.")
    return tuple(str(i) for i in range(top + 1))


def _check_distinct(dataset: str, class_names: tuple[str, ...]) -> None:
    # Two classes of one name would be one row each in every per-class table, told apart by nothing.
    first = {}
    for index, name in enumerate(class_names):
        if name in first:
            raise ConfigError(f"dataset {dataset!r}: label_names names {name!r} twice (classes {first[name]} and "
                              f"{index}); expected one name per class.")
        first[name] = index


def _check_classes(dataset: str, labels: dict[str, np.ndarray], num_classes: int) -> None:
    """Without label_names the classes are 0..max label: one line about any class that looks like a
    stray label (far fewer training images than the others) or that the test split cannot measure."""
    train = np.bincount(labels["train"], minlength=num_classes)
    test = np.bincount(labels["test"], minlength=num_classes)
    typical = float(np.median(train))
    flagged = np.flatnonzero((train < RARE_CLASS_FRACTION * typical) | (test == 0))
    if not len(flagged):
        return
    said = first_few([f"class {c}: {train[c]} training and {test[c]} test images" for c in flagged[:LISTED]],
                      len(flagged), "; ")
    warnings.warn(f"dataset {dataset!r}: without label_names the labels make {num_classes} classes (0..{num_classes - 1}), "
                  f"and some have far fewer training images than the median class's {typical:g} or no test images "
                  f"({said}): a stray label? The net gets {num_classes} outputs; give label_names, or fix the labels, if "
                  f"that is not what you meant.", stacklevel=3)
