"""The fused batch norm is Keras's layer on TensorFlow's fused kernel: the same function, weights
and config, the reference implementations' running variance, and the fused kernel under every
precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from ablation.run import distribute
from builders import build
from builders.batch_norm import FusedBatchNormalization

MOMENTUM, EPSILON = 0.9, 1e-5


def pair(shape, rng):
    """Keras's layer and ours, built on `shape`, with the same random gamma and beta."""
    theirs = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON, name="bn")
    ours = FusedBatchNormalization(momentum=MOMENTUM, epsilon=EPSILON, name="bn")
    for layer in (theirs, ours):
        layer.build(shape)
    theirs.gamma.assign(rng.uniform(0.5, 1.5, shape[-1]))
    theirs.beta.assign(rng.normal(0, 0.5, shape[-1]))
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def training_step(layer, x, weights):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * weights)  # an upstream gradient that varies by pixel and channel
    gradients = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return y.numpy(), [g.numpy() for g in gradients]


def test_training_computes_kerass_function_and_updates_the_running_variance_as_pytorch_does():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(16, 8, 8, 5)).astype("float32")
    theirs, ours = pair(x.shape, rng)
    weights = tf.constant(rng.normal(size=x.shape), tf.float32)
    (y_theirs, g_theirs), (y_ours, g_ours) = training_step(theirs, x, weights), training_step(ours, x, weights)
    np.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
    for name, a, b in zip(("input", "gamma", "beta"), g_ours, g_theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    pixels = x.reshape(-1, 5).astype("float64")
    np.testing.assert_allclose(ours.moving_mean.numpy(), MOMENTUM * 0 + (1 - MOMENTUM) * pixels.mean(0), rtol=1e-5)
    # PyTorch's running_var: the unbiased batch variance (Keras's layer takes the biased one).
    unbiased = MOMENTUM * 1 + (1 - MOMENTUM) * pixels.var(0, ddof=1)
    np.testing.assert_allclose(ours.moving_variance.numpy(), unbiased, rtol=1e-5)
    assert np.abs(theirs.moving_variance.numpy() - unbiased).max() > 1e-4  # the difference is real


def test_inference_uses_the_moving_statistics_like_kerass_layer():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    theirs, ours = pair(x.shape, rng)
    for layer in (theirs, ours):
        layer.moving_mean.assign([0.3, -0.2, 0.1])
        layer.moving_variance.assign([0.5, 2.0, 1.5])
    np.testing.assert_allclose(ours(x, training=False).numpy(), theirs(x, training=False).numpy(), rtol=1e-5,
                               atol=1e-6)
    ours.trainable = False  # a frozen BN normalises with its moving statistics, as in Keras
    np.testing.assert_allclose(ours(x, training=True).numpy(), theirs(x, training=False).numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(ours.moving_mean.numpy(), np.float32([0.3, -0.2, 0.1]))


def test_same_weights_names_and_config_as_kerass_layer():
    theirs, ours = pair((2, 4, 4, 7), np.random.default_rng(2))
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights] == [
        "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]
    assert [w.trainable for w in ours.weights] == [True, True, False, False]
    assert ours.get_config() == theirs.get_config()
    model = build("wrn-10-1")
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(type(layer) is FusedBatchNormalization for layer in bns)


@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-5), ("mixed_bfloat16", 5e-2),
                                                 ("mixed_float16", 5e-3)])
def test_every_precision_runs_the_fused_kernel_with_float32_statistics(precision, tolerance):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 4, 4, 6)).astype("float32")
    with distribute.precision_policy(precision):
        theirs, ours = pair(x.shape, rng)
    assert all(w.dtype == "float32" for w in ours.weights)
    step = tf.function(lambda inputs: ours(inputs, training=True))
    graph = step.get_concrete_function(tf.TensorSpec(x.shape, ours.compute_dtype)).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    y = step(tf.cast(x, ours.compute_dtype))
    assert y.dtype == ours.compute_dtype
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), theirs(x, training=True).numpy().astype("float32"),
                               rtol=tolerance, atol=tolerance)


def test_where_the_kernel_does_not_apply_it_is_kerass_layer():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 5, 6)).astype("float32")  # not an image batch
    theirs, ours = pair(x.shape, rng)
    np.testing.assert_allclose(ours(x, training=True).numpy(), theirs(x, training=True).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-6)


@pytest.mark.slow
def test_under_mirrored_strategy_each_replica_normalises_its_own_batch_as_kerass_layer_does():
    # Two replicas (conftest.py's two logical CPUs), each with half of the global batch of 8: the
    # moving statistics take the mean of the replicas' updates, as with Keras's layer, whose
    # variance differs by the Bessel factor of a replica's batch (4 images x 4 x 4 = 64 values).
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest.py sets up two logical CPUs"
    strategy, _ = distribute.make_strategy("mirrored")
    x = np.random.default_rng(5).normal(2.0, 3.0, size=(8, 4, 4, 3)).astype("float32")
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        with strategy.scope():
            model = keras.Sequential([keras.Input((4, 4, 3)), cls(momentum=MOMENTUM, epsilon=EPSILON)])
            model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        model.fit(tf.data.Dataset.from_tensor_slices((x, np.zeros_like(x))).batch(8), epochs=1, verbose=0,
                  shuffle=False)
        layers.append(model.layers[-1])
    theirs, ours = layers
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5)
    n = 4 * 4 * 4
    np.testing.assert_allclose(ours.moving_variance.numpy() - MOMENTUM,
                               (theirs.moving_variance.numpy() - MOMENTUM) * n / (n - 1), rtol=1e-5)
