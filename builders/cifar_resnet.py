"""He et al.'s CIFAR ResNets (CVPR 2016, arXiv:1512.03385, section 4.2) and their
pre-activation bottleneck successors (ECCV 2016, arXiv:1603.05027).

`cifar_resnet`: 6n+2 layers, post-activation (conv-BN-ReLU), widths 16/32/64, basic blocks.
Shortcuts where the shape changes are option A ("zero_pad": subsample and pad channels with
zeros, no parameters, the paper's CIFAR choice) or option B ("projection": a 1x1 conv).

`preact_resnet`: 9n+2 layers (ResNet-164, ResNet-1001), BN-ReLU-conv bottlenecks
1x1 -> 3x3 -> 1x1 at widths 16/32/64 expanded 4x, projection shortcuts where the shape changes.

Initial weights as facebook/fb.resnet.torch draws them (models/resnet.lua, whose CIFAR nets
reproduce He et al.'s table; KaimingHe/resnet-1k-layers, the pre-activation nets' own code, does
the same): every conv normal(0, sqrt(2 / (k * k * out))) (`ConvInit`, fan-out), BN gamma 1 and beta
0 (`BNInit`), the classifier's weight U(+-1/sqrt(fan_in)) (Torch7's `nn.Linear`) and its bias 0.
Where ours departs: the draws come from TensorFlow's generator, not Torch's (same distributions,
other numbers); resnet-1k-layers strides the first 1x1 conv of a pre-activation bottleneck, ours
its 3x3 conv, as torchvision's "v1.5" (same weights and parameter count, another function).
"""

from __future__ import annotations

import keras
from keras import layers

from builders.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    BOTTLENECK_EXPANSION,
    BOTTLENECK_STRIDES,
    CIFAR_GROUP_STRIDES,
    CIFAR_GROUP_WIDTHS,
    PROJECTIONS,
    SHORTCUTS,
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

INITIALIZATION = Initialization(
    reference="facebook/fb.resnet.torch, models/resnet.lua (and KaimingHe/resnet-1k-layers): ConvInit (convs, "
              "fan-out), BNInit (gamma 1), classifier bias 0",
    bn_gamma="ones", classifier_bias="zeros")


