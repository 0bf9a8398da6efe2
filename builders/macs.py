"""Multiply-accumulates per image and parameter counts of a built model.

The published figures (WRN-28-2 214M, WRN-28-10 5,247M, ResNet-110 256M, ResNet-56 127M) follow
the convention of the `ptflops` counter: a conv's out_h * out_w * out_channels * k_h * k_w *
in_channels / groups, a dense layer's in * out, plus 2 per element for an affine BatchNorm
(scale and shift; GroupNorm alike) and 1 per element for a ReLU (any activation alike). Leaving
out the elementwise terms undercounts thin nets by about 1% (ResNet-110: 252.9M), so they are in
by default; `elementwise=False` gives the conv and dense arithmetic alone.
"""

from __future__ import annotations

import math

import keras


def _elements(tensor) -> int:
    return math.prod(tensor.shape[1:])


def layer_macs(layer, *, elementwise=True) -> int:
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
        k_h, k_w = layer.kernel_size
        return _elements(layer.output) * k_h * k_w * layer.input.shape[-1] // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return _elements(layer.output) * layer.input.shape[-1]
    if elementwise and isinstance(layer, (keras.layers.BatchNormalization, keras.layers.GroupNormalization)):
        return 2 * _elements(layer.output)
    if elementwise and isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
        return _elements(layer.output)
    return 0


def count_macs(model: keras.Model, *, elementwise=True) -> int:
    """Multiply-accumulates of one forward pass of one image (nested models included)."""
    return sum(count_macs(layer, elementwise=elementwise) if isinstance(layer, keras.Model)
               else layer_macs(layer, elementwise=elementwise) for layer in model.layers)


def count_params(model: keras.Model) -> dict:
    """Trainable params (the papers' figure) and total params (Keras's, with BN moving statistics)."""
    return {"trainable_params": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
            "total_params": int(sum(math.prod(w.shape) for w in model.weights))}
