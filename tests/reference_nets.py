"""Independent reference nets: the forward passes of the reference codes and their initialisation,
for checking that our builders compute the same function from the same weights and start where
the references start.

- `wrn_forward`: szagoruyko/wide-residual-networks, pytorch/resnet.py (inference or training mode),
  generalised over the block type (`kernels`; (3, 3) is the original line for line).
- `cifar_resnet_forward`: He et al.'s CIFAR ResNet as facebook/fb.resnet.torch writes it
  (models/resnet.lua: conv-BN-ReLU, option A's strided, zero-padded identity or option B's 1x1
  projection where the shape changes).
- `preact_resnet_forward`: the pre-activation bottleneck ResNet of KaimingHe/resnet-1k-layers, its
  stride on the 3x3 conv as our builder puts it (that code strides the first 1x1 conv; `stride_on`
  gives either).
- `imagenet_resnet_forward`: torchvision's ResNet-18/34/50/101/152 (`torchvision.models.resnet`, its
  stride on a bottleneck's 3x3 conv), and with `residual=False` the paper's Plain nets.
- `reference_init`: the weights as the reference codes draw them, in PyTorch: MSR's normal(0,
  sqrt(2 / (k * k * out))) for every conv (torchvision's `kaiming_normal_(mode="fan_out")`), BN
  gamma U(0, 1) (Torch7's default reset, which the WRN code keeps) or 1 (fb.resnet.torch's BNInit,
  torchvision), beta 0, running mean 0 and variance 1, nn.Linear's U(+-1/sqrt(fan_in)) weight and a
  bias of 0 (the Torch codes) or nn.Linear's own (torchvision).

The forward passes are written against a tiny `ops` interface with PyTorch's conventions (NCHW
activations, OIHW kernels, `padding` added on every side) so that they run on
`torch.nn.functional` when PyTorch is installed and on the NumPy ops below everywhere else. Their
parameters are named as the WRN code names them (`group0.block0.conv0`, `.bn0`, `.convdim`, `fc`);
`params_from_keras` maps our layer names onto them.
"""

from __future__ import annotations

import math
import re

import numpy as np

CIFAR_WIDTHS = (16, 32, 64)
# torchvision's ResNets (the paper's Table 1): depth -> (block, blocks per group), widths 64 ... 512.
IMAGENET_WIDTHS = (64, 128, 256, 512)
IMAGENET_RESNETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
                    101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


class NumpyOps:
    """torch.nn.functional's conv2d, batch_norm (eval), relu and linear, in NumPy float64."""

    @staticmethod
    def conv2d(x, w, stride=1, padding=0):
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        k = w.shape[-1]
        windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
        return np.einsum("nchwij,ocij->nohw", windows, w)

    @staticmethod
    def batch_norm(x, mean, var, weight, bias, eps):
        shape = (1, -1, 1, 1)
        return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0)

    @staticmethod
    def linear(x, weight, bias):
        return x @ weight.T + bias

    @staticmethod
    def mean_hw(x):
        return x.mean(axis=(2, 3))

    @staticmethod
    def zero_pad_channels(x, extra):
        return np.pad(x, ((0, 0), (0, extra), (0, 0), (0, 0)))

    @staticmethod
    def max_pool2d(x, kernel, stride, padding):
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
        windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
        return windows.max(axis=(-2, -1))

    @staticmethod
    def avg_pool2d_ceil(x, kernel, stride):
        """F.avg_pool2d(x, kernel, stride, ceil_mode=True, count_include_pad=False): windows past the
        border average the pixels inside it."""
        h, w = x.shape[2:]
        out_h, out_w = -(-(h - kernel) // stride) + 1, -(-(w - kernel) // stride) + 1
        out = np.empty(x.shape[:2] + (out_h, out_w))
        for i in range(out_h):
            for j in range(out_w):
                out[:, :, i, j] = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel].mean(axis=(2, 3))
        return out

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))


