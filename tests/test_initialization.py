"""How every net starts: each layer its own draw, from its family's reference distribution,
reproducibly, and the initial forward statistics of the reference codes' nets.

Keras 3 initializer instances return the same values at every call for a given shape, so a net
whose convs share one instance starts with tied kernels: right in shape and count, wrong in draw.
Parameter counts and logits from copied weights cannot see that; these tests can.
"""

from __future__ import annotations

import functools
import hashlib
import math
from statistics import median

import keras
import numpy as np
import pytest
from scipy import stats

from ablation.run import distribute
from ablation.run.config import RunConfig, build_model
from builders import INITIALIZATIONS, PRESETS, build, get_preset, wide_resnet
from tests.helpers import REAL_SUBSET, preset_params, real_subset
from tests.reference_nets import (
    TorchOps,
    cifar_resnet_forward,
    cifar_resnet_shapes,
    imagenet_resnet_forward,
    imagenet_resnet_shapes,
    preact_resnet_forward,
    preact_resnet_shapes,
    reference_init,
    wrn_forward,
    wrn_shapes,
)

# A warning Keras gives about a net the builders made is a bug of the builders.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

# The paper's Table 2 (block types) and Table 3 (deepening factor l = 1..4, 40 convs at 2.2M params).
BLOCK_TYPE_NETS = {f"wrn-40-2-{b}": dict(depth=40, widen_factor=2, block_type=b)
                   for b in ("B(3,3)", "B(3,1,3)", "B(1,3,1)", "B(1,3)", "B(3,1)", "B(3,1,1)")}
BLOCK_TYPE_NETS |= {f"wrn-40-2-l{l}": dict(depth=40, widen_factor=2, block_type="B(" + ",".join("3" * l) + ")",
                                           blocks_per_group=n) for l, n in [(1, 12), (3, 4), (4, 3)]}
# The modern options (tests/test_modern.py) on each family: squeeze-and-excitation's convs, group norm,
# the zeroed last layer of each residual branch, the deep stem.
MODERN_NETS = {f"{name}-modern": (name, dict(se_reduction=4, zero_init_residual=True, **extra))
               for name, extra in [("wrn-10-1", {"norm": "group"}), ("resnet-20", {}),
                                   ("imagenet-resnet-18", {"stem": "deep", "shortcut": "avg_down", "norm": "group",
                                                           "input_shape": (64, 64, 3)})]}
NETS = preset_params(sorted(PRESETS)) + sorted(BLOCK_TYPE_NETS) + sorted(MODERN_NETS)
# A draw is a check of a distribution: 5 standard errors for its spread, and a Kolmogorov-Smirnov
# p-value above 1e-6 for its shape. The seed is fixed, so a test that passes always passes; at these
# levels a faithful draw of every layer of the registry (about 5,000) passes with near certainty.
Z = 5.0
MIN_P_VALUE = 1e-6
# What each family's reference code draws where the codes differ, written from the codes (quoted in
# tests/reference_nets.py), not from the builders: BN's gamma and the classifier's bias.
REFERENCE_CODES = {
    "wide_resnet": dict(bn_gamma="uniform", classifier_bias="zeros"),  # wide-resnet.lua: Torch7's BN reset, FCinit
    "cifar_resnet": dict(bn_gamma="ones", classifier_bias="zeros"),  # fb.resnet.torch: BNInit, Linear bias zeroed
    "preact_resnet": dict(bn_gamma="ones", classifier_bias="zeros"),  # resnet-1k-layers: fb.resnet.torch's init
    "imagenet_resnet": dict(bn_gamma="ones", classifier_bias="uniform"),  # torchvision: BN 1, nn.Linear's default
}


