"""The training engine: data pipelines, recipes, strategies, one run from the command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ablation.cli import main
from ablation.core import layout
from ablation.core.errors import EXIT_LOCKED, ConfigError, RunFailed
from ablation.core.locks import RunLock
from ablation.core.run_folder import damaged_files
from ablation.core.run_folder import status as run_status
from ablation.run import augment, callbacks, data
from ablation.run.config import RunConfig
from ablation.run.recipes import RECIPES, StepDecay, get_recipe
from ablation.run.setup import set_up
from ablation.run.training import train
from builders import build, get_preset
from tests.helpers import CLASS_NAMES, ROOT, assert_test_metrics_of, make_npz, quiet, real_subset, run_cli

TINY = dict(model="wrn-10-1", recipe_overrides={"epochs": 2, "batch_size": 32})


# ----------------------------------------------------------------------------------------------
# Recipes


def test_wrn_schedule_drops_at_epochs_60_120_160_of_200():
    steps = 390  # 50,000 / 128, last partial batch dropped
    lr = get_recipe("wrn").schedule(steps)
    at = lambda epoch, offset=0: float(lr(epoch * steps + offset))
    assert at(0) == pytest.approx(0.1) and at(60, -1) == pytest.approx(0.1)
    assert at(60) == pytest.approx(0.02) and at(120, -1) == pytest.approx(0.02)
    assert at(120) == pytest.approx(0.004) and at(160) == pytest.approx(0.0008)
    assert at(199, steps - 1) == pytest.approx(0.0008)


def test_he_schedule_drops_at_32k_and_48k_iterations_with_resnet_110_warmup():
    steps = 45_000 // 128  # 351: 182 epochs are 63,882 iterations, He et al.'s 64k
    recipe = get_recipe("he").replace(**get_preset("resnet-110").recipe_overrides)
    lr = recipe.schedule(steps)
    boundaries = recipe.boundaries(steps)
    assert boundaries == [91 * 351, 136 * 351]  # 31,941 and 47,736: within an epoch of 32k and 48k
    assert float(lr(399)) == pytest.approx(0.01) and float(lr(400)) == pytest.approx(0.1)
    assert float(lr(boundaries[0] - 1)) == pytest.approx(0.1) and float(lr(boundaries[0])) == pytest.approx(0.01)
    assert float(lr(boundaries[1])) == pytest.approx(0.001)
    assert get_recipe("he").warmup_steps == 0  # only ResNet-110 warms up


def test_recipes_are_the_papers():
    wrn, he, adam = RECIPES["wrn"], RECIPES["he"], RECIPES["adam"]
    assert (wrn.learning_rate, wrn.momentum, wrn.nesterov, wrn.weight_decay, wrn.batch_size, wrn.epochs) == \
        (0.1, 0.9, True, 5e-4, 128, 200)
    assert (he.learning_rate, he.momentum, he.weight_decay, he.lr_decay) == (0.1, 0.9, 1e-4, 0.1)
    assert isinstance(adam.make_optimizer(10), keras.optimizers.Adam) and adam.learning_rate == 1e-3
    sgd = wrn.make_optimizer(10)
    # Coupled (PyTorch's) decay, not Keras's decoupled weight_decay.
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.weight_decay is None
    assert sgd.coupled_weight_decay == 5e-4 and he.make_optimizer(10).coupled_weight_decay == 1e-4


def test_schedule_survives_a_keras_save(tmp_path):
    schedule = StepDecay(0.1, [10, 20], 0.2, warmup_steps=3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # compiled: the optimizer and its schedule
    restored = keras.optimizers.schedules.deserialize(loaded.optimizer.get_config()["learning_rate"])
    assert isinstance(restored, StepDecay) and restored is not schedule
    assert [float(restored(s)) for s in (0, 3, 10, 20)] == pytest.approx([0.01, 0.1, 0.02, 0.004])


@pytest.mark.parametrize("recipe", ["wrn", "adam"])
def test_weight_decay_is_coupled_on_every_trainable_weight(recipe):
    # PyTorch's SGD(weight_decay=wd) and Adam(weight_decay=wd) add wd * w to every parameter's
    # gradient before the update. From a zero gradient, one step must therefore move every
    # trainable weight (convs, BN gamma and beta, the dense kernel and bias) exactly as a
    # gradient of wd * w would, and no weight may be left out.
    wd = 0.05
    model = build("wrn-10-1")
    assert {"gamma", "beta", "bias"} <= {v.name for v in model.trainable_variables}
    decayed = get_recipe(recipe).replace(weight_decay=wd, lr_milestones=()).make_optimizer(10)
    plain = get_recipe(recipe).replace(weight_decay=0.0, lr_milestones=()).make_optimizer(10)
    before = [v.numpy() for v in model.trainable_variables]
    decayed.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    after_decay = [v.numpy() for v in model.trainable_variables]
    for variable, value in zip(model.trainable_variables, before, strict=True):
        variable.assign(value)
    plain.apply_gradients([(tf.constant(wd * value), v) for v, value in zip(model.trainable_variables, before, strict=True)])
    for variable, expected in zip(model.trainable_variables, after_decay, strict=True):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-9, err_msg=variable.path)
    assert sum(np.abs(a - b).sum() for a, b in zip(after_decay, before, strict=True)) > 0


@pytest.mark.slow
def test_training_steps_match_pytorch_sgd_with_coupled_weight_decay():
    # The whole recipe against the reference framework: the same weights and batches, three
    # steps of SGD 0.9 Nesterov with coupled weight decay (PyTorch's) and BN momentum 0.1
    # (PyTorch's convention); afterwards both nets must compute the same logits. The decay is
    # 100x the recipe's so that three steps of a wrong one would show.
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    from tests.reference_nets import TorchOps, params_from_keras, wrn_forward

    rng = np.random.default_rng(0)
    model = build("wrn-10-1", widen_factor=2)
    params = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params_from_keras(model).items()}
    trainable = [v.requires_grad_() for k, v in params.items() if "running" not in k]
    recipe = get_recipe("wrn").replace(weight_decay=0.05)
    model.compile(optimizer=recipe.make_optimizer(100), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sgd = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    batches = [(rng.normal(size=(16, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 16)) for _ in range(3)]
    for x, y in batches:
        model.train_on_batch(x, y)
        sgd.zero_grad()
        logits = wrn_forward(TorchOps(training=True), params, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                             depth=10, width=2)
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
        sgd.step()
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        theirs = wrn_forward(TorchOps(), params, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), depth=10, width=2)
    np.testing.assert_allclose(model(x, training=False).numpy(), theirs.numpy(), rtol=2e-3, atol=2e-3)


# ----------------------------------------------------------------------------------------------
# Data


def test_npz_pipeline_split_normalisation_and_batches(easy):
    source = data.open_source(easy)
    assert source.class_names == CLASS_NAMES
    pipeline = data.make_pipeline(source, image_shape=(32, 32, 3), batch_size=32, seed=1)
    assert (pipeline.num_train, pipeline.num_validation, pipeline.num_test) == (230, 26, 64)
    assert pipeline.steps_per_epoch == 230 // 32  # the last partial batch is dropped
    images = np.concatenate([x.numpy() for x, _ in pipeline.train_images.batch(512)]).astype(np.float64) / 255
    np.testing.assert_allclose(pipeline.mean, images.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(pipeline.std, images.std(axis=(0, 1, 2)), rtol=1e-5)
    batches = list(pipeline.train_batches(0, 2))
    assert len(batches) == 2 * pipeline.steps_per_epoch
    x, y = batches[0]
    assert x.shape == (32, 32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int64
    # Normalised with the training statistics: about zero mean, unit variance.
    assert abs(float(tf.reduce_mean(x))) < 0.5 and 0.5 < float(tf.math.reduce_std(x)) < 1.5


def test_same_seed_same_order_and_resume_sees_the_same_batches(easy):
    make = lambda seed: data.make_pipeline(data.open_source(easy), image_shape=(32, 32, 3), batch_size=32, seed=seed)
    a, b, other = make(7), make(7), make(8)
    first = [y.numpy() for _, y in a.train_batches(0, 3)]
    assert all((p == q).all() for p, q in zip(first, [y.numpy() for _, y in b.train_batches(0, 3)], strict=True))
    assert not all((p == q).all() for p, q in zip(first, [y.numpy() for _, y in other.train_batches(0, 3)], strict=True))
    steps = a.steps_per_epoch
    assert not all((p == q).all() for p, q in zip(first[:steps], first[steps:2 * steps], strict=True))  # reshuffled per epoch
    # Resuming at epoch 2 yields exactly the images (augmentation included) of the full run's epoch 2.
    full = [x.numpy() for x, _ in a.train_batches(0, 3)][2 * steps:]
    resumed = [x.numpy() for x, _ in b.train_batches(2, 3)]
    assert len(resumed) == steps and all(np.array_equal(p, q) for p, q in zip(full, resumed, strict=True))


def test_augmentation_is_reflect_pad_crop_and_flip_per_image_of_a_batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    out = augment.pad_crop_flip(tf.constant(images), tf.constant([7, 0], tf.int64)).numpy()
    assert out.shape == images.shape and out.dtype == np.uint8
    # Each output is a 32x32 window of its own reflect-padded image, maybe mirrored: which one
    # tells its offsets and flip, whose distribution must be the papers' (uniform over the 9 x 9
    # offsets, a flip with probability 1/2, independently per image).
    offsets, flips = [], []
    for image, o in zip(images, out, strict=True):
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
        found = [(i, j, f) for i in range(9) for j in range(9) for f in (0, 1)
                 if np.array_equal(padded[i:i + 32, j:j + 32][:, ::-1 if f else 1], o)]
        assert found, "an output that is no window of its padded image"
        offsets.append(found[0][:2])
        flips.append(found[0][2])
    rows, columns = np.array(offsets).T
    assert set(rows) == set(columns) == set(range(9))
    assert abs(np.mean(rows) - 4) < 0.5 and abs(np.mean(columns) - 4) < 0.5
    assert 0.4 < np.mean(flips) < 0.6
    # The same seeds give the same batch; others another.
    np.testing.assert_array_equal(augment.pad_crop_flip(tf.constant(images), tf.constant([7, 0], tf.int64)).numpy(), out)
    assert not np.array_equal(augment.pad_crop_flip(tf.constant(images), tf.constant([7, 1], tf.int64)).numpy(), out)


@pytest.mark.slow
def test_tfds_path_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=80):
        metrics = train(RunConfig(dataset="cifar10", **TINY), tmp_path / "run", log=quiet)
        names = list(tfds.builder("cifar10").info.features["label"].names)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(names) == 10 and config["data"]["class_names"] == names  # from tfds metadata
    assert config["data"]["num_train"] + config["data"]["num_validation"] == 80
    assert_test_metrics_of(tmp_path / "run", metrics)
    assert metrics.epochs == 2


class TinyColours(tfds.core.GeneratorBasedBuilder):
    """A real tensorflow-datasets builder, prepared offline: the path `cifar10` takes on a fresh machine."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(32, 32, 3)),
                                                 "label": tfds.features.ClassLabel(names=list(CLASS_NAMES))}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(96, seed=0), "test": self._generate_examples(16, seed=1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            label = int(rng.integers(len(CLASS_NAMES)))
            yield i, {"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "label": label}


@pytest.mark.slow
def test_a_dataset_prepared_by_tensorflow_datasets_trains_by_name_from_its_data_dir(tmp_path):
    # download_and_prepare() is the code tfds.load("cifar10") runs on a fresh machine (it needs
    # importlib_resources); the command line then reads the prepared files without the class.
    TinyColours(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    result = run_cli("ablation", "train", "--model", "wrn-10-1", "--dataset", "tiny_colours", "--data-dir",
                     str(tmp_path / "tfds"), "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["class_names"] == list(CLASS_NAMES) and config["data"]["num_test"] == 16


@pytest.mark.slow
def test_a_tfds_dataset_that_is_not_prepared_fails_fast_offline_saying_how_to_prepare_it(tmp_path):
    # This machine has no internet: the download fails, after two quick retries, not ten slow ones.
    start = time.perf_counter()
    result = run_cli("ablation", "train", "--model", "wrn-10-1", "--dataset", "cifar10", "--data-dir",
                     str(tmp_path / "empty"), "--out", str(tmp_path / "run"), timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert last.startswith("error: dataset 'cifar10' could not be loaded") and "--data-dir" in last and "npz:" in last
    assert time.perf_counter() - start < 60


def test_tfds_images_of_another_size_are_resized_to_the_net(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        source = data.open_source("cats_vs_dogs")
        pipeline = data.make_pipeline(source, image_shape=(64, 64, 3), batch_size=4, seed=0)
    assert source.class_names == ("cat", "dog")
    x, _ = next(iter(pipeline.train_batches(0, 1)))
    assert x.shape == (4, 64, 64, 3)


# ----------------------------------------------------------------------------------------------
# One run


@pytest.mark.slow
def test_cli_run_writes_a_complete_run_folder(easy, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "wrn-10-1", "--dataset", easy, "--epochs", "3", "--batch-size", "32",
            "--dropout-rate", "0.3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("epoch ") >= 3 and "test accuracy" in printed
    for name in ("config.json", "history.csv", "training_history.json", "metrics.json", "per_class_accuracy.csv",
                 "confusion_matrix.png", "learning_curves.png", "best.keras", "final.keras", "checksums.json"):
        assert (out / name).stat().st_size > 0, name
    # checksums.json holds the SHA-256 of each saved net as it is on disk, and the run's own check finds
    # nothing wrong (its {} alone would not do: it is {} without checksums.json too).
    recorded = (out / "checksums.json").read_text()
    for name in layout.CHECKED_FILES:
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() in recorded, name
    assert damaged_files(out) == {}
    assert any((out / "tensorboard").rglob("*tfevents*"))
    assert not (out / "state").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["model_kwargs"]["dropout_rate"] == 0.3
    assert config["environment"]["keras"] == keras.__version__ and config["environment"]["replicas"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", "trainable_params", "total_params",
                "macs", "total_epoch_seconds", "images_per_second"):
        assert metrics[key] is not None, key
    assert metrics["trainable_params"] == 77_850 - (64 + 1) * (10 - 4)  # WRN-10-1 with a 4-class head
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(history)
    assert metrics["test_accuracy"] > 0.5  # the easy problem is learnt (chance is 0.25)
    per_class = pd.read_csv(out / "per_class_accuracy.csv")
    assert list(per_class["class"]) == list(CLASS_NAMES) and per_class["support"].sum() == 64
    # The best checkpoint is a loadable model.
    assert keras.saving.load_model(out / "best.keras").output.shape == (None, 4)

    # Again: nothing to do, and it says so.
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert run_status(out) == "done"


@pytest.mark.slow
def test_a_different_config_in_the_same_folder_is_refused(easy, tmp_path, capsys):
    out = tmp_path / "run"
    train(RunConfig(dataset=easy, **{**TINY, "recipe_overrides": {"epochs": 1, "batch_size": 32}}), out, log=quiet)
    code = main(["train", "--model", "wrn-10-1", "--dataset", easy, "--epochs", "2", "--batch-size", "32",
                 "--out", str(out)])
    assert code == 2 and "holds a different run" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_net_learns_the_real_cifar_subset(tmp_path):
    dataset = real_subset()
    metrics = train(RunConfig(model="wrn-10-1", dataset=dataset, recipe_overrides={"epochs": 2}), tmp_path, log=quiet)
    # Two epochs of WRN-10-1 on 4,577 real images: well above chance (0.10) on the 1,017 test images.
    assert metrics.test_accuracy > 0.2


@pytest.mark.slow
def test_mirrored_training_on_two_logical_cpus_matches_one_device(easy, tmp_path):
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest.py sets up two logical CPUs"
    results = {}
    for strategy in ("one_device", "mirrored"):
        config = RunConfig(dataset=easy, strategy=strategy, model="wrn-10-1",
                           recipe_overrides={"epochs": 3, "batch_size": 32})
        results[strategy] = train(config, tmp_path / strategy, log=quiet)
    environment = json.loads((tmp_path / "mirrored" / "config.json").read_text())["environment"]
    assert environment["strategy"] == "MirroredStrategy" and environment["replicas"] == 2
    # The global batch is split, so both see the same 32 images a step and learn the same problem.
    for metrics in results.values():
        assert metrics.test_accuracy > 0.5
    assert abs(results["mirrored"].test_accuracy - results["one_device"].test_accuracy) < 0.25


@pytest.mark.slow
def test_one_process_trains_mirrored_runs_of_different_nets_one_after_the_other(easy, tmp_path):
    # As a study with --strategy mirrored does. A fresh MirroredStrategy per run restarted the
    # collective-op keys, and the second net's first all-reduce failed ("Shape mismatch").
    for name, overrides in (("a", {}), ("b", {"block_type": "B(1,3,1)"})):
        config = RunConfig(dataset=easy, strategy="mirrored", model="wrn-10-1", model_overrides=overrides,
                           recipe_overrides={"epochs": 1, "batch_size": 32}, max_steps_per_epoch=2)
        assert train(config, tmp_path / name, log=quiet).epochs == 1


@pytest.mark.slow
def test_mixed_precision_keeps_float32_logits_and_scales_the_loss(easy, tmp_path):
    config = RunConfig(dataset=easy, precision="mixed_float16", model="wrn-10-1",
                       recipe_overrides={"epochs": 1, "batch_size": 32}, max_steps_per_epoch=2)
    train(config, tmp_path, log=quiet)
    model = keras.saving.load_model(tmp_path / "final.keras")
    assert model.get_layer("group1_block1_conv1").dtype_policy.name == "mixed_float16"
    assert model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["environment"]["dtype_policy"] == "mixed_float16"
    # The saved nets hold no optimizer (issue 24: they load with Keras alone); the run's optimizer is
    # the one its set-up compiles, as train's does: Keras wraps the recipe's optimizer in dynamic loss
    # scaling, the loss multiplied by a scale (2**15 at the start, halved at each overflow) before the
    # gradients are taken.
    with set_up(config) as run:
        model = run.compile(run.build())
        model.fit(run.pipeline.train_batches(0, 1), epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
        optimizer = model.optimizer
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(optimizer.inner_optimizer, type(get_recipe("wrn").make_optimizer(1)))
        assert float(optimizer.scale_loss(1.0)) == float(optimizer.dynamic_scale.numpy()) >= 2.0


@pytest.mark.slow
def test_a_failed_best_checkpoint_save_loses_no_epoch(easy, tmp_path):
    # Deterministically what a kill or a full disk between an epoch's writes did: the state was
    # saved first, so the retry resumed after the epoch whose history row was never written.
    out = tmp_path / "run"
    (out / "best.keras").mkdir(parents=True)  # the first save of best.keras fails
    config = RunConfig(dataset=easy, model="wrn-10-1", recipe_overrides={"epochs": 3, "batch_size": 32},
                       max_steps_per_epoch=2)
    with pytest.raises(RunFailed, match="best.keras"):
        train(config, out, log=quiet)
    (out / "best.keras").rmdir()
    (out / ".best.tmp-99999.keras").write_bytes(b"left by a killed process")
    metrics = train(config, out, log=quiet)
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2, 3] and metrics.epochs == 3
    assert not list(out.glob(".*.tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("damaged,expected", [
    ("state/epoch-0001.weights.h5", "the state checkpoint epoch-0001.weights.h5 is damaged"),
    ("history.csv", "history.csv is damaged"),
])
def test_a_damaged_checkpoint_or_history_restarts_the_run_saying_so(easy, tmp_path, damaged, expected):
    out = tmp_path / "run"
    (out / "state").mkdir(parents=True)
    (out / "state" / "epoch-0001.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (out / "history.csv").write_text("epoch,loss\n1,0.5\n3,0.4\n")  # a gap and missing columns
    config = RunConfig(dataset=easy, model="wrn-10-1", recipe_overrides={"epochs": 2, "batch_size": 32},
                       max_steps_per_epoch=2)
    if damaged == "history.csv":  # only the history is at fault
        (out / "state" / "epoch-0001.weights.h5").unlink()
    lines = []
    assert train(config, out, log=lines.append).epochs == 2
    assert any(expected in line and "restarting the run from its first epoch" in line for line in lines), lines
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]


@pytest.mark.slow
def test_a_full_disk_fails_the_run_cleanly_before_its_checkpoints(easy, tmp_path, monkeypatch):
    # A simulated full disk: 1 MB free. The HDF5 writer crashed the process there; now the run
    # fails before writing, names the folder and the space needed, and keeps what is finished.
    out = tmp_path / "run"
    config = RunConfig(dataset=easy, model="wrn-10-1", recipe_overrides={"epochs": 2, "batch_size": 32},
                       max_steps_per_epoch=2)
    real = callbacks.shutil.disk_usage
    monkeypatch.setattr(callbacks.shutil, "disk_usage", lambda path: real(path)._replace(free=2**20))
    with pytest.raises(RunFailed, match=r"has 1 MB free and this epoch's checkpoints need about \d+ MB"):
        train(config, out, log=quiet)
    assert not (out / "state").exists() and not (out / "best.keras").exists()
    assert "NotEnoughSpace" in json.loads((out / "failure.json").read_text())["error"]
    monkeypatch.undo()
    assert train(config, out, log=quiet).epochs == 2


def test_a_run_folder_locked_by_another_trainer_is_refused_in_one_line(easy, tmp_path, capsys):
    held = RunLock(tmp_path / "run")
    assert held.acquire()  # a second open file, as another process would hold it
    try:
        code = main(["train", "--model", "wrn-10-1", "--dataset", easy, "--out", str(tmp_path / "run")])
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == EXIT_LOCKED == 75 and err.count("\n") == 1 and "is being trained by another process" in err
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.slow
def test_two_trainers_on_one_folder_train_it_once(easy, tmp_path):
    command = [sys.executable, "-m", "ablation", "train", "--model", "wrn-10-1", "--dataset", easy, "--epochs", "2",
               "--batch-size", "32", "--max-steps-per-epoch", "3", "--out", str(tmp_path / "run")]
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in processes]
    trained = [out for code, out, _ in results if code == 0 and "epoch 1/2" in out]
    refused = [err for code, _, err in results if code == EXIT_LOCKED]
    # One trains; the other finds the folder locked, or (started late) finished: never both train.
    assert len(trained) == 1 and sorted(code for code, *_ in results) in ([0, 0], [0, EXIT_LOCKED]), results
    assert all("is being trained by another process" in err for err in refused)
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [1, 2]


@pytest.mark.slow
def test_resume_after_the_process_is_killed_mid_run(easy, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "ablation", "train", "--model", "wrn-10-1", "--dataset", easy,
               "--epochs", "6", "--batch-size", "16", "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (out / "history.csv").exists() or len(pd.read_csv(out / "history.csv")) < 2:
        assert process.poll() is None and time.time() < deadline, "the first attempt ended before 2 epochs"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run_status(out) == "partial"
    finished = len(pd.read_csv(out / "history.csv"))

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming after epoch" in again.stdout
    resumed_from = int(again.stdout.split("resuming after epoch ")[1].split()[0])
    assert resumed_from >= 1 and resumed_from <= finished
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert run_status(out) == "done"


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the value, exit status 2, no traceback


def _npy(array=None, *, header=None, data=b""):
    """A .npy file's bytes: `array` as numpy.save writes it, or a hand-made `header` claiming what it likes
    before `data`."""
    out = io.BytesIO()
    if header is None:
        np.save(out, array, allow_pickle=True)
    else:
        np.lib.format.write_array_header_2_0(out, header)
        out.write(data)
    return out.getvalue()


def _write_zip(path, members, method=zipfile.ZIP_DEFLATED):
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", method) as archive:
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name": the point of one of them
        for name, blob in members:
            archive.writestr(name, blob)


def _hostile_npz(path, kind):
    """An archive numpy.savez would not write: a header that lies, a member that is no array, a key twice, a .npy."""
    images, labels = np.zeros((8, 32, 32, 3), np.uint8), np.array([0, 1] * 4)
    fine = [("y_train.npy", _npy(labels)), ("x_test.npy", _npy(images[:4])), ("y_test.npy", _npy(labels[:4]))]
    if kind == "huge-header":  # 10**9 CIFAR images: 2.79 TiB claimed in a few hundred bytes
        header = {"descr": "|u1", "fortran_order": False, "shape": (10**9, 32, 32, 3)}
        _write_zip(path, [("x_train.npy", _npy(header=header, data=bytes(100))), *fine])
    elif kind == "lying-header":  # claims 8 images, holds 16: numpy.load would read the first 8 silently
        header = {"descr": "|u1", "fortran_order": False, "shape": (8, 32, 32, 3)}
        _write_zip(path, [("x_train.npy", _npy(header=header, data=bytes(16 * 32 * 32 * 3))), *fine])
    elif kind == "not-npy":
        _write_zip(path, [("x_train.npy", b"not an array"), *fine])
    elif kind == "twice":
        _write_zip(path, [("x_train.npy", _npy(images)), *fine, ("x_train.npy", _npy(images[:3]))])
    elif kind == "npy-file":  # one array under an .npz name
        path.write_bytes(_npy(images))
    elif kind == "long-header":  # longer than numpy parses safely: its error runs over three lines
        header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (8, 32, 32, 3), " + b" " * 20_000 + b"}\n"
        member = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + images.tobytes()
        _write_zip(path, [("x_train.npy", member), *fine])
    elif kind in ("corrupt-deflate", "corrupt-lzma"):  # a sound zip whose x_train stream is damaged at its start
        method = zipfile.ZIP_DEFLATED if kind == "corrupt-deflate" else zipfile.ZIP_LZMA
        _write_zip(path, [("x_train.npy", _npy(images)), *fine], method)
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            local = archive.getinfo("x_train.npy").header_offset  # its local header: 30 bytes, name, extra
        start = (local + 30 + int.from_bytes(raw[local + 26:local + 28], "little")
                 + int.from_bytes(raw[local + 28:local + 30], "little"))
        if kind == "corrupt-deflate":
            raw[start] = 0xFF  # a reserved deflate block type
        else:
            raw[start + 4:start + 24] = b"\x00\xff" * 10  # past zipfile's LZMA header, into the stream
        path.write_bytes(bytes(raw))


HOSTILE_NPZ = ("huge-header", "lying-header", "not-npy", "twice", "npy-file", "long-header", "corrupt-deflate",
               "corrupt-lzma")


def _bad_npz(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    if kind == "corrupt":
        path.write_bytes(b"this is not a zip archive")
    elif kind in HOSTILE_NPZ:
        _hostile_npz(path, kind)
    elif kind == "not-hwc3":
        np.savez(path, x_train=np.zeros((8, 32, 32), np.uint8), y_train=np.zeros(8, np.uint8),
                 x_test=np.zeros((4, 32, 32), np.uint8), y_test=np.zeros(4, np.uint8))
    elif kind == "labels":
        np.savez(path, x_train=np.zeros((8, 32, 32, 3), np.uint8), y_train=np.zeros(5, np.uint8),
                 x_test=np.zeros((4, 32, 32, 3), np.uint8), y_test=np.zeros(4, np.uint8))
    elif kind == "keys":
        np.savez(path, images=np.zeros((8, 32, 32, 3), np.uint8))
    else:  # sound arrays but for their labels, pixels or names: one class, NaN pixels, a negative label, ...
        x_train, y_train = np.zeros((8, 32, 32, 3), np.float32), np.array([0, 1] * 4)
        if kind == "one-class":
            y_train = np.zeros(8, np.int64)
        elif kind == "nan-pixels":
            x_train[0, 0, 0, 0] = np.nan
        elif kind == "negative-label":
            y_train[3] = -1
        elif kind == "empty":
            x_train, y_train = x_train[:0], y_train[:0]
        elif kind == "int16-pixels":
            x_train = np.full((8, 32, 32, 3), -3, np.int16)
        elif kind == "normalised-pixels":
            x_train = np.linspace(-2.0, 2.0, x_train.size, dtype=np.float32).reshape(x_train.shape)
        elif kind == "label-beyond-names":
            y_train[3] = 2
        elif kind == "stray-million":  # one label 10**6 without label_names: a net of a million outputs
            y_train[3] = 10**6
        elif kind == "uint64-labels":  # beyond int64: cast, it would wrap to -1
            y_train = y_train.astype(np.uint64)
            y_train[3] = 2**64 - 1
        elif kind == "object-labels":
            y_train = y_train.astype(object)
        elif kind == "no-pixels":
            x_train = np.zeros((8, 0, 0, 3), np.float32)
        names = {"label-beyond-names": ["cat", "dog"], "scalar-names": "cat", "twice-named": ["cat", "cat"]}
        names = {"label_names": np.array(names[kind])} if kind in names else {}
        np.savez(path, x_train=x_train, y_train=y_train, x_test=np.zeros((4, 32, 32, 3), np.uint8),
                 y_test=np.array([0, 1, 0, 1]), **names)
    return f"npz:{path}"


def test_multi_worker_is_not_a_strategy_and_the_help_says_why(capsys):
    # argparse refuses it (exit 2, naming the valid strategies) before anything starts.
    with pytest.raises(SystemExit) as exit_status:
        main(["train", "--model", "wrn-10-1", "--strategy", "multi_worker"])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and "invalid choice: 'multi_worker'" in err and "mirrored" in err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "MultiWorkerMirroredStrategy is not offered" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("change,expected", [
    ({"--model": "resnet-50"}, "'resnet-50'"),
    ({"--dataset": "no_such_dataset_xyz"}, "'no_such_dataset_xyz'"),
    ({"--dataset": "npz:/nonexistent/cifar.npz"}, "/nonexistent/cifar.npz"),
    ({"--dataset": "corrupt"}, "not a readable .npz"),
    ({"--dataset": "not-hwc3"}, "(8, 32, 32)"),
    ({"--dataset": "labels"}, "y_train has shape (5,) for 8 images"),
    ({"--dataset": "keys"}, "missing keys"),
    ({"--dataset": "one-class"}, "one class; expected at least two classes"),
    ({"--dataset": "nan-pixels"}, "x_train holds non-finite pixels"),
    ({"--dataset": "negative-label"}, "y_train holds the label -1; expected labels >= 0"),
    ({"--dataset": "empty"}, "x_train holds no images"),
    ({"--dataset": "int16-pixels"}, "x_train has dtype int16; expected uint8 pixels, floats in [0, 1] or [0, 255], "
                                     "or uint16/uint32 (scaled by their range)"),
    ({"--dataset": "normalised-pixels"}, "x_train holds pixel values from -2 to 2; expected raw pixels in [0, 255]"),
    ({"--dataset": "label-beyond-names"}, "label_names has 2 names but labels go up to 2"),
    ({"--dataset": "huge-header"}, "x_train's .npy header claims the shape (1000000000, 32, 32, 3) of uint8, 2.79 TiB, "
                                   "more than this machine's"),
    ({"--dataset": "lying-header"}, "x_train's .npy header claims the shape (8, 32, 32, 3) of uint8 (24,576 bytes), but "
                                    "its member x_train.npy holds 49,152 bytes of data"),
    ({"--dataset": "not-npy"}, "x_train.npy is not a .npy array numpy can read (no .npy magic string)"),
    ({"--dataset": "twice"}, "the archive holds x_train twice (x_train.npy and x_train.npy)"),
    ({"--dataset": "npy-file"}, "a single .npy array, not an .npz archive"),
    ({"--dataset": "long-header"}, "not a readable .npz archive (Header info length (20068) is large and may not be safe "
                                   "to load securely.)."),
    ({"--dataset": "corrupt-deflate"}, "not a readable .npz archive (Error -3 while decompressing data: invalid block type)"),
    ({"--dataset": "corrupt-lzma"}, "not a readable .npz archive (Corrupt input data)"),
    ({"--dataset": "object-labels"}, "y_train holds Python objects (dtype object), which are not unpickled"),
    ({"--dataset": "stray-million"}, "labels go up to 1000000 but only 3 distinct labels occur (999,998 of the "
                                     "1,000,001 classes 0..1000000 have no image); expected consecutive labels"),
    ({"--dataset": "uint64-labels"}, "labels go up to 18446744073709551615 but only 3 distinct labels occur"),
    ({"--dataset": "no-pixels"}, "x_train has shape (8, 0, 0, 3), images of no pixels"),
    ({"--dataset": "scalar-names"}, "label_names has shape (); expected (K,) class names"),
    ({"--dataset": "twice-named"}, "label_names names 'cat' twice (classes 0 and 1)"),
    ({"--seed": "4294967296"}, "seed=4294967296 is not valid; expected an integer in 0..4294967295"),
    ({"--seed": "-1"}, "seed=-1 is not valid"),
    ({"--epochs": "0"}, "epochs=0 is not valid; expected a positive integer"),
    ({"--learning-rate": "inf"}, "learning_rate=inf is not valid"),
    ({"--learning-rate": "nan"}, "learning_rate=nan is not valid"),
    ({"--out": ""}, "--out '' is not valid"),
    ({"--out": "a-file"}, "a-file: File exists; expected a folder that can be created and written"),
    ({"--out": "a-file/run"}, "a-file/run: Not a directory"),
    ({"--batch-size": "0"}, "batch_size=0"),
    ({"--epochs": "-3"}, "epochs=-3"),
    ({"--block-type": "B(3,x)"}, "block_type='B(3,x)'"),
    ({"--dropout-rate": "1.5"}, "dropout_rate=1.5"),
    ({"--model": "resnet-20", "--block-type": "B(3,3)"}, "block_type='B(3,3)' does not apply"),
])
def test_bad_input_exits_with_one_clear_line(easy, tmp_path, capsys, change, expected):
    args = {"--model": "wrn-10-1", "--dataset": easy, "--epochs": "1", "--batch-size": "16",
            "--out": str(tmp_path / "run")}
    args.update(change)
    if args["--out"].startswith("a-file"):  # an output path that is a file, or lies under one
        (tmp_path / "a-file").write_text("not a folder")
        args["--out"] = str(tmp_path / args["--out"])
    if not args["--dataset"].startswith(("npz:", "no_such")):
        args["--dataset"] = _bad_npz(tmp_path, args["--dataset"])
    code = main(["train", *(item for pair in args.items() for item in pair)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_wide_integer_images_are_scaled_by_their_range_and_a_stray_label_is_reported(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    labels = np.arange(40) % 4
    labels[7] = 4  # one stray label 4 in a 4-class set, without label_names
    path = tmp_path / "wide.npz"
    np.savez(path, x_train=pixels.astype(np.uint16) * 257, y_train=labels, x_test=pixels[:8].astype(np.uint32) * 16843009,
             y_test=np.arange(8) % 4)
    with pytest.warns(UserWarning) as said:
        source = data.open_source(f"npz:{path}")
    train_split, test_split = source.read()
    images = np.stack([image for image, _ in train_split.as_numpy_iterator()])
    np.testing.assert_array_equal(images, pixels)  # 0..65535 back to 0..255, not clipped to 255
    np.testing.assert_array_equal(np.stack([image for image, _ in test_split.as_numpy_iterator()]), pixels[:8])
    lines = [str(w.message) for w in said]
    assert any("x_train is uint16: its pixels are scaled from 0..65535 to 0..255" in line for line in lines)
    assert any("x_test is uint32: its pixels are scaled from 0..4294967295 to 0..255" in line for line in lines)
    stray = next(line for line in lines if "stray label" in line)
    assert "the labels make 5 classes (0..4)" in stray and "class 4: 1 training and 0 test images" in stray
    assert "\n" not in stray and len(source.class_names) == 5
    with warnings.catch_warnings():  # the shared real subset and the tests' data: nothing to say
        warnings.simplefilter("error")
        data.open_source(f"npz:{make_npz(tmp_path / 'easy.npz', label_names=False).removeprefix('npz:')}")


def test_a_stray_label_warning_names_a_few_classes_and_counts_the_rest(tmp_path):
    # Eight classes of one image and no test image beside four of ten each: one readable line, not one
    # entry per class (a million of them once made a 43 MB line).
    labels = np.concatenate([np.arange(40) % 4, np.arange(4, 12)])
    path = tmp_path / "strays.npz"
    np.savez(path, x_train=np.zeros((48, 8, 8, 3), np.uint8), y_train=labels, x_test=np.zeros((8, 8, 8, 3), np.uint8),
             y_test=np.arange(8) % 4)
    with pytest.warns(UserWarning, match="stray label") as said:
        source = data.open_source(f"npz:{path}")
    line = str(said[0].message)
    assert "class 4: 1 training and 0 test images; " in line and "class 8: 1 training and 0 test images; ... and 3 more)" in line
    assert "class 9" not in line and len(source.class_names) == 12


def test_an_archive_is_checked_from_its_npy_headers_before_any_array_is_decompressed(tmp_path, monkeypatch):
    # 20,000 four-channel zero images: 82 MB of pixels in an archive of about 80 kB.
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((20_000, 32, 32, 4), np.uint8), y_train=np.zeros(20_000, np.uint8),
                        x_test=np.zeros((4, 32, 32, 3), np.uint8), y_test=np.arange(4))
    assert path.stat().st_size < 1_000_000

    def read_array(*args, **kwargs):
        raise AssertionError("an array was decompressed before the headers were checked")

    monkeypatch.setattr(np.lib.format, "read_array", read_array)  # what numpy.load decompresses with
    with pytest.raises(ConfigError, match=r"x_train has shape \(20000, 32, 32, 4\); expected \(N, H, W, 3\) images"):
        data.open_source(f"npz:{path}")


def test_byte_string_label_names_and_big_endian_pixels_read_as_their_values(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3)).astype(np.uint8)
    path = tmp_path / "foreign.npz"
    np.savez(path, x_train=(pixels.astype(np.uint16) * 257).astype(">u2"), y_train=np.arange(8) % 2, x_test=pixels,
             y_test=np.arange(8) % 2, label_names=np.array([b"cat", "d\u00f6g".encode()]))
    with pytest.warns(UserWarning, match="x_train is uint16"):
        source = data.open_source(f"npz:{path}")
    assert source.class_names == ("cat", "d\u00f6g")
    np.testing.assert_array_equal(np.stack([image for image, _ in source.train.as_numpy_iterator()]), pixels)


def test_a_class_whose_only_training_image_is_held_out_for_validation_is_named(tmp_path):
    # Ten classes of one image each: the 10% validation hold-out takes one class's only image.
    pixels = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3)).astype(np.uint8)
    path = tmp_path / "singletons.npz"
    np.savez(path, x_train=pixels, y_train=np.arange(10), x_test=pixels, y_test=np.arange(10))
    source = data.open_source(f"npz:{path}")
    with pytest.warns(UserWarning, match="validation hold-out") as said:
        pipeline = data.make_pipeline(source, image_shape=(8, 8, 3), batch_size=2, seed=0)
    [held_out] = [int(label) for _, labels in pipeline.validation.as_numpy_iterator() for label in labels]
    line = next(str(w.message) for w in said if "hold-out" in str(w.message))
    assert (f"took every training image of 1 of the 10 classes ('{held_out}'): the net never trains on them" in line
            and "--validation-fraction 0" in line and "\n" not in line)
    with warnings.catch_warnings():  # nothing held out, nothing to say
        warnings.simplefilter("error")
        data.make_pipeline(source, image_shape=(8, 8, 3), batch_size=2, seed=0, validation_fraction=0.0)


def test_the_papers_block_notation_with_spaces_is_the_same_block_type():
    # "B(3, 1, 3)" once passed the validator and failed inside Keras on a layer name.
    resolved = RunConfig(model="wrn-10-1", model_overrides={"block_type": "B(3, 1, 3)"}).resolve()
    assert resolved.model_kwargs["block_type"] == "B(3,1,3)"
    assert build("wrn-10-1", block_type="B(3, 1, 3)").name == "WRN-10-1-B3_1_3"


@pytest.mark.parametrize("argument,expected", [("--dropout-rate=1.5", "dropout_rate=1.5"),
                                               ("--block-type=B(3,x)", "block_type='B(3,x)'")])
def test_model_arguments_are_checked_before_a_dataset_is_downloaded(tmp_path, capsys, argument, expected):
    # cifar10 is not prepared in this data_dir: reading it would try a download (and fail offline).
    code = main(["train", "--model", "wrn-10-1", "--dataset", "cifar10", "--data-dir", str(tmp_path / "tfds"),
                 argument, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and expected in err and "cifar10" not in err
    assert not (tmp_path / "tfds" / "downloads").exists()


@pytest.mark.slow
def test_bad_input_from_a_fresh_process_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ablation", "train", "--model", "wrn-10-1", "--dataset",
                             "npz:/nonexistent.npz", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "ABLATION_DEBUG": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: dataset 'npz:/nonexistent.npz': no such file "
                                                  "'/nonexistent.npz'."]


# ----------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.slow
def test_two_deterministic_runs_are_bitwise_equal(easy, tmp_path):
    # Each in its own process, as users run it: the same weights to the bit, the same metrics.
    command = ("ablation", "train", "--model", "wrn-10-1", "--dataset", easy, "--epochs", "2", "--batch-size", "32",
               "--max-steps-per-epoch", "3", "--deterministic")
    for name in ("first", "second"):
        result = run_cli(*command, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stdout + result.stderr
    first, second = (keras.saving.load_model(tmp_path / name / "final.keras", compile=False) for name in ("first",
                                                                                                          "second"))
    for a, b in zip(first.weights, second.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("first", "second")]
    assert {k: v for k, v in metrics[0].items() if "seconds" not in k and "per_second" not in k} == {
        k: v for k, v in metrics[1].items() if "seconds" not in k and "per_second" not in k}
    environment = json.loads((tmp_path / "first" / "config.json").read_text())["environment"]
    assert environment["deterministic"] is True and environment["jit_compile"] == "off"


def test_deterministic_with_xla_forced_on_is_refused(capsys, tmp_path):
    code = main(["train", "--model", "wrn-10-1", "--deterministic", "--jit-compile", "on", "--out", str(tmp_path)])
    assert code == 2 and "--deterministic with --jit-compile on is not valid" in capsys.readouterr().err


@pytest.mark.slow
def test_seed_zero_trains(easy, tmp_path):
    # TensorFlow compared the shuffle's seed tensor with 0 under a global seed of 0, and every
    # run with --seed 0 failed at its first epoch.
    metrics = train(RunConfig(model="wrn-10-1", dataset=easy, seed=0, recipe_overrides={"epochs": 1, "batch_size": 32},
                              max_steps_per_epoch=2), tmp_path, log=quiet)
    assert_test_metrics_of(tmp_path, metrics)
    assert run_status(tmp_path) == "done"


# ----------------------------------------------------------------------------------------------
# A finished run's records, checked rather than trusted by name


def damage(path, *, truncate: bool):
    """A saved net cut short, or with bytes changed in its middle at the same size (a later time)."""
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)
        path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_finished_run_without_metrics_json_is_rebuilt_from_final_keras_not_retrained(easy, tmp_path):
    config = RunConfig(dataset=easy, model="wrn-10-1", recipe_overrides={"epochs": 2, "batch_size": 32},
                       max_steps_per_epoch=3)
    first = train(config, tmp_path, log=quiet)
    history = (tmp_path / "history.csv").read_text()
    (tmp_path / "metrics.json").unlink()
    lines = []
    rebuilt = train(config, tmp_path, log=lines.append)
    assert any("metrics.json is missing; rebuilding the results from final.keras" in line for line in lines)
    assert not any("resuming" in line or "epoch 1/2" in line for line in lines)  # nothing trained again
    assert (tmp_path / "history.csv").read_text() == history
    for key in ("test_accuracy", "test_error", "best_val_accuracy", "best_epoch", "epochs", "trainable_params",
                "total_params", "macs", "total_epoch_seconds", "seconds_per_epoch", "images_per_second"):
        assert getattr(rebuilt, key) == getattr(first, key), key
    assert rebuilt.test_loss == pytest.approx(first.test_loss, rel=1e-5)
    assert_test_metrics_of(tmp_path, rebuilt)

    # A damaged final.keras of a finished run: named at every call, the results kept.
    damage(tmp_path / "final.keras", truncate=False)
    lines = []
    assert train(config, tmp_path, log=lines.append) == rebuilt
    warning = next(line for line in lines if line.startswith("warning:"))
    assert "final.keras is damaged (its SHA-256 is not the one recorded" in warning
    assert "results stand" in warning and "cannot be recovered but by training the run again" in warning

    # Without metrics.json, a damaged final.keras cannot give the results: the run fails saying so,
    # and keeps every file it has (nothing retrained, nothing discarded).
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(RunFailed, match="final.keras is damaged .*so the results cannot be rebuilt; delete"):
        train(config, tmp_path, log=quiet)
    assert (tmp_path / "history.csv").read_text() == history and (tmp_path / "best.keras").exists()
