"""Small data sets the tests make themselves, the shared real CIFAR-10 subset, the study modules."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import studies

ROOT = Path(__file__).resolve().parents[1]
REAL_SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset.npz"
CLASS_NAMES = ("red", "green", "blue", "grey")
PNG = b"\x89PNG\r\n\x1a\n"  # the first bytes of every PNG file
# Presets over 20M trainable params (tests/test_builders.py checks this list): building one takes seconds,
# so a test that builds one is marked `slow`.
BIG_PRESETS = frozenset({"wrn-22-10", "wrn-28-10", "wrn-28-10-dropout", "wrn-28-12", "wrn-40-8", "imagenet-resnet-34",
                         "imagenet-resnet-50", "imagenet-resnet-101", "imagenet-resnet-152", "imagenet-plain-34",
                         "imagenet-plain-50"})
# Every module of studies/, found by listing the folder: a new study is tested without a list to edit.
STUDY_ENTRY_POINTS = {m.name: importlib.import_module(f"studies.{m.name}")
                      for m in pkgutil.iter_modules(studies.__path__)}


# Presets whose every test takes half a minute here (2 CPU cores), most of it building and tracing
# 300+ layers: make test leaves them to make test-long (CI runs both).
LONG_PRESETS = frozenset({"preact-resnet-164", "preact-resnet-1001", "imagenet-resnet-101", "imagenet-resnet-152"})


def preset_params(names):
    """Preset names as pytest parameters: the big ones marked slow, the deepest long."""
    marks = lambda name: ([pytest.mark.slow, pytest.mark.long] if name in LONG_PRESETS
                          else [pytest.mark.slow] if name in BIG_PRESETS else [])
    return [pytest.param(name, marks=marks(name)) for name in names]


def make_npz(path, *, n_train=256, n_test=64, size=32, seed=0, label_names=True) -> str:
    """An easy 4-class problem: each class tints the image with its own colour, plus noise, so a
    tiny net learns it in a few dozen steps. Returns the `npz:PATH` dataset name."""
    rng = np.random.default_rng(seed)
    tints = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [128, 128, 128]], np.float32)

    def split(n):
        y = rng.integers(0, len(tints), n).astype(np.uint8)
        x = tints[y][:, None, None, :] + rng.normal(0, 40, (n, size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    extra = {"label_names": np.array(CLASS_NAMES)} if label_names else {}
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return f"npz:{path}"


# Graphviz's `dot` draws the diagrams (make setup installs it); without it they are DOT text, and
# the tests of what it draws skip, saying so.
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed: no PNG or "
                                    "SVG diagrams to check (make setup installs it; apt-get install graphviz)")


def diagram_drawn(stem: Path) -> bool:
    """The diagram `stem` (a run's "architecture" or "blocks") as this machine can draw it: a PNG
    where Graphviz is installed, else its DOT text to render later."""
    if shutil.which("dot") is None:
        return stem.with_suffix(".dot").read_text().startswith("digraph")
    return stem.with_suffix(".png").read_bytes()[:8] == PNG


def assert_test_metrics_of(run_dir: Path, metrics) -> None:
    """metrics.json's test accuracy and error are the run's per-class table over the whole test split
    config.json names: the final net read the test split, once, and nothing else."""
    import pandas as pd

    per_class = pd.read_csv(run_dir / "per_class_accuracy.csv")
    config = json.loads((run_dir / "config.json").read_text())
    assert per_class["support"].sum() == config["data"]["num_test"] > 0
    assert metrics.test_accuracy == pytest.approx(per_class["correct"].sum() / per_class["support"].sum())
    assert metrics.test_error == pytest.approx(100 * (1 - metrics.test_accuracy))


def quiet(*_):
    """A `log` that prints nothing."""


def real_subset() -> str:
    if not REAL_SUBSET.exists():
        pytest.skip(f"the real CIFAR-10 subset is not at {REAL_SUBSET} (it lives beside the checkout, not in git)")
    return f"npz:{REAL_SUBSET}"


def run_cli(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`python -m ablation ...` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)
