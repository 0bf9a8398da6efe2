"""The reference WRN forward pass, transcribed from szagoruyko/wide-residual-networks
(pytorch/resnet.py, inference mode), for checking that our Keras builder computes the same
function from the same weights.

It is written against a tiny `ops` interface with PyTorch's conventions (NCHW activations,
OIHW kernels, `padding` added on every side) so that it runs on `torch.nn.functional` when
PyTorch is installed and on the NumPy ops below everywhere else. The only generalisation over
the original is `kernels`, the block type: (3, 3) is the original code line for line.
"""

from __future__ import annotations

import numpy as np


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


def wrn_forward(ops, params, x, *, depth, width, kernels=(3, 3), eps=1e-5):
    """resnet(depth, width, num_classes) of the reference code, `f(input, params, mode=False)`."""
    assert (depth - 4) % 6 == 0, "depth should be 6n+4"
    n = (depth - 4) // 6

    def batch_norm(x, base):
        return ops.batch_norm(x, params[base + ".running_mean"], params[base + ".running_var"],
                              params[base + ".weight"], params[base + ".bias"], eps)

    def block(x, base, stride):
        o = ops.relu(batch_norm(x, base + ".bn0"))
        shortcut_input = o
        y = o
        for i, k in enumerate(kernels):
            if i > 0:
                y = ops.relu(batch_norm(y, f"{base}.bn{i}"))
            y = ops.conv2d(y, params[f"{base}.conv{i}"], stride=stride if i == 0 else 1, padding=(k - 1) // 2)
        if base + ".convdim" in params:
            return y + ops.conv2d(shortcut_input, params[base + ".convdim"], stride=stride)
        return y + x

    def group(o, base, stride):
        for i in range(n):
            o = block(o, f"{base}.block{i}", stride if i == 0 else 1)
        return o

    x = ops.conv2d(x, params["conv0"], padding=1)
    g0 = group(x, "group0", 1)
    g1 = group(g0, "group1", 2)
    g2 = group(g1, "group2", 2)
    o = ops.relu(batch_norm(g2, "bn"))
    return ops.linear(ops.mean_hw(o), params["fc.weight"], params["fc.bias"])


def params_from_keras(model, *, depth, kernels=(3, 3)):
    """Our Keras weights under the reference's parameter names and layouts (OIHW, out x in)."""
    n = (depth - 4) // 6
    params = {}

    def bn(keras_name, base):
        gamma, beta, mean, var = (w.numpy() for w in model.get_layer(keras_name).weights)
        params.update({base + ".weight": gamma, base + ".bias": beta,
                       base + ".running_mean": mean, base + ".running_var": var})

    def conv(keras_name, base):
        params[base] = model.get_layer(keras_name).kernel.numpy().transpose(3, 2, 0, 1)

    conv("stem_conv", "conv0")
    for g in range(3):
        for b in range(n):
            ours, theirs = f"group{g + 1}_block{b + 1}", f"group{g}.block{b}"
            for i in range(len(kernels)):
                bn(f"{ours}_bn{i + 1}", f"{theirs}.bn{i}")
                conv(f"{ours}_conv{i + 1}", f"{theirs}.conv{i}")
            if any(layer.name == f"{ours}_shortcut" for layer in model.layers):
                conv(f"{ours}_shortcut", f"{theirs}.convdim")
    bn("head_bn", "bn")
    dense = model.get_layer("head_dense")
    params["fc.weight"] = dense.kernel.numpy().T
    params["fc.bias"] = dense.bias.numpy()
    return params
