"""The modern ResNet's tweaks as builder options: ResNet-B/C/D, stochastic depth, zero-initialised
residual branches, squeeze-and-excitation, other activations and norms. Each against its reference
code's numbers and formula (timm's resnet50d, its forward pass with copied weights, timm's drop_path),
each off by default (the presets' nets as before), each drawn in the architecture views."""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import pytest

from ablation.report.diagrams import block_stages, describe, folded, summary_text, write_diagrams
from builders import build, count_params, imagenet_resnet
from tests.helpers import REAL_SUBSET, real_subset
from tests.reference_nets import NumpyOps, imagenet_resnet_forward, params_from_keras, randomise_statistics

# A warning Keras gives about a net the builders made is a bug of the builders.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

# The options, each at a value that is on, on a preset of every family.
OPTIONS_ON = dict(drop_path_rate=0.2, zero_init_residual=True, se_reduction=4, activation="silu", norm="group")
FAMILY_NETS = {"wrn-10-1": {"shortcut": "avg_down"}, "resnet-20": {"shortcut": "avg_down"},
               "preact-resnet-164": {"shortcut": "avg_down", "bottleneck_stride": "1x1"},
               "imagenet-resnet-50": {"stem": "deep", "shortcut": "avg_down", "bottleneck_stride": "1x1",
                                      "input_shape": (64, 64, 3)}}
OFF = dict(drop_path_rate=0.0, zero_init_residual=False, se_reduction=0, activation="relu", norm="batch")


def trainable(model) -> int:
    return count_params(model)["trainable_params"]


