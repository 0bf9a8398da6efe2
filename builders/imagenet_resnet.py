"""ImageNet-style ResNets and their Plain twins (He et al., CVPR 2016, arXiv:1512.03385, Table 1).

7x7/2 conv stem and 3x3/2 max-pool, four groups at widths 64/128/256/512 (strides 1, 2, 2, 2)
of basic blocks (ResNet-18/34) or bottlenecks expanded 4x (ResNet-50/101/152), global average
pooling and a dense classifier. Post-activation; projection shortcuts (1x1 conv + BN) where
the shape changes, as torchvision, whose parameter counts these match. The stride of a
bottleneck sits on its 3x3 conv (torchvision's "v1.5"; the parameter count is the same).

`residual=False` gives the Plain net of the paper: the same layers without any shortcut.

Initial weights as torchvision's `ResNet.__init__` draws them: every conv
`kaiming_normal_(mode="fan_out", nonlinearity="relu")`, normal(0, sqrt(2 / (k * k * out))); BN gamma
1 and beta 0 (`zero_init_residual=False`, its default); the classifier nn.Linear's default, weight
and bias U(+-1/sqrt(fan_in)). The Plain nets start the same way (torchvision has none; the paper
trains both alike). Where ours departs: the draws come from TensorFlow's generator, not PyTorch's
(same distributions, other numbers).
"""

from __future__ import annotations

import keras
from keras import layers

from builders.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    BOTTLENECK_EXPANSION,
    BOTTLENECK_STRIDES,
    PROJECTIONS,
    Initialization,
    LayerFactory,
    check_choice,
    check_flag,
    check_input_shape,
    check_model_name,
    check_positive_int,
    check_rate,
    stages,
)

INITIALIZATION = Initialization(
    reference="torchvision.models.resnet: kaiming_normal_ (convs, fan-out), BN gamma 1, nn.Linear's default "
              "(classifier weight and bias U(+-1/sqrt(fan_in)))",
    bn_gamma="ones", classifier_bias="uniform")