class TorchOps:
    """torch.nn.functional, in eval mode or, with `training=True`, as the reference trains:
    batch statistics, running averages updated with PyTorch's momentum 0.1."""

    def __init__(self, training=False):
        import torch
        import torch.nn.functional as F

        self.torch, self.F, self.training = torch, F, training

    def conv2d(self, x, w, stride=1, padding=0):
        return self.F.conv2d(x, w, stride=stride, padding=padding)

    def batch_norm(self, x, mean, var, weight, bias, eps):
        return self.F.batch_norm(x, mean, var, weight, bias, training=self.training, momentum=0.1, eps=eps)

    def relu(self, x):
        return self.F.relu(x)

    def linear(self, x, weight, bias):
        return self.F.linear(x, weight, bias)

    def mean_hw(self, x):
        # F.avg_pool2d(o, 8, 1, 0) on the 8x8 map, then view(-1): the global average.
        return x.mean(dim=(2, 3))

    def zero_pad_channels(self, x, extra):
        return self.F.pad(x, (0, 0, 0, 0, 0, extra))

    def max_pool2d(self, x, kernel, stride, padding):
        return self.F.max_pool2d(x, kernel, stride, padding)

    def avg_pool2d_ceil(self, x, kernel, stride):
        return self.F.avg_pool2d(x, kernel, stride, ceil_mode=True, count_include_pad=False)

    def sigmoid(self, x):
        return self.torch.sigmoid(x)


def _batch_norm(ops, params, x, base, eps):
    return ops.batch_norm(x, params[base + ".running_mean"], params[base + ".running_var"],
                          params[base + ".weight"], params[base + ".bias"], eps)


def _classifier(ops, params, features, pooled):
    return features if pooled else ops.linear(features, params["fc.weight"], params["fc.bias"])


def _stages(x, block, blocks_per_group):
    """Three groups of `blocks_per_group` blocks, strides 1, 2, 2 on each group's first block."""
    for g, stride in enumerate((1, 2, 2)):
        for b in range(blocks_per_group):
            x = block(x, f"group{g}.block{b}", g, stride if b == 0 else 1)
    return x


