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
    Initialization,
    LayerFactory,
    check_input_shape,
    check_model_name,
    check_positive_int,
    stages,
)

INITIALIZATION = Initialization(
    reference="torchvision.models.resnet: kaiming_normal_ (convs, fan-out), BN gamma 1, nn.Linear's default "
              "(classifier weight and bias U(+-1/sqrt(fan_in)))",
    bn_gamma="ones", classifier_bias="uniform")
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
                    name=None) -> keras.Model:
    """ResNet-depth (or Plain-depth with `residual=False`) for depth in 18, 34, 50, 101, 152."""
    if depth not in ARCHITECTURES:
        raise ValueError(f"depth={depth!r} is not valid for an ImageNet-style ResNet; expected one of "
                         f"{', '.join(map(str, ARCHITECTURES))}.")
    if not isinstance(residual, bool):
        raise ValueError(f"residual={residual!r} is not valid; expected True or False.")
    check_positive_int("num_classes", num_classes)
    check_model_name(name)
    block, blocks_per_group = ARCHITECTURES[depth]
    f = LayerFactory(INITIALIZATION.with_bn_gamma(bn_gamma), bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                     padding=padding)

    inputs = keras.Input(check_input_shape(input_shape, min_side=32), name="image")
    x = f.bn_relu(f.conv(inputs, 64, 7, 2, name="stem_conv"), prefix="stem")
    # Zero padding before the max-pool equals torchvision's -inf padding: inputs are >= 0 after ReLU.
    if padding == "symmetric":
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, 2, padding="valid" if padding == "symmetric" else "same", name="stem_pool")(x)

    def block_of_table_1(x, width, stride, *, prefix):
        if block == "basic":
            out_width = width
            y = f.bn_relu(f.conv(x, width, 3, stride, name=f"{prefix}_conv1"), prefix=prefix, suffix="1")
            y = f.bn(f.conv(y, width, 3, name=f"{prefix}_conv2"), name=f"{prefix}_bn2")
        else:
            out_width = width * BOTTLENECK_EXPANSION
            y = f.bn_relu(f.conv(x, width, 1, name=f"{prefix}_conv1"), prefix=prefix, suffix="1")
            y = f.bn_relu(f.conv(y, width, 3, stride, name=f"{prefix}_conv2"), prefix=prefix, suffix="2")
            y = f.bn(f.conv(y, out_width, 1, name=f"{prefix}_conv3"), name=f"{prefix}_bn3")
        if residual:
            if stride != 1 or x.shape[-1] != out_width:
                shortcut = f.bn(f.conv(x, out_width, 1, stride, name=f"{prefix}_shortcut"), name=f"{prefix}_shortcut_bn")
            else:
                shortcut = x
            y = layers.Add(name=f"{prefix}_add")([y, shortcut])
        return f.relu(y, name=f"{prefix}_out_relu")

    x = stages(x, block_of_table_1, widths=GROUP_WIDTHS, strides=GROUP_STRIDES, blocks_per_group=blocks_per_group)
    outputs = f.head(x, num_classes, preactivated=False)
    return keras.Model(inputs, outputs, name=name or f"{'ResNet' if residual else 'Plain'}-{depth}")