STEMS = ("standard", "deep")  # the 7x7/2 conv, or ResNet-C's three 3x3 convs
DEEP_STEM_WIDTHS = (32, 32, 64)  # timm's stem_width=32 (resnet50d)
GROUP_WIDTHS = (64, 128, 256, 512)
GROUP_STRIDES = (1, 2, 2, 2)
# depth -> (block, blocks per group), from Table 1 of the paper.
ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def imagenet_resnet(*, depth=50, residual=True, num_classes=1000, input_shape=(224, 224, 3),
                    bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, bn_gamma=None, padding="symmetric",
                    stem="standard", shortcut="projection", bottleneck_stride="3x3", drop_path_rate=0.0,
                    zero_init_residual=False, se_reduction=0, activation="relu", norm="batch",
                    name=None) -> keras.Model:
    """ResNet-depth (or Plain-depth with `residual=False`) for depth in 18, 34, 50, 101, 152.

    Bag of Tricks' tweaks (He et al. 2019, timm's resnet50d = `stem="deep", shortcut="avg_down"`):
    ResNet-B is `bottleneck_stride="3x3"`, ours by default ("1x1": the original's first conv strides);
    ResNet-C `stem="deep"`; ResNet-D `shortcut="avg_down"`. The other modern options:
    builders.layers.LayerFactory (`zero_init_residual` starts each block's last BN gamma at 0, as
    torchvision's option)."""
    if depth not in ARCHITECTURES:
        raise ValueError(f"depth={depth!r} is not valid for an ImageNet-style ResNet; expected one of "
                         f"{', '.join(map(str, ARCHITECTURES))}.")
    check_flag("residual", residual)
    check_choice("stem", stem, STEMS)
    check_choice("shortcut", shortcut, PROJECTIONS, family="an ImageNet-style ResNet")
    check_choice("bottleneck_stride", bottleneck_stride, BOTTLENECK_STRIDES)
    check_rate("drop_path_rate", drop_path_rate)
    check_flag("zero_init_residual", zero_init_residual)
    check_positive_int("num_classes", num_classes)
    check_model_name(name)
    block, blocks_per_group = ARCHITECTURES[depth]
    if block == "basic" and bottleneck_stride != "3x3":
        raise ValueError(f"bottleneck_stride={bottleneck_stride!r} is not valid for ResNet-{depth}, whose blocks are "
                         f"basic (two 3x3 convs, the first strided); expected '3x3' or a bottleneck depth (50, 101, 152).")
    if not residual:  # a Plain net has no sum to skip to, nor a branch to start as the identity
        for option, value, off in (("drop_path_rate", drop_path_rate, 0.0), ("zero_init_residual", zero_init_residual,
                                   False), ("shortcut", shortcut, "projection")):
            if value != off:
                raise ValueError(f"{option}={value!r} is not valid for a Plain net (residual=False), which has no "
                                 f"shortcuts; expected {off!r}.")
    f = LayerFactory(INITIALIZATION.with_bn_gamma(bn_gamma), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                     padding=padding, activation=activation, norm=norm, se_reduction=se_reduction,
                     zero_init_residual=zero_init_residual)

    inputs = keras.Input(check_input_shape(input_shape, min_side=32), name="image")
    if stem == "deep":  # ResNet-C, timm's stem_type="deep": 3x3 convs 32/2, 32, 64, then the stem's norm
        x = f.norm_act(f.conv(inputs, DEEP_STEM_WIDTHS[0], 3, 2, name="stem_conv1"), prefix="stem", suffix="1")
        x = f.norm_act(f.conv(x, DEEP_STEM_WIDTHS[1], 3, name="stem_conv2"), prefix="stem", suffix="2")
        x = f.conv(x, DEEP_STEM_WIDTHS[2], 3, name="stem_conv3")
    else:
        x = f.conv(inputs, 64, 7, 2, name="stem_conv")
    x = _stem_pool(f.norm_act(x, prefix="stem"), padding=padding, activation=activation)

    def block_of_table_1(x, width, stride, *, prefix, drop_path):
        if block == "basic":
            out_width = width
            y = f.norm_act(f.conv(x, width, 3, stride, name=f"{prefix}_conv1"), prefix=prefix, suffix="1")
            y = f.norm(f.conv(y, width, 3, name=f"{prefix}_conv2"), name=f"{prefix}_bn2", residual_end=True)
        else:
            out_width = width * BOTTLENECK_EXPANSION
            strides = (stride, 1) if bottleneck_stride == "1x1" else (1, stride)  # of conv1 and conv2
            y = f.norm_act(f.conv(x, width, 1, strides[0], name=f"{prefix}_conv1"), prefix=prefix, suffix="1")
            y = f.norm_act(f.conv(y, width, 3, strides[1], name=f"{prefix}_conv2"), prefix=prefix, suffix="2")
            y = f.norm(f.conv(y, out_width, 1, name=f"{prefix}_conv3"), name=f"{prefix}_bn3", residual_end=True)
        if residual:
            if stride != 1 or x.shape[-1] != out_width:
                skip = f.projection(x, out_width, stride, prefix=prefix, avg_down=shortcut == "avg_down")
            else:
                skip = x
            y = f.residual(y, skip, prefix=prefix, drop_path=drop_path)
        else:
            y = f.excite(y, prefix=prefix)
        return f.act(y, name=f"{prefix}_out_relu")

    x = stages(x, block_of_table_1, widths=GROUP_WIDTHS, strides=GROUP_STRIDES, blocks_per_group=blocks_per_group,
               drop_path_rate=drop_path_rate)
    outputs = f.head(x, num_classes, preactivated=False)
    return keras.Model(inputs, outputs, name=name or f"{'ResNet' if residual else 'Plain'}-{depth}")


def _stem_pool(x, *, padding, activation):
    """torchvision's MaxPool2d(3, 2, padding=1), which pads with -inf. After a ReLU every input is >= 0,
    so zero padding is the same; SiLU and GELU go below 0, so there the pool is a 3x3 max of stride 1
    ("same": it pads 1 on every side and ignores the padding), then every other pixel: the same windows."""
    if padding == "same":  # TensorFlow's convention, a named departure: padded at the bottom and right
        return layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    if activation == "relu":
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        return layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    x = layers.MaxPooling2D(3, 1, padding="same", name="stem_pool")(x)
    return layers.MaxPooling2D(1, 2, name="stem_pool_subsample")(x)