@functools.lru_cache(maxsize=4)  # the two registry-wide tests of a net share its build, a few at a time
def fresh_net(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name in MODERN_NETS:
        preset, options = MODERN_NETS[name]
        return build(preset, **options)
    return wide_resnet(**BLOCK_TYPE_NETS[name]) if name in BLOCK_TYPE_NETS else build(name)


def reference_code_of(name: str) -> dict:
    if name in MODERN_NETS:
        return REFERENCE_CODES[PRESETS[MODERN_NETS[name][0]].family]
    return REFERENCE_CODES["wide_resnet" if name in BLOCK_TYPE_NETS else PRESETS[name].family]


def zeroed(layer) -> bool:
    """The last layer of a residual branch under zero_init_residual: all zeros by design."""
    return not np.any(layer.weights[0].numpy())


def drawn_arrays(model):
    """(layer, weight name, values) of every weight the initialisation draws at random."""
    for layer in model.layers:
        for weight in layer.weights:
            values = weight.numpy()
            if values.size > 1 and np.ptp(values) > 0:
                yield layer.name, weight.name, values


@pytest.mark.parametrize("name", NETS)
def test_no_two_layers_start_from_the_same_draw(name):
    model = fresh_net(name)
    seen = {}
    for layer, weight, values in drawn_arrays(model):
        # Two layers drawn from one seed share their leading values whatever their shapes (a tied
        # pair of one shape matches everywhere); distinct draws differ from the first value on.
        key = hashlib.sha1(np.ascontiguousarray(values.ravel()[:64]).tobytes()).hexdigest()
        assert key not in seen, f"{layer}/{weight} starts as a copy of {seen[key]}"
        seen[key] = f"{layer}/{weight}"
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(seen) >= len(convs) + 1  # every conv kernel and the classifier's at least


def _assert_spread(values, expected_std, distribution, where):
    n = values.size
    # The sample standard deviation's relative standard error: sqrt((kurtosis - 1) / 4n).
    kurtosis = {"normal": 3.0, "uniform": 1.8}[distribution]
    tolerance = Z * math.sqrt((kurtosis - 1) / (4 * n))
    assert abs(values.std() / expected_std - 1) <= tolerance, (
        f"{where}: std {values.std():.5f}, expected {expected_std:.5f} (+-{100 * tolerance:.0f}%)")
    assert abs(values.mean()) <= Z * expected_std / math.sqrt(n), f"{where}: mean {values.mean():.5f}"
    if distribution == "normal":
        p = stats.kstest(values.ravel() / expected_std, "norm").pvalue
    else:
        bound = expected_std * math.sqrt(3)
        assert np.abs(values).max() <= bound, f"{where}: {np.abs(values).max()} outside +-{bound}"
        p = stats.kstest(values.ravel(), "uniform", args=(-bound, 2 * bound)).pvalue
    assert p > MIN_P_VALUE, f"{where}: not {distribution} (Kolmogorov-Smirnov p = {p:.2g})"


@pytest.mark.parametrize("name", NETS)
def test_every_weight_starts_from_its_reference_distribution(name):
    model, reference = fresh_net(name), reference_code_of(name)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            # MSR init as the reference codes write it: normal(0, sqrt(2 / n)), n = kW * kH * nOutputPlane.
            k_h, k_w, fan_in, out = layer.kernel.shape
            if zeroed(layer):  # a pre-activation branch's last conv (timm's zero_init_last)
                assert layer.name.endswith(("_conv2", "_conv3")) and name in MODERN_NETS, layer.name
                continue
            _assert_spread(layer.kernel.numpy(), math.sqrt(2.0 / (k_h * k_w * out)), "normal", layer.name)
            if layer.use_bias:  # squeeze-and-excitation's convs: torch's default bias, U(+-1/sqrt(fan_in))
                assert "_se_" in layer.name, layer.name
                bias = layer.bias.numpy()
                assert np.abs(bias).max() <= 1 / math.sqrt(fan_in) and np.ptp(bias) > 0, layer.name
        elif isinstance(layer, (keras.layers.BatchNormalization, keras.layers.GroupNormalization)):
            gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
            if zeroed(layer):  # a post-activation branch's last norm (torchvision's zero_init_residual)
                assert layer.name.rsplit("_", 1)[1] in ("bn2", "bn3", "gn2", "gn3") and name in MODERN_NETS, layer.name
            elif reference["bn_gamma"] == "uniform":  # Torch7's reset: U(0, 1)
                assert 0 <= gamma.min() and gamma.max() <= 1 and np.ptp(gamma) > 0, layer.name
                assert abs(gamma.mean() - 0.5) <= Z * math.sqrt(1 / 12 / gamma.size), layer.name
            else:
                assert (gamma == 1).all(), layer.name
            assert (beta == 0).all(), layer.name
            if isinstance(layer, keras.layers.BatchNormalization):
                assert (layer.moving_mean.numpy() == 0).all(), layer.name
                assert (layer.moving_variance.numpy() == 1).all(), layer.name
        elif isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
            _assert_spread(layer.kernel.numpy(), 1 / math.sqrt(3 * fan_in), "uniform", layer.name)
            bias = layer.bias.numpy()
            if reference["classifier_bias"] == "uniform":  # nn.Linear's
                assert np.abs(bias).max() <= 1 / math.sqrt(fan_in) and np.ptp(bias) > 0
            else:
                assert (bias == 0).all()


def test_each_family_records_its_reference_codes_initialization():
    # What a run writes to config.json's "initialization" is what its net was drawn from.
    assert {family: {"bn_gamma": i.bn_gamma, "classifier_bias": i.classifier_bias}
            for family, i in INITIALIZATIONS.items()} == REFERENCE_CODES


def initial_weights(seed: int, model="resnet-20"):
    """The weights a run of `seed` starts from: its seeds set, then its net built, as `train` does."""
    distribute.set_seeds(seed)
    return build_model(RunConfig(model=model).resolve()).get_weights()


def test_the_same_run_seed_draws_the_same_net_and_another_seed_another():
    first, again, other = initial_weights(42), initial_weights(42), initial_weights(43)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        if a.size > 1 and np.ptp(a) > 0:
            assert not np.array_equal(a, c)


# ----------------------------------------------------------------------------------------------
# The initial forward statistics against the reference codes' nets, in PyTorch

# Our preset -> the reference net's forward pass and parameters, from the preset's arguments.
REFERENCES = {
    "wide_resnet": lambda kw: (functools.partial(wrn_forward, depth=kw["depth"], width=kw["widen_factor"]),
                               wrn_shapes(depth=kw["depth"], width=kw["widen_factor"])),
    "cifar_resnet": lambda kw: (functools.partial(cifar_resnet_forward, depth=kw["depth"],
                                                  shortcut=kw.get("shortcut", "zero_pad")),
                                cifar_resnet_shapes(depth=kw["depth"], shortcut=kw.get("shortcut", "zero_pad"))),
    "preact_resnet": lambda kw: (functools.partial(preact_resnet_forward, depth=kw["depth"]),
                                 preact_resnet_shapes(depth=kw["depth"])),
    "imagenet_resnet": lambda kw: (functools.partial(imagenet_resnet_forward, depth=kw["depth"],
                                                     residual=kw.get("residual", True)),
                                   imagenet_resnet_shapes(depth=kw["depth"], residual=kw.get("residual", True))),
}
# The ImageNet-style nets see the CIFAR images at twice their size, the smoke protocol's 64x64.
UPSAMPLED = {"imagenet_resnet": 2}
SEEDS = (0, 1, 2, 3)
IMAGES = 128


@functools.cache
def real_images(upsampled: int = 1) -> np.ndarray:
    """The first 128 real CIFAR-10 training images, normalised per channel as the pipeline does
    (NHWC), each pixel repeated `upsampled` times along both axes."""
    real_subset()  # skips, saying why, where the subset is absent
    with np.load(REAL_SUBSET) as data:
        x = data["x_train"].astype(np.float32) / 255.0
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    return ((x[:IMAGES] - mean) / std).repeat(upsampled, axis=1).repeat(upsampled, axis=2)


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def our_pooled_rms(name: str, seed: int) -> float:
    images = real_images(UPSAMPLED.get(get_preset(name).family, 1))
    keras.utils.set_random_seed(seed)
    model = build(name, input_shape=images.shape[1:])
    features = keras.Model(model.input, model.get_layer("head_pool").output)
    return rms(features(images, training=True).numpy())


def reference_pooled_rms(torch, name: str, seed: int) -> float:
    preset = get_preset(name)
    forward, shapes = REFERENCES[preset.family](preset.kwargs)
    images = real_images(UPSAMPLED.get(preset.family, 1)).transpose(0, 3, 1, 2).copy()  # NCHW
    torch.manual_seed(seed)
    params = reference_init(torch, shapes, **REFERENCE_CODES[preset.family])
    with torch.no_grad():
        pooled = forward(TorchOps(training=True), params, torch.from_numpy(images), pooled=True)
    return rms(pooled.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet-20", "resnet-110", "resnet-110-projection", "wrn-28-2", "wrn-16-4",
                                  "imagenet-resnet-18", "imagenet-plain-18",
                                  # over a minute here: left to make test-long
                                  pytest.param("preact-resnet-164", marks=pytest.mark.long)])
def test_initial_pooled_features_match_the_reference_codes_net(name):
    # The median over 4 seeds of the RMS of the pooled features on 128 real images, BN in training
    # mode, within 15% of the reference net's. Tied kernels put ResNet-110 at about 3x.
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it runs the reference nets")
    ours = median(our_pooled_rms(name, seed) for seed in SEEDS)
    theirs = median(reference_pooled_rms(torch, name, seed) for seed in SEEDS)
    assert ours == pytest.approx(theirs, rel=0.15), f"{name}: ours {ours:.3f}, the reference's {theirs:.3f}"
