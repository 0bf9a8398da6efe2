"""Saved nets open with Keras alone: best.keras and final.keras hold Keras's own layers and no
optimizer, and a clean interpreter (no project on its path) loads them and gets the run's results."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

from ablation.run import distribute
from ablation.run.config import RunConfig
from ablation.run.training import train
from builders import build
from builders.portable import portable
from tests.helpers import quiet

# Run by `python -I`: no PYTHONPATH, no current folder, no user site; only the venv's Keras and TensorFlow.
CLEAN_PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    for package in ("builders", "ablation"):  # the check is only worth something if our code is not there
        try:
            __import__(package)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{package} is importable")
    model = keras.saving.load_model(sys.argv[1])  # default arguments: compile=True, safe_mode=True
    assert getattr(model, "optimizer", None) is None, model.optimizer  # not compiled: nothing of ours to find
    images = np.load(sys.argv[2])
    np.save(sys.argv[3], np.asarray(model.predict(images, verbose=0), np.float32))
    """)


def predict_in_a_clean_interpreter(model_file, images, tmp_path) -> np.ndarray:
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-I", "-c", CLEAN_PREDICT, str(model_file), str(tmp_path / "images.npy"),
                           str(tmp_path / "logits.npy")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "logits.npy")


def registered_names(model_file) -> set:
    """Every class a .keras file names by a registered name (a class of a package, not Keras's)."""
    with zipfile.ZipFile(model_file) as archive:
        text = archive.read("config.json").decode()
    found = set()

    def visit(node):
        if isinstance(node, dict):
            if node.get("registered_name") and node.get("module", "").split(".")[0] not in ("keras", ""):
                found.add(node["registered_name"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(json.loads(text))
    return found


@pytest.mark.parametrize("preset,overrides,precision", [
    ("resnet-20", {"depth": 8}, "float32"),  # option A shortcuts: ZeroPadShortcut
    ("wrn-10-1", {"block_type": "B(1,3,1)", "dropout_rate": 0.3}, "float32"),
    ("resnet-20", {"depth": 8}, "mixed_bfloat16"),
])
def test_a_portable_net_computes_what_ours_computes_in_a_clean_interpreter(preset, overrides, precision, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 32, 32, 3)).astype(np.float32)
    with distribute.precision_policy(precision):
        model = build(preset, **overrides)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        model.fit(images, rng.integers(0, 10, 8), epochs=2, batch_size=4, verbose=0)  # moving statistics move
        ours = np.asarray(model.predict(images, verbose=0), np.float32)
        portable(model).save(tmp_path / "net.keras")
    assert registered_names(tmp_path / "net.keras") == set()
    logits = predict_in_a_clean_interpreter(tmp_path / "net.keras", images, tmp_path)
    tolerance = 1e-4 if precision == "float32" else 5e-2  # bfloat16: 8 bits of mantissa, other kernels
    np.testing.assert_allclose(logits, ours, atol=tolerance * np.abs(ours).max(), rtol=0)


def test_a_runs_best_and_final_keras_load_with_keras_alone_and_give_its_test_results(easy, tmp_path):
    config = RunConfig(dataset=easy, model="resnet-20", model_overrides={"depth": 8},
                       recipe_overrides={"epochs": 2, "batch_size": 32}, max_steps_per_epoch=3)
    metrics = train(config, tmp_path / "run", log=quiet)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    archive = np.load(easy.removeprefix("npz:"))
    images = (archive["x_test"].astype(np.float32) / 255.0 - recorded["mean"]) / recorded["std"]
    logits = predict_in_a_clean_interpreter(tmp_path / "run" / "final.keras", images.astype(np.float32), tmp_path)
    # the run's test accuracy and loss are those of its final weights: the file's logits give them again
    assert (logits.argmax(axis=1) == archive["y_test"]).mean() == pytest.approx(metrics.test_accuracy, abs=1e-9)
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(logits)), archive["y_test"]].mean()
    assert loss == pytest.approx(metrics.test_loss, rel=1e-4)
    for name in ("best.keras", "final.keras"):
        assert registered_names(tmp_path / "run" / name) == set(), name
    best = predict_in_a_clean_interpreter(tmp_path / "run" / "best.keras", images.astype(np.float32), tmp_path)
    assert best.shape == logits.shape and np.isfinite(best).all()
