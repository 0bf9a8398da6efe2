"""Batch normalisation on TensorFlow's fused kernel: Keras's layer, a third of the step faster.

Keras 3's `BatchNormalization` on TensorFlow computes the moments and then the normalisation
as separate element-wise ops (about a third of a WRN training step on a CPU, in float32, and
more under bfloat16, which it upcasts to float32 first). `FusedBatchNormalization` is the same
layer, the same weights under the same names and the same config, whose `call` runs
`FusedBatchNormV3`, one kernel forward and one backward (oneDNN on CPUs, cuDNN on GPUs),
taking bfloat16/float16 activations with float32 statistics as mixed precision needs.

One deliberate difference from Keras's layer: the moving variance is updated with the batch's
*unbiased* variance (sum of squares / (n - 1)), which is what the fused kernel returns and
what the reference implementations do (PyTorch's `running_var`, Torch7's `running_var`). Keras
updates it with the biased one. Training normalises by the biased variance in both. With
n = batch x height x width, the two differ by n / (n - 1): 1.0001 for the CIFAR nets' last
group at batch 128.

Where the kernel does not apply (another backend, a mask, synchronised or renormalised BN, an
input that is not NHWC) the layer is Keras's own.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="builders")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel (see the module)."""

    def _fusable(self, inputs, mask):
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.synchronized
                and not self.renorm and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES)

    def keras_equivalent(self) -> keras.layers.BatchNormalization:
        """Keras's own layer with this one's config: what a saved net holds (builders.portable). It
        computes the same function from the same variables; trained on, it would update the moving
        variance with the batch's biased variance (the n / (n - 1) above)."""
        return keras.layers.BatchNormalization.from_config(self.get_config())

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,))
        offset = self.beta if self.center else tf.zeros((channels,))
        if training and self.trainable:
            # The kernel updates the moving statistics itself: moving * momentum + batch * (1 - momentum).
            outputs, moving_mean, moving_variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, exponential_avg_factor=1.0 - self.momentum, data_format="NHWC",
                is_training=True)
            self.moving_mean.assign(moving_mean)
            self.moving_variance.assign(moving_variance)
        else:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return ops.cast(outputs, self.compute_dtype)
