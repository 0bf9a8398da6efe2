"""Layer settings shared by every builder, bound once.

The defaults are those of the reference PyTorch/Torch implementations, which differ from
Keras's own defaults in ways that change results (see the field guide, section 4):

* BatchNorm momentum 0.9 and epsilon 1e-5 (PyTorch's momentum=0.1 is Keras's 0.9);
* convolutions without bias, initialised normal(0, sqrt(2 / fan_out)), untruncated;
* strided convolutions padded symmetrically by (kernel - 1) / 2, as `F.conv2d(padding=1)`.
  TensorFlow's "same" pads a stride-2 conv on an even input only at the bottom and right,
  which computes a different function from the same weights.
"""

from __future__ import annotations

import functools
import re
import sys

import keras
from keras import layers

from builders.batch_norm import FusedBatchNormalization

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# The CIFAR nets' three groups (He et al. section 4.2; Wide ResNets multiply the widths by k).
CIFAR_GROUP_WIDTHS = (16, 32, 64)
CIFAR_GROUP_STRIDES = (1, 2, 2)
# A bottleneck's 1x1 -> 3x3 -> 1x1 ends at this many times its inner width.
BOTTLENECK_EXPANSION = 4
PADDINGS = ("symmetric", "same")
# Keras opens a TensorFlow name scope named after the model when it traces a step, and TensorFlow
# refuses a root scope name outside this pattern: "WRN-40-2-B(1,3,1)" builds, then fails in fit.
MODEL_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


def faithful_conv_initializer():
    """He et al.'s init as the reference codes it: normal(0, sqrt(2 / (k * k * out)))."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def check_choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; expected one of {', '.join(map(repr, valid))}.")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; expected a positive integer.")


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} is not valid; expected a number in [0, 1).")


def check_input_shape(input_shape, min_side=8):
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape={input_shape!r} is not valid; expected (height, width, channels).")
    if min(shape[:2]) < min_side:
        raise ValueError(f"input_shape={input_shape!r} is too small; height and width must be >= {min_side}.")
    return shape


def check_model_name(name):
    if name is not None and not (isinstance(name, str) and MODEL_NAME.fullmatch(name)):
        raise ValueError(f"name={name!r} is not valid; expected letters, digits and . _ - / > only "
                         f"(TensorFlow names a scope after the model), e.g. 'WRN-40-2-B1_3_1'.")
    return name


def allow_deep_graph(depth):
    """Keras walks a functional graph recursively, several frames per layer: ResNet-1001's
    ~3,000 layers need more than Python's default limit of 1,000 frames."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * depth))


def stages(x, block, *, widths, strides, blocks_per_group):
    """The groups of blocks every builder here shares: group g (from 1) holds `blocks_per_group[g]`
    blocks at `widths[g]`; the first block of a group carries the group's stride (the later ones
    stride 1); layers are named `group{g}_block{b}_...` through `block(x, width, stride, prefix=)`."""
    for g, (width, stride, count) in enumerate(zip(widths, strides, blocks_per_group, strict=True), start=1):
        for b in range(1, count + 1):
            x = block(x, width, stride if b == 1 else 1, prefix=f"group{g}_block{b}")
    return x


class LayerFactory:
    """Conv, BN, ReLU and dropout with one net's settings, named hierarchically.

    Builders call `f.conv(x, filters, kernel, strides, name="group2_block1_conv1")` and never
    repeat the faithful settings themselves.
    """

    def __init__(self, *, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, padding="symmetric",
                 kernel_initializer=None):
        check_choice("padding", padding, PADDINGS)
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum={bn_momentum!r} is not valid; expected a number in [0, 1).")
        if not bn_epsilon > 0.0:
            raise ValueError(f"bn_epsilon={bn_epsilon!r} is not valid; expected a positive number.")
        self.padding = padding
        self._bn = functools.partial(FusedBatchNormalization, momentum=bn_momentum, epsilon=bn_epsilon)
        self._init = kernel_initializer or faithful_conv_initializer()

    def conv(self, x, filters, kernel_size, strides=1, *, name):
        # For stride 1 and an odd kernel, "same" already pads (k - 1) / 2 on every side.
        if strides > 1 and self.padding == "symmetric" and kernel_size > 1:
            x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=self._init, name=name)(x)

    def bn(self, x, *, name):
        return self._bn(name=name)(x)

    def relu(self, x, *, name):
        return layers.ReLU(name=name)(x)

    def bn_relu(self, x, *, prefix, suffix=""):
        return self.relu(self.bn(x, name=f"{prefix}_bn{suffix}"), name=f"{prefix}_relu{suffix}")

    def head(self, x, num_classes, *, preactivated):
        """Global average pooling and the classifier; logits stay float32 under mixed precision."""
        if preactivated:
            x = self.bn_relu(x, prefix="head")
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
        # nn.Linear's default init, uniform(+-1/sqrt(fan_in)), as in the reference code.
        init = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        return layers.Dense(num_classes, kernel_initializer=init, dtype="float32", name="head_dense")(x)
