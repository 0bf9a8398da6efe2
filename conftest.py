"""Test session set-up that must run before TensorFlow initialises its devices."""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ablation.core.console import import_tensorflow_quietly  # noqa: E402

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


@pytest.fixture(scope="session", autouse=True)
def machine_profile_stand_in(tmp_path_factory):
    """Every study a test runs estimates its cost from this machine's profile (ablation.study.cost),
    which takes about a minute to measure. The tests use a stand-in of typical figures instead,
    in a cache of their own (subprocesses inherit it); tests/test_cost.py measures the real one."""
    from ablation.core import io
    from ablation.study import cost

    folder = tmp_path_factory.getbasetemp() / "ablation-cache"
    os.environ["ABLATION_CACHE"] = str(folder)
    machine = cost.machine_name()
    stand_in = cost.Profile(machine=machine, startup=0.2, startup_per_layer=0.15, rates=((2e6, 2e11), (6e6, 2.5e11)),
                            study_overhead=8.0)
    io.write_json(cost.profile_path(machine), dataclasses.asdict(stand_in))