@keras.saving.register_keras_serializable(package="builders")
class ZeroPadShortcut(layers.Layer):
    """Option A shortcut: keep every `strides`-th pixel, append zero channels up to `filters`."""

    def __init__(self, filters, strides, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides

    def call(self, x):
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.filters - x.shape[-1]
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])

    def keras_equivalent(self) -> keras.Model:
        """The same function in Keras's own layers, for a saved net (builders.portable): a 1x1 max pool
        with the stride keeps every `strides`-th pixel; the channels, made a third spatial axis, get
        their zeros from a 3-D zero padding. Needs the layer called (its input's static shape)."""
        _, h, w, channels = self.input.shape
        extra = self.filters - channels
        inputs = keras.Input((h, w, channels), dtype=self.compute_dtype, name=f"{self.name}_input")
        x = layers.MaxPooling2D(1, self.strides, dtype=self.dtype_policy, name=f"{self.name}_subsample")(inputs)
        _, h, w, _ = x.shape
        x = layers.Reshape((h, w, channels, 1), dtype=self.dtype_policy, name=f"{self.name}_channels_as_axis")(x)
        x = layers.ZeroPadding3D(((0, 0), (0, 0), (0, extra)), dtype=self.dtype_policy, name=f"{self.name}_pad")(x)
        x = layers.Reshape((h, w, self.filters), dtype=self.dtype_policy, name=f"{self.name}_channels")(x)
        return keras.Model(inputs, x, name=self.name)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        side = lambda s: None if s is None else -(-s // self.strides)
        return (n, side(h), side(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _depth_to_n(depth, *, per_block, family, examples):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < per_block + 2 or (depth - 2) % per_block:
        raise ValueError(f"depth={depth!r} is not valid for {family}; expected {per_block}n+2 "
                         f"({examples}).")
    return (depth - 2) // per_block


def cifar_resnet(*, depth=20, shortcut="zero_pad", num_classes=10, input_shape=(32, 32, 3),
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, bn_gamma=None, padding="symmetric",
                 drop_path_rate=0.0, zero_init_residual=False, se_reduction=0, activation="relu", norm="batch",
                 name=None) -> keras.Model:
    """ResNet-depth of He et al. for CIFAR: ResNet-20/32/44/56/110 for n = 3/5/7/9/18. The modern
    options: builders.layers.LayerFactory (`zero_init_residual` starts each block's bn2 gamma at 0)."""
    n = _depth_to_n(depth, per_block=6, family="He et al.'s CIFAR ResNet", examples="20, 32, 44, 56, 110, ...")
    # Every shortcut: option A (the paper's CIFAR choice), B (a strided 1x1 conv, without a norm as He et
    # al.'s option B is counted here: 1,730,522 params for ResNet-110) or ResNet-D's pool before that conv.
    check_choice("shortcut", shortcut, SHORTCUTS, family="He et al.'s CIFAR ResNet")
    check_rate("drop_path_rate", drop_path_rate)
    check_positive_int("num_classes", num_classes)
    check_model_name(name)
    allow_deep_graph(depth)
    f = LayerFactory(INITIALIZATION.with_bn_gamma(bn_gamma), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                     padding=padding, activation=activation, norm=norm, se_reduction=se_reduction,
                     zero_init_residual=zero_init_residual)

    inputs = keras.Input(check_input_shape(input_shape), name="image")
    x = f.norm_act(f.conv(inputs, CIFAR_GROUP_WIDTHS[0], 3, name="stem_conv"), prefix="stem")

    def basic_block(x, width, stride, *, prefix, drop_path):
        y = f.norm_act(f.conv(x, width, 3, stride, name=f"{prefix}_conv1"), prefix=prefix, suffix="1")
        y = f.norm(f.conv(y, width, 3, name=f"{prefix}_conv2"), name=f"{prefix}_bn2", residual_end=True)
        if stride == 1 and x.shape[-1] == width:
            residual = x
        elif shortcut in PROJECTIONS:
            residual = f.projection(x, width, stride, prefix=prefix, avg_down=shortcut == "avg_down", with_norm=False)
        else:
            residual = ZeroPadShortcut(width, stride, name=f"{prefix}_shortcut")(x)
        return f.act(f.residual(y, residual, prefix=prefix, drop_path=drop_path), name=f"{prefix}_out_relu")

    x = stages(x, basic_block, widths=CIFAR_GROUP_WIDTHS, strides=CIFAR_GROUP_STRIDES, blocks_per_group=[n] * 3,
               drop_path_rate=drop_path_rate)
    outputs = f.head(x, num_classes, preactivated=False)
    suffix = "" if shortcut == "zero_pad" else f"-{shortcut.replace('_', '-')}"
    return keras.Model(inputs, outputs, name=name or f"ResNet-{depth}{suffix}")


def preact_resnet(*, depth=164, num_classes=10, input_shape=(32, 32, 3), bn_momentum=BN_MOMENTUM,
                  bn_epsilon=BN_EPSILON, bn_gamma=None, padding="symmetric", shortcut="projection",
                  bottleneck_stride="3x3", drop_path_rate=0.0, zero_init_residual=False, se_reduction=0,
                  activation="relu", norm="batch", name=None) -> keras.Model:
    """Pre-activation bottleneck ResNet-depth: ResNet-164 and ResNet-1001 for n = 18 and 111. The modern
    options: builders.layers.LayerFactory (`zero_init_residual` zeros each block's conv3, as timm's
    PreActBottleneck.zero_init_last: a pre-activation branch ends in a conv); `bottleneck_stride="1x1"`
    strides the first conv, as resnet-1k-layers does."""
    n = _depth_to_n(depth, per_block=9, family="a pre-activation bottleneck ResNet",
                    examples="164, 1001, ...")
    check_choice("shortcut", shortcut, PROJECTIONS, family="a pre-activation ResNet")
    check_choice("bottleneck_stride", bottleneck_stride, BOTTLENECK_STRIDES)
    check_rate("drop_path_rate", drop_path_rate)
    check_positive_int("num_classes", num_classes)
    check_model_name(name)
    allow_deep_graph(depth)
    f = LayerFactory(INITIALIZATION.with_bn_gamma(bn_gamma), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                     padding=padding, activation=activation, norm=norm, se_reduction=se_reduction,
                     zero_init_residual=zero_init_residual)

    inputs = keras.Input(check_input_shape(input_shape), name="image")
    x = f.conv(inputs, CIFAR_GROUP_WIDTHS[0], 3, name="stem_conv")

    def bottleneck(x, width, stride, *, prefix, drop_path):
        out_width = width * BOTTLENECK_EXPANSION
        preactivated = f.norm_act(x, prefix=prefix, suffix="1")
        if stride != 1 or x.shape[-1] != out_width:
            residual = f.projection(preactivated, out_width, stride, prefix=prefix, avg_down=shortcut == "avg_down",
                                    with_norm=False)
        else:
            residual = x
        strides = (stride, 1) if bottleneck_stride == "1x1" else (1, stride)  # of conv1 and conv2
        y = f.conv(preactivated, width, 1, strides[0], name=f"{prefix}_conv1")
        y = f.conv(f.norm_act(y, prefix=prefix, suffix="2"), width, 3, strides[1], name=f"{prefix}_conv2")
        y = f.conv(f.norm_act(y, prefix=prefix, suffix="3"), out_width, 1, name=f"{prefix}_conv3", residual_end=True)
        return f.residual(y, residual, prefix=prefix, drop_path=drop_path)

    x = stages(x, bottleneck, widths=CIFAR_GROUP_WIDTHS, strides=CIFAR_GROUP_STRIDES, blocks_per_group=[n] * 3,
               drop_path_rate=drop_path_rate)
    outputs = f.head(x, num_classes, preactivated=True)
    return keras.Model(inputs, outputs, name=name or f"PreAct-ResNet-{depth}")
