"""Test session set-up that must run before TensorFlow initialises its devices."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ablation import import_tensorflow_quietly  # noqa: E402

# Two logical CPU devices, so that MirroredStrategy's multi-replica path runs on this CPU
# (tests/test_training.py). They must be configured before anything touches a device.
os.environ["ABLATION_LOGICAL_CPUS"] = "2"
import_tensorflow_quietly()


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need one; on a machine without, they are skipped, saying why."""
    import pytest
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a GPU (marker gpu); this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
