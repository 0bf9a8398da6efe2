"""Named models: the one table of every variant the suite knows.

A preset is a builder and its keyword arguments, plus the recipe it is trained with by
default. The table validates names, dispatches `build`, lists `python -m ablation models`
and drives the registry-wide tests. Names are unambiguous: `resnet-N` is always He et al.'s
CIFAR net, `imagenet-resnet-N` / `imagenet-plain-N` the ImageNet-style nets.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import MappingProxyType
from typing import Callable, Mapping

import keras

from builders.cifar_resnet import cifar_resnet, preact_resnet
from builders.imagenet_resnet import imagenet_resnet
from builders.wide_resnet import wide_resnet


@dataclasses.dataclass(frozen=True)
class Preset:
    builder: Callable[..., keras.Model]
    kwargs: Mapping
    recipe: str  # the training recipe of the paper the net comes from
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)  # what the paper changed for this net

    @property
    def input_shape(self):
        return self.kwargs.get("input_shape") or _default(self.builder, "input_shape")

    @property
    def family(self) -> str:
        return self.builder.__name__

    def build(self, **overrides) -> keras.Model:
        return self.builder(**{**self.kwargs, **overrides})


def _default(fn, arg):
    return inspect.signature(fn).parameters[arg].default


def _wrn(depth, k, **kwargs):
    return Preset(wide_resnet, {"depth": depth, "widen_factor": k, **kwargs}, recipe="wrn")


# WRN-n-k of the paper's tables (Zagoruyko & Komodakis 2016, Tables 4-6).
_WRN = [(10, 1), (16, 2), (16, 4), (16, 8), (16, 10), (22, 8), (22, 10), (28, 2), (28, 10), (28, 12),
        (40, 1), (40, 2), (40, 4), (40, 8), (52, 1)]
_WRN_DROPOUT = [(16, 4), (28, 2), (28, 10), (52, 1)]
# He et al.'s CIFAR nets, n = 3, 5, 7, 9 (6n+2 layers; n = 18 below), option A shortcuts as in the paper.
_CIFAR_DEPTHS = [20, 32, 44, 56]
_RESNET_110_WARMUP = {"warmup_steps": 400, "warmup_learning_rate": 0.01}

PRESETS: Mapping[str, Preset] = MappingProxyType({
    **{f"wrn-{d}-{k}": _wrn(d, k) for d, k in _WRN},
    # Dropout 0.3 between the convs, the paper's choice on CIFAR by cross-validation.
    **{f"wrn-{d}-{k}-dropout": _wrn(d, k, dropout_rate=0.3) for d, k in _WRN_DROPOUT},
    **{f"resnet-{d}": Preset(cifar_resnet, {"depth": d}, recipe="he") for d in _CIFAR_DEPTHS},
    # "0.1 is slightly too large to start converging": He et al. warm ResNet-110 up at 0.01 for
    # about 400 iterations. Without it the loss explodes in the first steps (PyTorch's too).
    "resnet-110": Preset(cifar_resnet, {"depth": 110}, recipe="he", recipe_overrides=_RESNET_110_WARMUP),
    # The depth-vs-width baseline: 1x1 projections where the shape changes (1,730,522 params).
    "resnet-110-projection": Preset(cifar_resnet, {"depth": 110, "shortcut": "projection"}, recipe="wrn",
                                    recipe_overrides=_RESNET_110_WARMUP),
    "preact-resnet-164": Preset(preact_resnet, {"depth": 164}, recipe="wrn"),
    "preact-resnet-1001": Preset(preact_resnet, {"depth": 1001}, recipe="wrn"),
    **{f"imagenet-resnet-{d}": Preset(imagenet_resnet, {"depth": d}, recipe="he") for d in (18, 34, 50, 101, 152)},
    **{f"imagenet-plain-{d}": Preset(imagenet_resnet, {"depth": d, "residual": False}, recipe="he")
       for d in (18, 34, 50)},
})


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"model {name!r} is not a known preset; known: {', '.join(PRESETS)}.") from None


def build(name: str, **overrides) -> keras.Model:
    """The preset `name`, with any builder argument overridden: build("wrn-28-2", dropout_rate=0.3)."""
    return get_preset(name).build(**overrides)
