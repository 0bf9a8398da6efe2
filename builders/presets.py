"""Named models: the one table of every variant the suite knows.

A preset is a builder and its keyword arguments, plus the recipe it is trained with by
default. The table validates names, dispatches `build`, lists `python -m ablation models`
and drives the registry-wide tests. Names are unambiguous: `resnet-N` is always He et al.'s
CIFAR net, `imagenet-resnet-N` / `imagenet-plain-N` the ImageNet-style nets.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

import keras

from builders.cifar_resnet import INITIALIZATION as FB_RESNET_TORCH
from builders.cifar_resnet import cifar_resnet, preact_resnet
from builders.imagenet_resnet import INITIALIZATION as TORCHVISION
from builders.imagenet_resnet import imagenet_resnet
from builders.layers import Initialization
from builders.wide_resnet import INITIALIZATION as WRN_LUA
from builders.wide_resnet import wide_resnet

# How each builder's nets start: its family's reference code (see the builders' modules).
INITIALIZATIONS: Mapping[str, Initialization] = MappingProxyType({
    "wide_resnet": WRN_LUA, "cifar_resnet": FB_RESNET_TORCH, "preact_resnet": FB_RESNET_TORCH,
    "imagenet_resnet": TORCHVISION})


@dataclasses.dataclass(frozen=True)
class Published:
    """What the paper (or torchvision, for the ImageNet nets) publishes about a net; the tests
    check every preset that carries one (field guide, section 3)."""

    trainable_params: int | None = None
    macs: float | None = None  # forward multiply-accumulates per image, as published (to about 1%)


@dataclasses.dataclass(frozen=True)
class Preset:
    builder: Callable[..., keras.Model]
    kwargs: Mapping
    recipe: str  # the training recipe of the paper the net comes from
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)  # what the paper changed for this net
    published: Published = Published()

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


def _wrn(depth, widen_factor, **kwargs):
    return Preset(wide_resnet, {"depth": depth, "widen_factor": widen_factor, **kwargs}, recipe="wrn",
                  published=_WRN_PUBLISHED.get((depth, widen_factor), Published()))


# WRN-n-k of the paper's tables (Zagoruyko & Komodakis 2016, Tables 4-6).
_WRN = [(10, 1), (16, 2), (16, 4), (16, 8), (16, 10), (22, 8), (22, 10), (28, 2), (28, 10), (28, 12),
        (40, 1), (40, 2), (40, 4), (40, 8), (52, 1)]
_WRN_DROPOUT = [(16, 4), (28, 2), (28, 10), (52, 1)]  # dropout adds no weights: the same published numbers
# Published trainable params and MACs per 32x32 image (field guide, section 3); WRN-28-2's count is
# derived by hand in tests/test_builders.py.
_WRN_PUBLISHED = {(28, 2): Published(1_467_610, 214e6), (40, 4): Published(8_949_210, 1299e6),
                  (16, 8): Published(10_961_370, 1548e6), (28, 10): Published(36_479_194, 5247e6)}
_RESNET_110_WARMUP = {"warmup_steps": 400, "warmup_learning_rate": 0.01}

PRESETS: Mapping[str, Preset] = MappingProxyType({
    **{f"wrn-{d}-{k}": _wrn(d, k) for d, k in _WRN},
    # Dropout 0.3 between the convs, the paper's choice on CIFAR by cross-validation.
    **{f"wrn-{d}-{k}-dropout": _wrn(d, k, dropout_rate=0.3) for d, k in _WRN_DROPOUT},
    # He et al.'s CIFAR nets, n = 3, 5, 7, 9 (6n+2 layers; n = 18 below), option A shortcuts as in the paper.
    "resnet-20": Preset(cifar_resnet, {"depth": 20}, recipe="he", published=Published(269_722)),
    "resnet-32": Preset(cifar_resnet, {"depth": 32}, recipe="he"),
    "resnet-44": Preset(cifar_resnet, {"depth": 44}, recipe="he"),
    "resnet-56": Preset(cifar_resnet, {"depth": 56}, recipe="he", published=Published(macs=127e6)),
    # "0.1 is slightly too large to start converging": He et al. warm ResNet-110 up at 0.01 for
    # about 400 iterations. Without it the loss explodes in the first steps (PyTorch's too).
    "resnet-110": Preset(cifar_resnet, {"depth": 110}, recipe="he", recipe_overrides=_RESNET_110_WARMUP,
                         published=Published(1_727_962, 256e6)),
    # The depth-vs-width baseline: 1x1 projections where the shape changes, 16*32 + 32*64 = 2,560
    # params more than option A.
    "resnet-110-projection": Preset(cifar_resnet, {"depth": 110, "shortcut": "projection"}, recipe="wrn",
                                    recipe_overrides=_RESNET_110_WARMUP, published=Published(1_730_522)),
    "preact-resnet-164": Preset(preact_resnet, {"depth": 164}, recipe="wrn", published=Published(1_703_258)),
    "preact-resnet-1001": Preset(preact_resnet, {"depth": 1001}, recipe="wrn"),
    # torchvision's counts: convs without bias, BN, fc with bias.
    **{f"imagenet-resnet-{d}": Preset(imagenet_resnet, {"depth": d}, recipe="he", published=Published(params))
       for d, params in ((18, 11_689_512), (34, 21_797_672), (50, 25_557_032), (101, None), (152, None))},
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
