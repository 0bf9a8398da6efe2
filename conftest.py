"""Test session set-up that must run before TensorFlow initialises its devices."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ablation import import_tensorflow_quietly  # noqa: E402

# Two logical CPU devices, so that MirroredStrategy's multi-replica path runs on this CPU
# (tests/test_training.py). They must be configured before anything touches a device.
os.environ["ABLATION_LOGICAL_CPUS"] = "2"
import_tensorflow_quietly()
