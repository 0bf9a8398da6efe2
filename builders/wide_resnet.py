"""Wide Residual Networks, WRN-n-k (Zagoruyko & Komodakis, BMVC 2016, arXiv:1605.07146).

conv3x3(16), then three groups of N blocks at widths 16k, 32k, 64k with strides 1, 2, 2,
then BN-ReLU, global average pooling and a dense classifier. Blocks are pre-activation
(BN-ReLU-conv); the first conv of a block carries the stride; the shortcut is a 1x1 conv of
the pre-activated input where the width or the stride changes, else the identity.
Reference: szagoruyko/wide-residual-networks, pytorch/resnet.py (the function) and
models/wide-resnet.lua (the initialisation, below).

Initial weights as the official Lua code that trained the paper's nets draws them: every conv
normal(0, sqrt(2 / (k * k * out))) (`utils.MSRinit`, fan-out), BN gamma U(0, 1) and beta 0 (Torch7's
`nn.BatchNormalization:reset()`, left as it is), the classifier's weight U(+-1/sqrt(fan_in)) (Torch7's
`nn.Linear`) and its bias 0 (`utils.FCinit`). Where ours departs: the draws come from TensorFlow's
generator, not Torch's, so the same seed gives other numbers from the same distributions. The repo's
later PyTorch port draws otherwise (convs and classifier `kaiming_normal_` on fan-in, BN gamma
U(0, 1)); the Lua code is the one the paper's tables come from. `bn_gamma="ones"` starts BN's gamma
at 1 instead, PyTorch's nn.BatchNorm2d default (a named departure: recorded in config.json and in the
run id).

    model = wide_resnet(depth=28, widen_factor=2, dropout_rate=0.3)   # WRN-28-2 + dropout
    model = wide_resnet(depth=40, widen_factor=2, block_type="B(1,3,1)")
"""

from __future__ import annotations

import functools
import re

import keras
from keras import layers

from builders.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    CIFAR_GROUP_STRIDES,
    CIFAR_GROUP_WIDTHS,
    PROJECTIONS,
    Initialization,
    LayerFactory,
    allow_deep_graph,
    check_choice,
    check_input_shape,
    check_model_name,
    check_positive_int,
    check_rate,
    stages,
)

# Where dropout sits inside a block, before every conv but the first:
#   "before_conv": BN-ReLU-dropout-conv, as the paper and its reference code;
#   "after_conv":  conv-dropout-BN-ReLU, as many hand-written Keras ports do.
DROPOUT_POSITIONS = ("before_conv", "after_conv")

INITIALIZATION = Initialization(
    reference="szagoruyko/wide-residual-networks, models/wide-resnet.lua: utils.MSRinit (convs, fan-out), "
              "utils.FCinit (classifier bias 0), Torch7's nn.BatchNormalization reset (gamma U(0, 1))",
    bn_gamma="uniform", classifier_bias="zeros")

_BLOCK_TYPE = re.compile(r"B\((\d+(?:,\d+)*)\)")


def parse_block_type(block_type: str) -> tuple[int, ...]:
    """The paper's block notation, "B(3,1,3)", as its kernel sizes (3, 1, 3).

    The deepening factor l of the paper is the length of the result.
    """
    match = _BLOCK_TYPE.fullmatch(str(block_type).replace(" ", ""))
    kernels = tuple(int(k) for k in match.group(1).split(",")) if match else ()
    if not kernels or any(k % 2 == 0 for k in kernels):
        raise ValueError(f"block_type={block_type!r} is not valid; expected the paper's notation with odd "
                         f"kernel sizes, e.g. 'B(3,3)', 'B(3,1,3)', 'B(1,3,1)', 'B(3,1)', 'B(3)'.")
    return kernels


def format_block_type(kernels) -> str:
    """The paper's notation, "B(3,1,3)", for tables, diagrams and titles."""
    return "B(" + ",".join(str(k) for k in kernels) + ")"


def model_name(depth, widen_factor, kernels) -> str:
    """The net's Keras name: "WRN-28-10", or "WRN-40-2-B1_3_1" for another block type. Not the
    paper's "B(1,3,1)": TensorFlow refuses parentheses and commas in the name scope Keras opens
    for the model (see builders.layers.MODEL_NAME)."""
    suffix = "" if tuple(kernels) == (3, 3) else "-B" + "_".join(str(k) for k in kernels)
    return f"WRN-{depth}-{widen_factor}{suffix}"