def wrn_forward(ops, params, x, *, depth, width, kernels=(3, 3), eps=1e-5, pooled=False):
    """resnet(depth, width, num_classes) of the reference code, `f(input, params, mode)`; the
    pooled features before the classifier with `pooled=True`."""
    assert (depth - 4) % 6 == 0, "depth should be 6n+4"

    def block(x, base, _, stride):
        o = ops.relu(_batch_norm(ops, params, x, base + ".bn0", eps))
        y = o
        for i, k in enumerate(kernels):
            if i > 0:
                y = ops.relu(_batch_norm(ops, params, y, f"{base}.bn{i}", eps))
            y = ops.conv2d(y, params[f"{base}.conv{i}"], stride=stride if i == 0 else 1, padding=(k - 1) // 2)
        if base + ".convdim" in params:
            return y + ops.conv2d(o, params[base + ".convdim"], stride=stride)
        return y + x

    x = _stages(ops.conv2d(x, params["conv0"], padding=1), block, (depth - 4) // 6)
    o = ops.relu(_batch_norm(ops, params, x, "bn", eps))
    return _classifier(ops, params, ops.mean_hw(o), pooled)


def cifar_resnet_forward(ops, params, x, *, depth, shortcut="zero_pad", eps=1e-5, pooled=False):
    """fb.resnet.torch's CIFAR ResNet-depth (6n+2), `shortcut` "zero_pad" (its type A) or "projection" (B)."""
    assert (depth - 2) % 6 == 0, "depth should be 6n+2"

    def block(x, base, g, stride):
        y = ops.relu(_batch_norm(ops, params, ops.conv2d(x, params[base + ".conv0"], stride, 1), base + ".bn0", eps))
        y = _batch_norm(ops, params, ops.conv2d(y, params[base + ".conv1"], 1, 1), base + ".bn1", eps)
        if x.shape[1] == CIFAR_WIDTHS[g] and stride == 1:
            residual = x
        elif shortcut == "projection":
            residual = ops.conv2d(x, params[base + ".convdim"], stride)
        else:  # nn.SpatialAveragePooling(1, 1, stride, stride), then the zero channels appended
            residual = ops.zero_pad_channels(x[:, :, ::stride, ::stride], CIFAR_WIDTHS[g] - x.shape[1])
        return ops.relu(y + residual)

    x = ops.relu(_batch_norm(ops, params, ops.conv2d(x, params["conv0"], padding=1), "bn0", eps))
    x = _stages(x, block, (depth - 2) // 6)
    return _classifier(ops, params, ops.mean_hw(x), pooled)


def preact_resnet_forward(ops, params, x, *, depth, eps=1e-5, stride_on="conv1", pooled=False):
    """Pre-activation bottleneck ResNet-depth (9n+2) of resnet-1k-layers; `stride_on` "conv1" is
    its 3x3 conv (ours), "conv0" the first 1x1 (resnet-1k-layers')."""
    assert (depth - 2) % 9 == 0, "depth should be 9n+2"

    def block(x, base, _, stride):
        o = ops.relu(_batch_norm(ops, params, x, base + ".bn0", eps))
        residual = ops.conv2d(o, params[base + ".convdim"], stride) if base + ".convdim" in params else x
        y = ops.conv2d(o, params[base + ".conv0"], stride if stride_on == "conv0" else 1)
        y = ops.relu(_batch_norm(ops, params, y, base + ".bn1", eps))
        y = ops.conv2d(y, params[base + ".conv1"], stride if stride_on == "conv1" else 1, 1)
        y = ops.conv2d(ops.relu(_batch_norm(ops, params, y, base + ".bn2", eps)), params[base + ".conv2"])
        return y + residual

    x = _stages(ops.conv2d(x, params["conv0"], padding=1), block, (depth - 2) // 9)
    o = ops.relu(_batch_norm(ops, params, x, "bn", eps))
    return _classifier(ops, params, ops.mean_hw(o), pooled)


def imagenet_resnet_forward(ops, params, x, *, depth, residual=True, eps=1e-5, pooled=False, stem="standard",
                            avg_down=False, se=False):
    """torchvision's resnet{depth}() (`residual=False`: the same layers without shortcuts); with timm's
    resnet.py options: `stem="deep"` (stem_type="deep", stem_width=32: conv1.0, .1, .3, .4, .6), `avg_down`
    (downsample_avg: AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False), then the 1x1 conv at
    stride 1 and BN), `se` (SEModule after the last BN, before the add: `{block}.se.fc1`, `.fc2`)."""
    block, counts = IMAGENET_RESNETS[depth]
    if stem == "deep":
        x = ops.relu(_batch_norm(ops, params, ops.conv2d(x, params["conv1.0"], 2, 1), "conv1.1", eps))
        x = ops.relu(_batch_norm(ops, params, ops.conv2d(x, params["conv1.3"], 1, 1), "conv1.4", eps))
        x = ops.conv2d(x, params["conv1.6"], 1, 1)
    else:
        x = ops.conv2d(x, params["conv0"], 2, 3)
    x = ops.max_pool2d(ops.relu(_batch_norm(ops, params, x, "bn0", eps)), 3, 2, 1)
    for g, count in enumerate(counts):
        for b in range(count):
            base, stride = f"group{g}.block{b}", 2 if g > 0 and b == 0 else 1
            # The stride on the first 3x3 conv: a basic block's first, a bottleneck's second.
            kernels, strided = ((3, 3), 0) if block == "basic" else ((1, 3, 1), 1)
            y = x
            for i, k in enumerate(kernels):
                y = ops.conv2d(y, params[f"{base}.conv{i}"], stride if i == strided else 1, (k - 1) // 2)
                y = _batch_norm(ops, params, y, f"{base}.bn{i}", eps)
                y = ops.relu(y) if i < len(kernels) - 1 else y
            if se:
                y = squeeze_excitation(ops, params, y, f"{base}.se")
            if residual:
                y = y + (_downsample(ops, params, x, base, stride, avg_down, eps) if base + ".convdim" in params else x)
            x = ops.relu(y)
    return _classifier(ops, params, ops.mean_hw(x), pooled)


def _downsample(ops, params, x, base, stride, avg_down, eps):
    if avg_down and stride > 1:
        x, stride = ops.avg_pool2d_ceil(x, 2, stride), 1
    return _batch_norm(ops, params, ops.conv2d(x, params[base + ".convdim"], stride), base + ".bndim", eps)


def squeeze_excitation(ops, params, x, base):
    """torchvision's SqueezeExcitation (timm's SEModule): mean over the map, fc1 (a 1x1 conv, with bias),
    ReLU, fc2, sigmoid, times the input."""
    s = ops.mean_hw(x)
    s = ops.relu(ops.linear(s, params[base + ".fc1.weight"], params[base + ".fc1.bias"]))
    s = ops.sigmoid(ops.linear(s, params[base + ".fc2.weight"], params[base + ".fc2.bias"]))
    return x * s[:, :, None, None]


# ----------------------------------------------------------------------------------------------
# The parameters each net has, and their initial values as the reference codes draw them


def wrn_shapes(*, depth, width, kernels=(3, 3), num_classes=10):
    """{name: ("conv", OIHW) | ("bn", channels) | ("fc", (out, in))} of wrn_forward's net."""
    shapes, cin = {"conv0": ("conv", (16, 3, 3, 3))}, 16
    for g, base_width in enumerate(CIFAR_WIDTHS):
        cout = base_width * width
        for b in range((depth - 4) // 6):
            base = f"group{g}.block{b}"
            for i, k in enumerate(kernels):
                shapes[f"{base}.bn{i}"] = ("bn", cin if i == 0 else cout)
                shapes[f"{base}.conv{i}"] = ("conv", (cout, cin if i == 0 else cout, k, k))
            if cin != cout:
                shapes[f"{base}.convdim"] = ("conv", (cout, cin, 1, 1))
            cin = cout
    return {**shapes, "bn": ("bn", cin), "fc": ("fc", (num_classes, cin))}


def cifar_resnet_shapes(*, depth, shortcut="zero_pad", num_classes=10):
    shapes, cin = {"conv0": ("conv", (16, 3, 3, 3)), "bn0": ("bn", 16)}, 16
    for g, cout in enumerate(CIFAR_WIDTHS):
        for b in range((depth - 2) // 6):
            base = f"group{g}.block{b}"
            shapes.update({f"{base}.conv0": ("conv", (cout, cin, 3, 3)), f"{base}.bn0": ("bn", cout),
                           f"{base}.conv1": ("conv", (cout, cout, 3, 3)), f"{base}.bn1": ("bn", cout)})
            if cin != cout and shortcut == "projection":
                shapes[f"{base}.convdim"] = ("conv", (cout, cin, 1, 1))
            cin = cout
    return {**shapes, "fc": ("fc", (num_classes, cin))}


def preact_resnet_shapes(*, depth, num_classes=10):
    shapes, cin = {"conv0": ("conv", (16, 3, 3, 3))}, 16
    for g, inner in enumerate(CIFAR_WIDTHS):
        cout = 4 * inner
        for b in range((depth - 2) // 9):
            base = f"group{g}.block{b}"
            shapes.update({f"{base}.bn0": ("bn", cin), f"{base}.conv0": ("conv", (inner, cin, 1, 1)),
                           f"{base}.bn1": ("bn", inner), f"{base}.conv1": ("conv", (inner, inner, 3, 3)),
                           f"{base}.bn2": ("bn", inner), f"{base}.conv2": ("conv", (cout, inner, 1, 1))})
            if cin != cout:
                shapes[f"{base}.convdim"] = ("conv", (cout, cin, 1, 1))
            cin = cout
    return {**shapes, "bn": ("bn", cin), "fc": ("fc", (num_classes, cin))}


def imagenet_resnet_shapes(*, depth, residual=True, num_classes=1000):
    block, counts = IMAGENET_RESNETS[depth]
    expansion, kernels = (1, (3, 3)) if block == "basic" else (4, (1, 3, 1))
    shapes, cin = {"conv0": ("conv", (64, 3, 7, 7)), "bn0": ("bn", 64)}, 64
    for g, (width, count) in enumerate(zip(IMAGENET_WIDTHS, counts, strict=True)):
        cout = width * expansion
        for b in range(count):
            base, c = f"group{g}.block{b}", cin
            for i, k in enumerate(kernels):
                out = cout if i == len(kernels) - 1 else width
                shapes.update({f"{base}.conv{i}": ("conv", (out, c, k, k)), f"{base}.bn{i}": ("bn", out)})
                c = out
            if residual and (cin != cout or (g > 0 and b == 0)):
                shapes.update({f"{base}.convdim": ("conv", (cout, cin, 1, 1)), f"{base}.bndim": ("bn", cout)})
            cin = cout
    return {**shapes, "fc": ("fc", (num_classes, cin))}


def reference_init(torch, shapes, *, bn_gamma, classifier_bias):
    """The parameters of `shapes` drawn as the reference codes draw them, from torch's global
    generator (seed it with torch.manual_seed): bn_gamma "uniform" (Torch7's reset) or "ones",
    classifier_bias "zeros" (the Torch codes' FCinit / Linear bias zeroed) or "uniform" (nn.Linear's)."""
    params = {}
    for name, (kind, shape) in shapes.items():
        if kind == "conv":  # MSRinit / ConvInit: n = kW * kH * nOutputPlane
            params[name] = torch.randn(shape) * math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
        elif kind == "bn":
            params.update({f"{name}.weight": torch.rand(shape) if bn_gamma == "uniform" else torch.ones(shape),
                           f"{name}.bias": torch.zeros(shape), f"{name}.running_mean": torch.zeros(shape),
                           f"{name}.running_var": torch.ones(shape)})
        else:  # nn.Linear's reset: U(+-1/sqrt(fan_in)) for the weight and the bias
            bound = 1.0 / math.sqrt(shape[1])
            params[f"{name}.weight"] = torch.empty(shape).uniform_(-bound, bound)
            params[f"{name}.bias"] = (torch.empty(shape[0]).uniform_(-bound, bound) if classifier_bias == "uniform"
                                      else torch.zeros(shape[0]))
    return params


# ----------------------------------------------------------------------------------------------
# Our Keras weights under the references' names


_BLOCK_LAYER = re.compile(r"group(\d+)_block(\d+)_(conv|bn)(\d+)")
_FIXED_NAMES = {"stem_conv": "conv0", "stem_bn": "bn0", "head_bn": "bn",
                # the deep stem, as timm's nn.Sequential numbers it (ReLUs at 2 and 5)
                "stem_conv1": "conv1.0", "stem_bn1": "conv1.1", "stem_conv2": "conv1.3", "stem_bn2": "conv1.4",
                "stem_conv3": "conv1.6"}


def reference_name(layer_name: str) -> str | None:
    """Our layer's name in the references: group2_block1_conv1 -> group1.block0.conv0,
    group2_block1_shortcut -> group1.block0.convdim (its BN, _shortcut_bn -> .bndim), stem_conv ->
    conv0, head_dense -> fc."""
    if layer_name in _FIXED_NAMES:
        return _FIXED_NAMES[layer_name]
    if layer_name == "head_dense":
        return "fc"
    if match := _BLOCK_LAYER.fullmatch(layer_name):
        g, b, kind, i = match.groups()
        return f"group{int(g) - 1}.block{int(b) - 1}.{kind}{int(i) - 1}"
    if match := re.fullmatch(r"group(\d+)_block(\d+)_se_(reduce|expand)", layer_name):
        g, b, which = match.groups()
        return f"group{int(g) - 1}.block{int(b) - 1}.se.{'fc1' if which == 'reduce' else 'fc2'}"
    if match := re.fullmatch(r"group(\d+)_block(\d+)_shortcut(_bn)?", layer_name):
        g, b, bn = match.groups()
        return f"group{int(g) - 1}.block{int(b) - 1}.{'bndim' if bn else 'convdim'}"
    return None


def randomise_statistics(model, rng):
    """Batch norm's statistics, gamma and beta (fresh: mean 0, variance 1, which would hide a mix-up of
    them) and SE's biases moved away from their initial values, before comparing with a reference."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.1, layer.beta.shape))
        elif layer.name.endswith(("_se_reduce", "_se_expand")):
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape))


def params_from_keras(model):
    """Our Keras weights under the references' parameter names and layouts (OIHW, out x in)."""
    import keras

    params = {}
    for layer in model.layers:
        name = reference_name(layer.name)
        if name is None:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            params.update({name + ".weight": gamma, name + ".bias": beta,
                           name + ".running_mean": mean, name + ".running_var": var})
        elif isinstance(layer, keras.layers.Dense):
            params.update({"fc.weight": layer.kernel.numpy().T, "fc.bias": layer.bias.numpy()})
        elif isinstance(layer, keras.layers.Conv2D) and layer.use_bias:  # an SE's fc, as a linear layer
            params.update({name + ".weight": layer.kernel.numpy()[0, 0].T, name + ".bias": layer.bias.numpy()})
        elif isinstance(layer, keras.layers.Conv2D):
            params[name] = layer.kernel.numpy().transpose(3, 2, 0, 1)
    return params
