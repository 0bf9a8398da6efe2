"""Checks that need a GPU: skipped on machines without one (see conftest.py)."""

from __future__ import annotations

import pytest

from ablation.run.bench import BenchConfig, run_bench, synthetic_source
from ablation.run.config import RunConfig
from ablation.run.setup import set_up

pytestmark = pytest.mark.gpu


def test_keras_turns_xla_on_for_one_gpu_and_bfloat16_keeps_float32_logits():
    config = RunConfig(model="wrn-16-2", precision="mixed_bfloat16", strategy="one_device")
    with set_up(config, source=synthetic_source(num_images=256)) as run:
        model = run.compile(run.build())
        assert model.jit_compile is True  # "auto" resolved by Keras: XLA on one GPU
        assert model.get_layer("group1_block1_conv1").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"  # the logits, and so the loss, in float32
    result = run_bench(BenchConfig(model="wrn-16-2", batch_size=128, timed_steps=5, precision="mixed_bfloat16",
                                   strategy="one_device"), log=lambda *_: None)
    assert result["jit_compile"] == "on" and 0 < result["mfu"] <= 1


def test_mirrored_turns_xla_off_under_auto():
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) < 2:
        pytest.skip("needs two GPUs")
    result = run_bench(BenchConfig(model="wrn-16-2", timed_steps=3, strategy="mirrored"), log=lambda *_: None)
    assert result["jit_compile"] == "off" and result["replicas"] == len(tf.config.list_physical_devices("GPU"))
