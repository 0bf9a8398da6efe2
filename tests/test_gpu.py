"""Checks that need a GPU: skipped on machines without one (see conftest.py)."""

from __future__ import annotations

import pytest

from ablation.run.bench import BenchConfig, run_bench

pytestmark = pytest.mark.gpu


def test_keras_turns_xla_on_for_one_gpu_and_bfloat16_keeps_float32_logits():
    result = run_bench(BenchConfig(model="wrn-16-2", batch_size=128, timed_steps=5, precision="mixed_bfloat16",
                                   strategy="one_device"), log=lambda *_: None)
    assert result["jit_compile"] == "on" and result["precision"] == "mixed_bfloat16"
    assert result["mfu"] > 0


def test_mirrored_turns_xla_off_under_auto():
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) < 2:
        pytest.skip("needs two GPUs")
    result = run_bench(BenchConfig(model="wrn-16-2", timed_steps=3, strategy="mirrored"), log=lambda *_: None)
    assert result["jit_compile"] == "off" and result["replicas"] >= 2
