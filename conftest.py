"""Test session set-up that must run before TensorFlow initialises its devices."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ablation.console import import_tensorflow_quietly  # noqa: E402

# Two logical CPU devices, so that MirroredStrategy's multi-replica path runs on this CPU
# (tests/test_training.py). They must be configured before anything touches a device.
os.environ["ABLATION_LOGICAL_CPUS"] = "2"
import_tensorflow_quietly()

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.helpers import make_npz  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """A `long` test is `slow` too. Tests marked `gpu` need one; on a machine without, they are
    skipped, saying why."""
    gpus = tf.config.list_physical_devices("GPU")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(pytest.mark.slow)
        if "gpu" in item.keywords and not gpus:
            item.add_marker(pytest.mark.skip(reason="needs a GPU (marker gpu); this machine has none"))


@pytest.fixture(scope="session")
def easy(tmp_path_factory):
    """tests.helpers.make_npz's easy 4-class problem (256 train, 64 test images), as `npz:PATH`."""
    return make_npz(tmp_path_factory.mktemp("data") / "easy.npz")
