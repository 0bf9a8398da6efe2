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
ACTIVATIONS = ("relu", "silu", "gelu")  # Keras's names; gelu is the exact (erf) one, as torch's nn.GELU
NORMS = ("batch", "group")
# Where the shape changes: option A (zero_pad), B (projection: a strided 1x1 conv), or ResNet-D's
# (avg_down: a 2x2 average pool of stride 2, then the projection at stride 1). He et al.'s CIFAR net
# takes them all; the families that always project take PROJECTIONS.
SHORTCUTS = ("zero_pad", "projection", "avg_down")
PROJECTIONS = ("projection", "avg_down")
# Where a bottleneck strides: its first 1x1 conv (He et al. 2016's original, and resnet-1k-layers) or its
# 3x3 conv (ResNet-B of Bag of Tricks, torchvision's "v1.5").
BOTTLENECK_STRIDES = ("1x1", "3x3")
GROUP_NORM_GROUPS = 32  # Wu & He 2018's default G
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


def check_choice(name, value, valid, *, family=None):
    if value not in valid:
        where = f" for {family}" if family else ""
        raise ValueError(f"{name}={value!r} is not valid{where}; expected one of {', '.join(map(repr, valid))}.")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; expected a positive integer.")


def check_flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not valid; expected True or False.")


def check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 0 (0: off).")


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


def stages(x, block, *, widths, strides, blocks_per_group, drop_path_rate=0.0):
    """The groups of blocks every builder here shares: group g (from 1) holds `blocks_per_group[g]`
    blocks at `widths[g]`; the first block of a group carries the group's stride (the later ones
    stride 1); layers are named `group{g}_block{b}_...` through `block(x, width, stride, prefix=,
    drop_path=)`. Block l of the net's L drops its branch with probability drop_path_rate * l / L,
    Huang et al.'s linear rule (timm's rule, rate * (l - 1) / (L - 1), never drops the first block)."""
    total, l = sum(blocks_per_group), 0
    for g, (width, stride, count) in enumerate(zip(widths, strides, blocks_per_group, strict=True), start=1):
        for b in range(1, count + 1):
            l += 1
            x = block(x, width, stride if b == 1 else 1, prefix=f"group{g}_block{b}", drop_path=drop_path_rate * l / total)
    return x


def group_count(channels: int) -> int:
    """GroupNorm's groups for `channels`: Wu & He's 32 where they divide the channels; else the largest
    number of groups below 32 that does (48 channels: 24 groups of 2; 16: 16 groups of one channel,
    which is instance normalisation, the end of GN's range in Wu & He's Figure 5)."""
    return max(g for g in range(1, GROUP_NORM_GROUPS + 1) if channels % g == 0)