def built(name, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return build(name, **overrides)


def weights_by_layer(model) -> dict:
    return {layer.name: [w.numpy() for w in layer.weights] for layer in model.layers if layer.weights}


# ----------------------------------------------------------------------------------------------
# ResNet-B/C/D: timm's resnet50d


def test_resnet_50_d_has_timms_params_and_an_average_pool_in_each_strided_shortcut():
    model = build("imagenet-resnet-50", stem="deep", shortcut="avg_down")
    # timm resnet50d: 25,576,264 = resnet50's 25,557,032 + the deep stem's 19,232:
    # 3*32*9 + 64 + 32*32*9 + 64 + 32*64*9 = 28,640 against the 7x7 stem's 3*64*49 = 9,408.
    assert trainable(model) == 25_576_264 == trainable(build("imagenet-resnet-50")) + 19_232
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert [p.name for p in pools] == [f"group{g}_block1_shortcut_pool" for g in (2, 3, 4)]
    for pool in pools:  # a 2x2 pool of stride 2, then the 1x1 conv at stride 1
        conv = model.get_layer(pool.name.replace("_pool", ""))
        assert pool.pool_size == (2, 2) and pool.strides == (2, 2) and conv.strides == (1, 1)
        assert conv.input is pool.output
    # group1's first shortcut changes the width, not the size: no pool, as timm's downsample_avg
    assert model.get_layer("group1_block1_shortcut").input is model.get_layer("stem_pool").output


def test_resnet_b_and_the_original_stride_differ_in_function_not_in_weights():
    b, original = build("imagenet-resnet-50", input_shape=(64, 64, 3)), build(
        "imagenet-resnet-50", bottleneck_stride="1x1", input_shape=(64, 64, 3))
    assert trainable(b) == trainable(original)
    assert original.get_layer("group2_block1_conv1").strides == (2, 2)
    assert original.get_layer("group2_block1_conv2").strides == (1, 1)
    assert b.get_layer("group2_block1_conv2").strides == (2, 2)
    with pytest.raises(ValueError, match=r"^bottleneck_stride='1x1' is not valid for ResNet-18"):
        build("imagenet-resnet-18", bottleneck_stride="1x1")


# Our nets with the options against timm's resnet.py forward pass (tests/reference_nets.py), weights
# copied, batch norm statistics random, in inference mode; 40x40 inputs give the third group an odd side (5), where
# the average pool's ceil_mode window covers one row and column.
TIMM_OPTIONS = {
    "deep-stem": dict(stem="deep"),
    "avg-down": dict(shortcut="avg_down"),
    "se": dict(se_reduction=16),
    "resnet-50-d-se": dict(stem="deep", shortcut="avg_down", se_reduction=16),
    "drop-path": dict(drop_path_rate=0.3),  # at inference timm's drop_path returns its input
}


@pytest.mark.parametrize("name", sorted(TIMM_OPTIONS))
def test_the_options_compute_timms_function_from_the_same_weights(name):
    options = TIMM_OPTIONS[name]
    rng = np.random.default_rng(5)
    model = imagenet_resnet(depth=50, input_shape=(40, 40, 3), num_classes=10, **options)
    randomise_statistics(model, rng)
    x = rng.normal(size=(2, 40, 40, 3)).astype("float32")
    theirs = imagenet_resnet_forward(NumpyOps, params_from_keras(model), x.transpose(0, 3, 1, 2).astype("float64"),
                                     depth=50, stem=options.get("stem", "standard"),
                                     avg_down=options.get("shortcut") == "avg_down", se=bool(options.get("se_reduction")))
    np.testing.assert_allclose(model(x, training=False).numpy(), theirs, rtol=1e-4, atol=1e-4)


def test_the_average_pool_shortcut_is_not_the_strided_projection():
    # The check above could pass with the pool dropped; the reference with avg_down off differs.
    rng = np.random.default_rng(6)
    model = imagenet_resnet(depth=50, input_shape=(40, 40, 3), num_classes=10, shortcut="avg_down")
    randomise_statistics(model, rng)
    x = rng.normal(size=(2, 40, 40, 3)).astype("float32")
    strided = imagenet_resnet_forward(NumpyOps, params_from_keras(model), x.transpose(0, 3, 1, 2).astype("float64"),
                                      depth=50)
    assert np.abs(model(x, training=False).numpy() - strided).max() > 1e-3


def test_the_stem_pool_pads_with_minus_infinity_where_activations_go_below_zero():
    # torchvision's MaxPool2d(3, 2, padding=1) never picks its padding; after a SiLU a zero padding
    # would win where a border's values are all negative.
    model = imagenet_resnet(depth=18, input_shape=(32, 32, 3), num_classes=10, activation="silu")
    pool = keras.Model(model.input, model.get_layer("stem_pool_subsample").output)
    before = keras.Model(model.input, model.get_layer("stem_silu").output)
    x = np.random.default_rng(7).normal(size=(2, 32, 32, 3)).astype("float32")
    expected = NumpyOps.max_pool2d(before(x).numpy().transpose(0, 3, 1, 2).astype("float64"), 3, 2, 1)
    np.testing.assert_allclose(pool(x).numpy().transpose(0, 3, 1, 2), expected, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Off by default; on, the rest of the net starts as without it


@pytest.mark.parametrize("name", sorted(FAMILY_NETS))
def test_every_option_at_its_off_value_is_the_presets_net(name):
    small = {"input_shape": (64, 64, 3)} if name.startswith("imagenet") else {}
    reference, off = built(name, **small), built(name, **small, **OFF)
    assert [layer.name for layer in off.layers] == [layer.name for layer in reference.layers]
    for a, b in zip(reference.weights, off.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("option", ["drop_path_rate", "se_reduction", "zero_init_residual"])
def test_an_added_option_leaves_every_other_layer_as_the_same_seed_draws_it(option):
    # The runs of one seed with and without the option are paired: the same initial net but for it.
    reference, on = weights_by_layer(built("resnet-20")), weights_by_layer(built("resnet-20", **{option: OPTIONS_ON[option]}))
    for layer, values in reference.items():
        zeroed = option == "zero_init_residual" and layer.endswith("_bn2")
        for a, b in zip(values, on[layer], strict=True):
            if zeroed and np.all(b == 0):
                continue
            np.testing.assert_array_equal(a, b, err_msg=layer)


# ----------------------------------------------------------------------------------------------
# Stochastic depth: timm's drop_path, Huang et al.'s linear rule


def drop_paths(model) -> list:
    return [layer for layer in model.layers if layer.name.endswith("_drop_path")]


def test_stochastic_depth_follows_huangs_linear_rule():
    model = build("resnet-110", drop_path_rate=0.5)
    rates = [layer.rate for layer in drop_paths(model)]
    blocks = 54  # 3 groups of 18
    np.testing.assert_allclose(rates, [0.5 * l / blocks for l in range(1, blocks + 1)])


def test_stochastic_depth_is_per_sample_and_scaled_in_training():
    layer = drop_paths(build("wrn-10-1", drop_path_rate=0.9))[-1]  # the last block: 0.9
    x = np.ones((4000, 2, 2, 3), "float32")
    y = layer(x, training=True).numpy()
    per_sample = y.reshape(len(y), -1)
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample, the whole branch
    kept = per_sample[:, 0] != 0
    np.testing.assert_allclose(per_sample[kept, 0], 1 / (1 - 0.9), rtol=1e-6)  # scaled by 1 / keep
    # kept ~ Binomial(4000, 0.1): 5 standard deviations
    assert abs(kept.mean() - 0.1) <= 5 * math.sqrt(0.1 * 0.9 / len(kept))
    again = layer(x, training=True).numpy().reshape(len(y), -1)[:, 0] != 0
    assert (again != kept).any()  # a new draw at each call


def test_stochastic_depth_is_the_identity_at_inference_and_random_in_training():
    x = np.random.default_rng(8).normal(size=(4, 32, 32, 3)).astype("float32")
    with_it, without = built("wrn-10-1", drop_path_rate=0.5), built("wrn-10-1")
    np.testing.assert_array_equal(with_it(x, training=False).numpy(), without(x, training=False).numpy())
    first, second = with_it(x, training=True).numpy(), with_it(x, training=True).numpy()
    assert np.abs(first - second).max() > 1e-4
    assert np.abs(first - without(x, training=True).numpy()).max() > 1e-4


# ----------------------------------------------------------------------------------------------
# Zero-initialised residual branches: every block the identity (its shortcut) at initialisation


def block_prefixes(model) -> list[str]:
    return [layer.name.removesuffix("_add") for layer in model.layers if layer.name.endswith("_add")]


@pytest.mark.parametrize("name", sorted(FAMILY_NETS))
def test_zero_init_residual_zeroes_one_gamma_or_last_conv_per_block(name):
    small = {"input_shape": (64, 64, 3)} if name.startswith("imagenet") else {}
    model = built(name, zero_init_residual=True, **small)
    reference = built(name, **small)
    zeroed = [layer.name for layer in model.layers if layer.weights and not np.any(layer.weights[0].numpy())
              and isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Conv2D))]
    assert len(zeroed) == len(block_prefixes(model))  # one per residual block
    assert not [layer.name for layer in reference.layers if layer.weights and not np.any(layer.weights[0].numpy())]
    post_activation = name in ("resnet-20", "imagenet-resnet-50")  # the branch ends in a norm, else in a conv
    assert all(z.rsplit("_", 1)[1].startswith("bn" if post_activation else "conv") for z in zeroed), zeroed


@pytest.mark.parametrize("name", ["wrn-10-1", "resnet-20", "imagenet-resnet-18"])
def test_with_zero_init_residual_every_block_is_its_shortcut_on_real_images(name):
    real_subset()  # skips, saying why, where the subset is absent
    with np.load(REAL_SUBSET) as data:
        x = data["x_train"][:32].astype("float32") / 255.0
    model = built(name, zero_init_residual=True, se_reduction=4, drop_path_rate=0.3,
                  **({"input_shape": (32, 32, 3), "num_classes": 10} if name.startswith("imagenet") else {}))
    for prefix in block_prefixes(model):
        add = model.get_layer(f"{prefix}_add")
        branch, shortcut = add.input
        outputs = keras.Model(model.input, [branch, shortcut, add.output])(x, training=False)
        branch_out, shortcut_out, total = (t.numpy() for t in outputs)
        assert not np.any(branch_out), prefix  # the branch adds nothing
        np.testing.assert_array_equal(total, shortcut_out, err_msg=prefix)
        assert np.abs(shortcut_out).max() > 0, prefix


# ----------------------------------------------------------------------------------------------
# Squeeze-and-excitation, activations, norms


def test_squeeze_and_excitation_adds_its_two_layers_per_block():
    # Per block of width C: a 1x1 conv C -> C/16 and one C/16 -> C, each with a bias. ResNet-110's
    # 18 blocks at 16 (C/16 = 1), 32 (2) and 64 (4) channels.
    per_block = {c: 2 * c * (c // 16) + c // 16 + c for c in (16, 32, 64)}
    expected = 18 * sum(per_block.values())
    assert trainable(build("resnet-110", se_reduction=16)) - trainable(build("resnet-110")) == expected
    assert per_block == {16: 49, 32: 162, 64: 580}  # 2*16*1 + 1 + 16; 2*32*2 + 2 + 32; 2*64*4 + 4 + 64


def test_an_activation_is_every_activation_of_the_net():
    for name in FAMILY_NETS:
        small = {"input_shape": (64, 64, 3)} if name.startswith("imagenet") else {}
        model = build(name, activation="silu", se_reduction=4, **small)
        assert not [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)], name
        kinds = {layer.activation.__name__ for layer in model.layers if isinstance(layer, keras.layers.Activation)}
        assert kinds == {"silu", "sigmoid"}, name  # sigmoid: SE's gate


def test_group_norm_replaces_every_batch_norm_with_32_groups_or_fewer_channels_each():
    model = build("wrn-16-8", norm="group")  # widths 16 (the stem's first block), 128, 256, 512
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.name.rsplit("_", 1)[1].startswith("gn") for layer in norms)
    groups = {layer.input.shape[-1]: layer.groups for layer in norms}
    assert groups == {16: 16, 128: 32, 256: 32, 512: 32}  # 16 channels: one per group
    assert build("wrn-16-2", widen_factor=3, norm="group").get_layer("group1_block2_gn1").groups == 24  # 48: 24 of 2
    assert trainable(model) == trainable(build("wrn-16-8"))  # the same gamma and beta per channel


def test_the_options_refuse_what_their_family_does_not_have():
    for call, message in [
        (lambda: build("imagenet-plain-18", drop_path_rate=0.1), r"^drop_path_rate=0.1 is not valid for a Plain net"),
        (lambda: build("imagenet-plain-18", zero_init_residual=True), r"^zero_init_residual=True is not valid for a Pl"),
        (lambda: build("wrn-10-1", shortcut="zero_pad"), r"^shortcut='zero_pad' is not valid for a Wide ResNet"),
        (lambda: build("wrn-10-1", activation="tanh"), r"^activation='tanh' is not valid; expected one of 'relu'"),
        (lambda: build("wrn-10-1", norm="layer"), r"^norm='layer' is not valid; expected one of 'batch', 'group'"),
        (lambda: build("wrn-10-1", se_reduction=-1), r"^se_reduction=-1 is not valid; expected an integer >= 0"),
        (lambda: build("wrn-10-1", drop_path_rate=1.0), r"^drop_path_rate=1.0 is not valid; expected a number in"),
        (lambda: build("imagenet-resnet-18", stem="deeper"), r"^stem='deeper' is not valid; expected one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()


# ----------------------------------------------------------------------------------------------
# Every layer in the architecture views


@functools.cache
def everything_on(name) -> keras.Model:
    return built(name, **OPTIONS_ON, **FAMILY_NETS[name])


@pytest.mark.parametrize("name", sorted(FAMILY_NETS))
def test_every_layer_of_a_net_with_every_option_is_in_its_diagrams(name, tmp_path):
    model = everything_on(name)
    unknown = [layer.name for layer in model.layers if describe(layer) is None]
    assert not unknown, f"layers the stage view cannot spell: {unknown}"
    # Every layer is spelled in its stage's text, or drawn through its neighbours.
    text = str(block_stages(model))
    for word in ("GN", "SiLU", "SE fc[", "drop-path", "avg-pool2x2/2"):
        assert word in text, word
    # (a stage's blocks alike but for their drop-path rate show the range: "drop-path 0.0125 to 0.0188")
    words = {layer.name: "drop-path" if layer.name.endswith("_drop_path") else describe(layer)
             for layer in model.layers if not folded(layer)}
    assert not [name for name, word in words.items() if word not in text]
    summary = summary_text(model)
    assert all(layer.name in summary for layer in model.layers)
    written = write_diagrams(model, tmp_path)
    if written["architecture"] == "png":  # with Graphviz: every layer a node of the SVG, by its name
        svg = (tmp_path / "architecture.svg").read_text()
        missing = [layer.name for layer in model.layers if f'id="{layer.name}"' not in svg]
        assert not missing, missing