def blocks_per_group_for(depth) -> int:
    """N = (depth - 4) / 6, the paper's labelling for every block type (its Table 2 params)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth={depth!r} is not valid for a Wide ResNet; expected 6N+4 with N >= 1 "
                         f"(10, 16, 22, 28, 34, 40, ...).")
    return (depth - 4) // 6


def wide_resnet(*, depth=28, widen_factor=10, block_type="B(3,3)", dropout_rate=0.0, num_classes=10,
                input_shape=(32, 32, 3), blocks_per_group=None, dropout_position="before_conv",
                bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, bn_gamma=None, padding="symmetric",
                shortcut="projection", drop_path_rate=0.0, zero_init_residual=False, se_reduction=0,
                activation="relu", norm="batch", name=None) -> keras.Model:
    """WRN-depth-widen_factor with the given block type.

    `blocks_per_group` overrides N = (depth - 4) / 6; the deepening-factor study uses it to
    hold the number of convolutions fixed while the block gets longer (depth stays the label).
    The modern options (builders.layers.LayerFactory): `shortcut="avg_down"` (ResNet-D), stochastic
    depth, `zero_init_residual` (the branch's last conv at 0, as timm's pre-activation blocks: the
    branch ends in a conv, not a norm), squeeze-and-excitation, another activation or norm.
    """
    kernels = parse_block_type(block_type)
    if blocks_per_group is None:
        blocks_per_group = blocks_per_group_for(depth)
    else:
        check_positive_int("depth", depth)
        check_positive_int("blocks_per_group", blocks_per_group)
    check_positive_int("widen_factor", widen_factor)
    check_rate("dropout_rate", dropout_rate)
    check_rate("drop_path_rate", drop_path_rate)
    check_choice("shortcut", shortcut, PROJECTIONS, family="a Wide ResNet")  # the reference projects; ResNet-D pools first
    check_choice("dropout_position", dropout_position, DROPOUT_POSITIONS)
    check_positive_int("num_classes", num_classes)
    check_model_name(name)
    allow_deep_graph(depth)
    f = LayerFactory(INITIALIZATION.with_bn_gamma(bn_gamma), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                     padding=padding, activation=activation, norm=norm, se_reduction=se_reduction,
                     zero_init_residual=zero_init_residual)

    inputs = keras.Input(check_input_shape(input_shape), name="image")
    x = f.conv(inputs, CIFAR_GROUP_WIDTHS[0], 3, name="stem_conv")
    block = functools.partial(_block, f, kernels=kernels, dropout_rate=dropout_rate, dropout_position=dropout_position,
                              avg_down=shortcut == "avg_down")
    x = stages(x, block, widths=[w * widen_factor for w in CIFAR_GROUP_WIDTHS], strides=CIFAR_GROUP_STRIDES,
               blocks_per_group=[blocks_per_group] * len(CIFAR_GROUP_WIDTHS), drop_path_rate=drop_path_rate)
    outputs = f.head(x, num_classes, preactivated=True)
    return keras.Model(inputs, outputs, name=name or model_name(depth, widen_factor, kernels))


def _block(f, x, width, stride, *, kernels, dropout_rate, dropout_position, avg_down, prefix, drop_path):
    preactivated = f.norm_act(x, prefix=prefix, suffix="1")
    if stride != 1 or x.shape[-1] != width:
        # The reference projects the pre-activated input, not the raw one.
        shortcut = f.projection(preactivated, width, stride, prefix=prefix, avg_down=avg_down, with_norm=False)
    else:
        shortcut = x
    y = preactivated
    for i, kernel in enumerate(kernels, start=1):
        if i > 1:
            if dropout_rate and dropout_position == "after_conv":
                y = layers.Dropout(dropout_rate, name=f"{prefix}_dropout{i}")(y)
            y = f.norm_act(y, prefix=prefix, suffix=str(i))
            if dropout_rate and dropout_position == "before_conv":
                y = layers.Dropout(dropout_rate, name=f"{prefix}_dropout{i}")(y)
        y = f.conv(y, width, kernel, stride if i == 1 else 1, name=f"{prefix}_conv{i}", residual_end=i == len(kernels))
    return f.residual(y, shortcut, prefix=prefix, drop_path=drop_path)
