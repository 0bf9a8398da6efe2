"""The console an entry point prepares: TensorFlow's start-up quiet, and no warning about the
user's model hidden."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from ablation.core.console import KerasRetracingNotice
from tests.helpers import ROOT


def test_the_console_hides_no_keras_or_tensorflow_warning_about_a_model():
    # A real Keras UserWarning about a layer, and a warning on TensorFlow's logger, after
    # prepare_console() in a fresh process as an entry point runs it.
    code = ("from ablation.core.console import prepare_console; prepare_console(); import keras, tensorflow as tf; "
            "keras.layers.Dense(2, input_shape=(3,)); tf.get_logger().warning('layer dense_9 has no weights')")
    env = {k: v for k, v in os.environ.items() if k != "ABLATION_DEBUG"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warning: Do not pass an `input_shape`/`input_dim` argument to a layer." in done.stderr
    assert "layer dense_9 has no weights" in done.stderr


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)


def test_only_kerass_own_retracing_notice_is_dropped():
    notice = KerasRetracingNotice()
    kerass = ("5 out of the last 9 calls to <function TensorFlowTrainer.make_predict_function.<locals>."
              "one_step_on_data_distributed at 0x7f0> triggered tf.function retracing. Tracing is expensive")
    users = "5 out of the last 5 calls to <function MyLayer.call at 0x7f0> triggered tf.function retracing."
    assert not notice.filter(record(kerass))
    assert notice.filter(record(users)) and notice.filter(record("Gradients do not exist for variables"))


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # `python -m ablation models | head -1`: a BrokenPipeError traceback after the first line.
    command = subprocess.Popen([sys.executable, "-m", "ablation", "models"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert command.stdout.readline().startswith("model ")
    command.stdout.close()  # as head does, after its line
    stderr = command.stderr.read()
    assert command.wait(timeout=120) == 141 and stderr == "", stderr