class LayerFactory:
    """Conv, norm and activation layers, the residual sum and the classifier with one net's settings
    and initialisation, named hierarchically.

    Builders call `f.conv(x, filters, kernel, strides, name="group2_block1_conv1")` and never
    repeat the faithful settings themselves. Builders spell norm and activation layers by their
    reference names ("_bn2", "_relu1"); another `norm` or `activation` respells them ("_gn2",
    "_silu1"), so that the reference net's layers keep their names in every record.

    The names are a contract with the diagrams (ablation.report.diagrams reads a block's parts from
    them): a block's layers start with its prefix ("group2_block1"); its shortcut's layers contain
    "_shortcut" (`projection` names them so); what a post-activation block applies after the sum
    contains "_out_" ("group2_block1_out_relu", named by the families' block functions).
    """

    def __init__(self, initialization: Initialization, *, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                 padding="symmetric", activation="relu", norm="batch", se_reduction=0, zero_init_residual=False):
        check_choice("padding", padding, PADDINGS)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("norm", norm, NORMS)
        check_count("se_reduction", se_reduction)
        check_flag("zero_init_residual", zero_init_residual)
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum={bn_momentum!r} is not valid; expected a number in [0, 1).")
        if not bn_epsilon > 0.0:
            raise ValueError(f"bn_epsilon={bn_epsilon!r} is not valid; expected a positive number.")
        self.padding = padding
        self.initialization = initialization
        self.activation = activation
        self.norm_kind = norm
        self.bn_epsilon = bn_epsilon
        self.se_reduction = se_reduction
        self.zero_init_residual = zero_init_residual
        self._bn = functools.partial(FusedBatchNormalization, momentum=bn_momentum, epsilon=bn_epsilon)
        # Consecutive seeds from one draw of Python's generator, which keras.utils.set_random_seed
        # seeds: the same run seed gives the same net, another seed another, and no two layers of a
        # net share a seed (Keras's own unseeded draws, one per initializer in 1..1e9, may collide).
        first = random.randrange(1, 2**30)
        self._seeds = itertools.count(first)
        # Layers the reference net lacks (squeeze-and-excitation, drop-path masks) draw from seeds of
        # their own: every other layer starts as in the net without them, so two runs of one seed
        # differ by the option alone.
        self._added_seeds = itertools.count(first + 2**30)

    def seed(self) -> int:
        """A seed no other initializer of this net has."""
        return next(self._seeds)

    def conv(self, x, filters, kernel_size, strides=1, *, name, residual_end=False):
        """A conv; `residual_end`: the last layer of a pre-activation residual branch, zeroed by
        `zero_init_residual` (timm resnetv2's PreActBottleneck.zero_init_last zeros conv3's weight)."""
        # For stride 1 and an odd kernel, "same" already pads (k - 1) / 2 on every side.
        if strides > 1 and self.padding == "symmetric" and kernel_size > 1:
            x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        kernel = msr_initializer(self.seed())  # drawn even when zeroed: the other layers keep their draws
        if residual_end and self.zero_init_residual:
            kernel = "zeros"
        return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=kernel, name=name)(x)

    def norm(self, x, *, name, residual_end=False):
        """Batch norm, or GroupNorm (Wu & He 2018: `group_count` groups, the same epsilon and gamma);
        `residual_end`: the last norm of a post-activation residual branch, its gamma started at 0 by
        `zero_init_residual` (Goyal et al. 2017; torchvision's zero_init_residual, timm's zero_init_last)."""
        gamma = (keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed())
                 if self.initialization.bn_gamma == "uniform" else "ones")
        if residual_end and self.zero_init_residual:
            gamma = "zeros"
        if self.norm_kind == "group":
            return layers.GroupNormalization(group_count(x.shape[-1]), epsilon=self.bn_epsilon, gamma_initializer=gamma,
                                             name=_respelled(name, "bn", "gn"))(x)
        return self._bn(gamma_initializer=gamma, name=name)(x)

    def act(self, x, *, name):
        if self.activation == "relu":
            return layers.ReLU(name=name)(x)
        return layers.Activation(self.activation, name=_respelled(name, "relu", self.activation))(x)

    def norm_act(self, x, *, prefix, suffix=""):
        return self.act(self.norm(x, name=f"{prefix}_bn{suffix}"), name=f"{prefix}_relu{suffix}")

    def projection(self, x, filters, strides, *, prefix, avg_down, with_norm=True):
        """A projection shortcut: a strided 1x1 conv (and the family's norm), or ResNet-D's (Bag of
        Tricks; timm's downsample_avg): a 2x2 average pool of the stride, then the 1x1 conv at stride 1.
        The pool is "same"-padded, which averages over the pixels in the image alone: torch's
        AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) on an odd side too."""
        if avg_down and strides > 1:
            x = layers.AveragePooling2D(2, strides, padding="same", name=f"{prefix}_shortcut_pool")(x)
            strides = 1
        y = self.conv(x, filters, 1, strides, name=f"{prefix}_shortcut")
        return self.norm(y, name=f"{prefix}_shortcut_bn") if with_norm else y

    def residual(self, branch, shortcut, *, prefix, drop_path):
        """The block's sum: squeeze-and-excitation and stochastic depth on the branch, before the
        addition, in timm's order (se, then drop_path, then the add)."""
        branch = self.drop_path(self.excite(branch, prefix=prefix), drop_path, prefix=prefix)
        return layers.Add(name=f"{prefix}_add")([branch, shortcut])

    def excite(self, x, *, prefix):
        """Squeeze-and-excitation (Hu et al. 2018) on a residual branch when `se_reduction` r is set:
        global average pool, 1x1 conv to C / r channels (at least 1), the net's activation, 1x1 conv back
        to C, sigmoid, times the branch (timm's SEModule, torchvision's SqueezeExcitation). C / r is the
        paper's (its Caffe models: 256 -> 16); timm rounds it to a multiple of 8, at least 8, which on
        the CIFAR nets' 16 to 64 channels is another module. timm keeps ReLU inside; here `activation`
        is every activation of the net. Initialised as timm's: the convs' kernels as every conv here
        (fan-out normal), their biases torch's default U(+-1/sqrt(fan_in))."""
        if not self.se_reduction:
            return x
        channels = x.shape[-1]
        squeezed = max(1, channels // self.se_reduction)
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool")(x)
        for name, filters, fan_in in (("reduce", squeezed, channels), ("expand", channels, squeezed)):
            bound = 1.0 / math.sqrt(fan_in)
            s = layers.Conv2D(filters, 1, kernel_initializer=msr_initializer(next(self._added_seeds)),
                              bias_initializer=keras.initializers.RandomUniform(-bound, bound,
                                                                                seed=next(self._added_seeds)),
                              name=f"{prefix}_se_{name}")(s)
            if name == "reduce":
                s = self.act(s, name=f"{prefix}_se_relu")
        s = layers.Activation("sigmoid", name=f"{prefix}_se_gate")(s)
        return layers.Multiply(name=f"{prefix}_se_scale")([x, s])

    def drop_path(self, x, rate, *, prefix):
        """Stochastic depth (Huang et al. 2016) as timm's drop_path: the branch of each sample kept with
        probability 1 - rate and scaled by 1 / (1 - rate) in training, the identity at inference; that
        is Keras's Dropout with one draw per sample (noise_shape (None, 1, 1, 1)). Huang et al.'s Lua
        code (yueatsprograms/Stochastic_Depth) departs: one draw for the whole mini-batch, no scaling
        in training, the branch scaled by 1 - rate at test time."""
        if not rate:
            return x
        return layers.Dropout(rate, noise_shape=(None, 1, 1, 1), seed=next(self._added_seeds),
                              name=f"{prefix}_drop_path")(x)

    def head(self, x, num_classes, *, preactivated):
        """Global average pooling and the classifier; logits stay float32 under mixed precision."""
        if preactivated:
            x = self.norm_act(x, prefix="head")
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
        bound = 1.0 / math.sqrt(x.shape[-1])  # nn.Linear's reset: U(+-1/sqrt(fan_in)), weight and bias
        kernel = keras.initializers.RandomUniform(-bound, bound, seed=self.seed())
        bias = (keras.initializers.RandomUniform(-bound, bound, seed=self.seed())
                if self.initialization.classifier_bias == "uniform" else "zeros")
        return layers.Dense(num_classes, kernel_initializer=kernel, bias_initializer=bias, dtype="float32",
                            name="head_dense")(x)


def _respelled(name: str, word: str, new: str) -> str:
    """A layer's reference name with its kind's word replaced: group1_block1_bn2 -> group1_block1_gn2."""
    return re.sub(rf"(^|_){word}(\d*)$", rf"\g<1>{new}\g<2>", name)
