"""Every net the suite can make trains (timm's registry-wide tests, in spirit).

One real training step of every preset, and of every block type in the paper's Tables 2 and 3,
through `ablation.run.train`: the function behind `python -m ablation train`, every study and the
tuner's retrained winner. Building a net and counting its parameters is not enough: a name that
TensorFlow refuses as a name scope ("WRN-40-2-B(1,3,1)") builds, counts and saves, and fails only
when Keras traces the first step.

Each step is as small as the net allows (batch 2, 8x8 inputs, 64x64 for the ImageNet-style nets):
what it costs is tracing the graph, which grows with the number of layers, not the input. A net
that a study declares as it is (no overrides) and that the smoke preset does not narrow (it
narrows only Wide ResNets) already takes its steps through `train` in that study's end-to-end test
(tests/test_studies.py), so it is not trained twice here.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest

from ablation.run.config import RunConfig
from ablation.run.training import train
from ablation.study import Smoke
from ablation.study.planning import smoke_downsize
from builders import PRESETS
from builders.layers import MODEL_NAME
from tests.helpers import LONG_PRESETS, STUDY_ENTRY_POINTS, assert_test_metrics_of, make_npz, preset_params


# Small inputs that leave the last group a 2x2 map: two stride-2 groups on 8x8; the ImageNet stem
# (stride 4) and three stride-2 groups on 64x64, the smoke preset's size. (At 32x32 the last
# group's BN normalises 1x1 maps over a batch of 2, and one step at lr 0.1 blows ResNet-34 up.)
def tiny_input(preset) -> tuple:
    """The preset's input shrunk (from its registry entry): CIFAR's 32x32 to 8x8, ImageNet's 224x224 to 64x64."""
    return (8, 8, 3) if preset.input_shape[0] <= 32 else Smoke().imagenet_input
# Nets a study trains as declared in its end-to-end test: not trained twice (see the docstring).
TRAINED_BY_STUDIES = {configuration.model for module in STUDY_ENTRY_POINTS.values() if hasattr(module, "STUDY")
                      for configuration in module.STUDY.configurations
                      if not configuration.model_overrides and PRESETS[configuration.model].family != "wide_resnet"}
# The paper's Table 2 (block types) and Table 3 (deepening factor l = 1..4), on the smallest WRN.
BLOCK_TYPES = ["B(3,3)", "B(3,1,3)", "B(1,3,1)", "B(1,3)", "B(3,1)", "B(3,1,1)", "B(3)", "B(3,3,3)", "B(3,3,3,3)"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=16, n_test=4)


def one_step(model, dataset, out, **model_overrides) -> dict:
    """One training step of `model` through train(), and what it leaves behind, checked."""
    preset = PRESETS[model]
    config = RunConfig(model=model, dataset=dataset,
                       model_overrides={"input_shape": tiny_input(preset), **model_overrides},
                       recipe_overrides={"epochs": 1, "batch_size": 2}, max_steps_per_epoch=1,
                       validation_fraction=0.0)
    metrics = train(config, out, log=lambda *_: None)
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1] and math.isfinite(history["loss"].iloc[0])
    assert metrics.epochs == 1
    assert_test_metrics_of(out, metrics)
    assert any((out / "tensorboard").rglob("*tfevents*"))
    recorded = json.loads((out / "config.json").read_text())
    if model not in LONG_PRESETS:  # (a smaller net of the same builder loads back: no second minute-long build)
        # The checkpoint loads back (custom layers, the schedule) and computes.
        model_ = keras.saving.load_model(out / "final.keras")
        assert MODEL_NAME.fullmatch(model_.name), model_.name
        logits = model_(np.zeros((1, *tiny_input(preset)), np.float32), training=False).numpy()
        assert logits.shape == (1, len(recorded["data"]["class_names"])) and np.isfinite(logits).all()
    return recorded


@pytest.mark.slow
@pytest.mark.parametrize("model", preset_params([name for name in PRESETS if name not in TRAINED_BY_STUDIES]))
def test_every_preset_trains_a_step(model, tiny, tmp_path):
    one_step(model, tiny, tmp_path)


def test_the_nets_left_to_the_studies_are_trained_there_as_declared():
    # The smoke preset changes them at most by the ImageNet-style input size, the one this file uses.
    assert TRAINED_BY_STUDIES >= {"resnet-20", "resnet-110-projection", "imagenet-plain-50"}
    for model in TRAINED_BY_STUDIES:
        overrides, _ = smoke_downsize(model, {}, Smoke())
        assert overrides in ({}, {"input_shape": Smoke().imagenet_input}), (model, overrides)


@pytest.mark.slow
@pytest.mark.parametrize("block_type", BLOCK_TYPES)
def test_every_block_type_trains_a_step(block_type, tiny, tmp_path):
    config = one_step("wrn-10-1", tiny, tmp_path, block_type=block_type.replace(",", ", "))
    # Tables keep the paper's notation, written one way whatever the spacing the user typed.
    assert config["run"]["model_kwargs"]["block_type"] == block_type


@pytest.mark.slow
def test_a_block_type_net_trains_on_two_replicas_and_its_best_checkpoint_loads(tiny, tmp_path):
    # tf.distribute opens its own name scopes: the other place a model name must be accepted.
    config = RunConfig(model="wrn-10-1", dataset=tiny, model_overrides={"block_type": "B(1,3,1)"},
                       recipe_overrides={"epochs": 2, "batch_size": 4}, max_steps_per_epoch=1, strategy="mirrored")
    train(config, tmp_path, log=lambda *_: None)
    environment = json.loads((tmp_path / "config.json").read_text())["environment"]
    assert environment["replicas"] == 2
    for name in ("best.keras", "final.keras"):
        assert keras.saving.load_model(tmp_path / name).name == "WRN-10-1-B1_3_1"
