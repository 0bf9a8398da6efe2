"""Layer settings shared by every builder, bound once.

The defaults are those of the reference PyTorch/Torch implementations, which differ from
Keras's own defaults in ways that change results (see the field guide, section 4):

* BatchNorm momentum 0.9 and epsilon 1e-5 (PyTorch's momentum=0.1 is Keras's 0.9);
* convolutions without bias, initialised normal(0, sqrt(2 / fan_out)), untruncated;
* strided convolutions padded symmetrically by (kernel - 1) / 2, as `F.conv2d(padding=1)`.
  TensorFlow's "same" pads a stride-2 conv on an even input only at the bottom and right,
  which computes a different function from the same weights;
* every layer its own initial draw. A Keras 3 initializer instance returns the same values at
  every call for a given shape (an unseeded one fixes its seed when it is created), so one
  instance shared by a net's convolutions starts every conv of a shape from the same kernel:
  the blocks of a stage begin as copies of each other and their residual branches add up
  coherently (ResNet-110's pooled features start at about 3x the reference's RMS). Here each
  layer gets new initializers with a seed of its own (`LayerFactory.seed`).

What differs between the families' reference codes (the classifier's bias, BatchNorm's gamma)
is an `Initialization`, declared by each builder's module; every builder's `bn_gamma` ("ones",
"uniform"; None: the reference's) departs from it by name.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import random
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


# What a family's reference code sets BatchNorm's gamma and the classifier's bias to.
BN_GAMMAS = ("ones", "uniform")  # uniform: U(0, 1), Torch7's nn.BatchNormalization:reset()
CLASSIFIER_BIASES = ("zeros", "uniform")  # uniform: U(+-1/sqrt(fan_in)), nn.Linear's default


@dataclasses.dataclass(frozen=True)
class Initialization:
    """How a family's reference code starts a net, beyond what every family here shares: convs
    normal(0, sqrt(2 / (k * k * out))) (He et al.'s "MSR" init, fan-out, untruncated) without bias,
    BatchNorm's beta 0, moving mean 0 and variance 1, the classifier's kernel U(+-1/sqrt(fan_in))
    (the default of Torch7's nn.Linear and PyTorch's), and a draw of its own for every layer."""

    reference: str  # the code this follows, and where it sets the weights
    bn_gamma: str  # one of BN_GAMMAS
    classifier_bias: str  # one of CLASSIFIER_BIASES

    def __post_init__(self):
        check_choice("bn_gamma", self.bn_gamma, BN_GAMMAS)
        check_choice("classifier_bias", self.classifier_bias, CLASSIFIER_BIASES)

    def with_bn_gamma(self, bn_gamma: str | None) -> Initialization:
        """This initialisation with BN's gamma started as `bn_gamma` (a builder's named option; None:
        the reference's)."""
        return self if bn_gamma is None else dataclasses.replace(self, bn_gamma=bn_gamma)

    def to_json(self) -> dict:
        """What a run records of how its net started (config.json's "initialization")."""
        return {"draws": "per layer", **dataclasses.asdict(self)}


def msr_initializer(seed):
    """He et al.'s init as the reference codes write it: normal(0, sqrt(2 / (k * k * out)))."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal",
                                              seed=seed)


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
    """Conv, BN and ReLU layers and the classifier with one net's settings and initialisation,
    named hierarchically.

    Builders call `f.conv(x, filters, kernel, strides, name="group2_block1_conv1")` and never
    repeat the faithful settings themselves.
    """

    def __init__(self, initialization: Initialization, *, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                 padding="symmetric"):
        check_choice("padding", padding, PADDINGS)
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum={bn_momentum!r} is not valid; expected a number in [0, 1).")
        if not bn_epsilon > 0.0:
            raise ValueError(f"bn_epsilon={bn_epsilon!r} is not valid; expected a positive number.")
        self.padding = padding
        self.initialization = initialization
        self._bn = functools.partial(FusedBatchNormalization, momentum=bn_momentum, epsilon=bn_epsilon)
        # Consecutive seeds from one draw of Python's generator, which keras.utils.set_random_seed
        # seeds: the same run seed gives the same net, another seed another, and no two layers of a
        # net share a seed (Keras's own unseeded draws, one per initializer in 1..1e9, may collide).
        self._seeds = itertools.count(random.randrange(1, 2**30))

    def seed(self) -> int:
        """A seed no other initializer of this net has."""
        return next(self._seeds)

    def conv(self, x, filters, kernel_size, strides=1, *, name):
        # For stride 1 and an odd kernel, "same" already pads (k - 1) / 2 on every side.
        if strides > 1 and self.padding == "symmetric" and kernel_size > 1:
            x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=msr_initializer(self.seed()), name=name)(x)

    def bn(self, x, *, name):
        gamma = (keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed())
                 if self.initialization.bn_gamma == "uniform" else "ones")
        return self._bn(gamma_initializer=gamma, name=name)(x)

    def relu(self, x, *, name):
        return layers.ReLU(name=name)(x)

    def bn_relu(self, x, *, prefix, suffix=""):
        return self.relu(self.bn(x, name=f"{prefix}_bn{suffix}"), name=f"{prefix}_relu{suffix}")

    def head(self, x, num_classes, *, preactivated):
        """Global average pooling and the classifier; logits stay float32 under mixed precision."""
        if preactivated:
            x = self.bn_relu(x, prefix="head")
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
        bound = 1.0 / math.sqrt(x.shape[-1])  # nn.Linear's reset: U(+-1/sqrt(fan_in)), weight and bias
        kernel = keras.initializers.RandomUniform(-bound, bound, seed=self.seed())
        bias = (keras.initializers.RandomUniform(-bound, bound, seed=self.seed())
                if self.initialization.classifier_bias == "uniform" else "zeros")
        return layers.Dense(num_classes, kernel_initializer=kernel, bias_initializer=bias, dtype="float32",
                            name="head_dense")(x)
