"""Keras functional builders of residual networks, faithful to the published architectures.

    from builders import build, wide_resnet
    model = build("wrn-28-2", dropout_rate=0.3)
    model = wide_resnet(depth=40, widen_factor=2, block_type="B(1,3,1)")
"""

from builders.cifar_resnet import cifar_resnet, preact_resnet
from builders.imagenet_resnet import imagenet_resnet
from builders.layers import Initialization
from builders.macs import count_macs, count_params
from builders.presets import INITIALIZATIONS, PRESETS, Preset, Published, build, get_preset
from builders.wide_resnet import format_block_type, parse_block_type, wide_resnet

__all__ = ["INITIALIZATIONS", "PRESETS", "Initialization", "Preset", "Published", "build", "cifar_resnet", "count_macs",
           "count_params", "format_block_type", "get_preset", "imagenet_resnet", "parse_block_type", "preact_resnet",
           "wide_resnet"]
