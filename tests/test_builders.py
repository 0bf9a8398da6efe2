"""Builders against the published architectures: parameter counts, MACs, shapes, names, the
reference implementation's logits, save/load, and the errors bad arguments raise."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from ablation.run.config import RunConfig
from builders import (
    PRESETS,
    Published,
    build,
    cifar_resnet,
    count_macs,
    count_params,
    imagenet_resnet,
    parse_block_type,
    preact_resnet,
    wide_resnet,
)
from builders.batch_norm import FusedBatchNormalization
from tests.helpers import BIG_PRESETS, preset_params
from tests.reference_nets import (
    NumpyOps,
    cifar_resnet_forward,
    imagenet_resnet_forward,
    params_from_keras,
    preact_resnet_forward,
    randomise_statistics,
    wrn_forward,
)

# A warning Keras gives about a net the builders made is a bug of the builders.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


def trainable(model):
    return count_params(model)["trainable_params"]


# The presets' published numbers (builders/presets.py, field guide section 3). Arithmetic for the
# first one: WRN-28-2 has N = (28 - 4) / 6 = 4 blocks per group at widths 32/64/128; a BN has 2
# weights per channel. Block 1 of a group: BN(in) + conv 3x3 in->w + BN(w) + conv 3x3 w->w + 1x1 in->w.
#   stem 3*3*3*16                                                               =       432
#   group1: 32 + 4,608 + 64 + 9,216 + 512 = 14,432; blocks 2-4 3 * 2 * (64 + 9,216)  =    70,112
#   group2: 64 + 18,432 + 128 + 36,864 + 2,048 = 57,536; 3 * 2 * (128 + 36,864)       =   279,488
#   group3: 128 + 73,728 + 256 + 147,456 + 8,192 = 229,760; 3 * 2 * (256 + 147,456)  = 1,116,032
#   head BN(128) 256 + dense 128 * 10 + 10                                           =     1,546
#                                                                                      1,467,610
PUBLISHED = sorted(name for name, preset in PRESETS.items() if preset.published != Published())


def test_the_published_numbers_cover_every_family_and_the_baseline_trio():
    assert {PRESETS[name].family for name in PUBLISHED} == {PRESETS[name].family for name in PRESETS}
    assert {"resnet-110-projection", "wrn-28-2", "wrn-28-2-dropout"} <= set(PUBLISHED)


@pytest.mark.parametrize("name", preset_params(PUBLISHED))
def test_every_preset_matches_its_published_params_and_macs(name):
    model, published = build(name), PRESETS[name].published
    if published.trainable_params is not None:
        assert trainable(model) == published.trainable_params
    if published.macs is not None:  # within 1%: the papers round, and count BN and ReLU differently
        assert count_macs(model) == pytest.approx(published.macs, rel=0.01)


@pytest.mark.slow
def test_more_classes_add_exactly_the_classifier_weights():
    # WRN-28-10 with 100 classes: + 90 * (640 + 1) = 57,690 for 90 more classes.
    assert trainable(build("wrn-28-10", num_classes=100)) == 36_479_194 + 57_690


def test_plain_nets_have_the_same_layers_without_shortcuts():
    for depth in (18, 34, 50):
        residual, plain = imagenet_resnet(depth=depth), imagenet_resnet(depth=depth, residual=False)
        shortcuts = [layer for layer in residual.layers if "shortcut" in layer.name]
        assert shortcuts and not any("shortcut" in layer.name or "add" in layer.name for layer in plain.layers)
        # Same convs and BNs in the residual branches, so the difference is exactly the shortcuts.
        assert trainable(residual) - trainable(plain) == sum(trainable_weights(layer) for layer in shortcuts)


def trainable_weights(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


# The paper's Table 2 (k = 2, N = (depth - 4) / 6 blocks per group), params in millions to 0.1M.
BLOCK_TYPE_TABLE = [("B(1,3,1)", 40, 1.4), ("B(3,1)", 40, 1.2), ("B(1,3)", 40, 1.3),
                    ("B(3,1,1)", 40, 1.3), ("B(3,3)", 28, 1.5), ("B(3,1,3)", 22, 1.1)]


@pytest.mark.parametrize("block_type,depth,millions", BLOCK_TYPE_TABLE)
def test_block_type_table_params(block_type, depth, millions):
    model = wide_resnet(depth=depth, widen_factor=2, block_type=block_type)
    assert round(trainable(model) / 1e6, 1) == millions


def test_deepening_factor_nets_all_have_2_2m_params():
    # 40 conv layers held fixed: 3 groups * N blocks * l convs + 4 = 40 for (l, N) below, and
    # every conv is 3x3 at the same width, so the weights are the same in number.
    counts = {l: trainable(wide_resnet(depth=40, widen_factor=2, block_type="B(" + ",".join("3" * l) + ")",
                                       blocks_per_group=n))
              for l, n in [(1, 12), (2, 6), (3, 4), (4, 3)]}
    assert len(set(counts.values())) == 1
    assert round(counts[1] / 1e6, 1) == 2.2


def test_macs_of_a_conv_by_hand():
    # One 3x3 conv, 8 -> 4 channels on a 5x5 map with "same" padding: 5*5*4 outputs * 3*3*8 = 7,200;
    # the dense layer 4 -> 2 adds 8 (after pooling).
    inputs = keras.Input((5, 5, 8))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    assert count_macs(model) == 7_200 + 8


@pytest.mark.parametrize("name", preset_params(sorted(PRESETS)))
def test_every_preset_builds_with_the_right_output_shape(name):
    model = build(name, num_classes=7)
    assert model.output.shape == (None, 7)
    assert (trainable(model) > 20e6) == (name in BIG_PRESETS)  # the tests' list of big nets is true
    assert model.input.shape[1:] == PRESETS[name].input_shape
    assert model.get_layer("stem_conv") and model.get_layer("head_dense")


def test_layer_names_are_hierarchical_and_stable():
    names = {layer.name for layer in build("wrn-28-2-dropout").layers}
    expected = {"stem_conv", "group1_block1_bn1", "group1_block1_conv1", "group1_block1_dropout2",
                "group2_block1_shortcut", "group3_block4_conv2", "head_bn", "head_pool", "head_dense"}
    assert expected <= names
    assert {layer.name for layer in build("wrn-28-2-dropout").layers} == names


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_dropout_layers_exist_exactly_when_rate_is_positive_and_feed_a_conv(rate):
    model = wide_resnet(depth=16, widen_factor=1, dropout_rate=rate)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    # One dropout per block, before its second conv: 3 groups * 2 blocks.
    assert len(dropouts) == (6 if rate else 0)
    for layer in dropouts:
        assert layer.rate == rate
        assert [type(c) for c in consumers_of(model, layer)] == [keras.layers.Conv2D]


def consumers_of(model, layer):
    return [other for other in model.layers if any(t is layer.output for t in _inputs_of(other))]


def _inputs_of(layer):
    inputs = layer.input
    return inputs if isinstance(inputs, (list, tuple)) else [inputs]


@pytest.mark.parametrize("block_type", ["B(3,3)", "B(1,3,1)", "B(3,1)"])
def test_same_logits_as_the_reference_implementation(block_type):
    rng = np.random.default_rng(0)
    model = wide_resnet(depth=10, widen_factor=2, block_type=block_type)
    randomise_statistics(model, rng)
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ours = model(x, training=False).numpy()
    kernels = parse_block_type(block_type)
    theirs = wrn_forward(NumpyOps, params_from_keras(model), x.transpose(0, 3, 1, 2).astype("float64"), depth=10,
                         width=2, kernels=kernels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


# The other families against their reference codes' forward passes (tests/reference_nets.py), the
# smallest net of each block kind; the ImageNet-style nets on 32x32 inputs.
OTHER_REFERENCES = {
    "cifar-resnet-8": (lambda: cifar_resnet(depth=8), functools.partial(cifar_resnet_forward, depth=8)),
    "cifar-resnet-8-projection": (lambda: cifar_resnet(depth=8, shortcut="projection"),
                                  functools.partial(cifar_resnet_forward, depth=8, shortcut="projection")),
    "preact-resnet-11": (lambda: preact_resnet(depth=11), functools.partial(preact_resnet_forward, depth=11)),
    **{f"imagenet-{'resnet' if residual else 'plain'}-{depth}": (
        functools.partial(imagenet_resnet, depth=depth, residual=residual, input_shape=(32, 32, 3), num_classes=10),
        functools.partial(imagenet_resnet_forward, depth=depth, residual=residual))
       for depth, residual in [(18, True), (50, True), (18, False)]},
}


@pytest.mark.parametrize("name", sorted(OTHER_REFERENCES))
def test_every_family_computes_its_reference_codes_function(name):
    make, reference = OTHER_REFERENCES[name]
    rng = np.random.default_rng(4)
    model = make()
    randomise_statistics(model, rng)
    x = rng.normal(size=(2, *model.input.shape[1:])).astype("float32")
    theirs = reference(NumpyOps, params_from_keras(model), x.transpose(0, 3, 1, 2).astype("float64"))
    np.testing.assert_allclose(model(x, training=False).numpy(), theirs, rtol=1e-4, atol=1e-4)


def test_same_logits_as_pytorch_itself():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; the NumPy transcription runs everywhere")
    from tests.reference_nets import TorchOps

    rng = np.random.default_rng(1)
    model = wide_resnet(depth=16, widen_factor=2)
    randomise_statistics(model, rng)
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    params = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params_from_keras(model).items()}
    theirs = wrn_forward(TorchOps(), params, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), depth=16, width=2)
    np.testing.assert_allclose(model(x, training=False).numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_tensorflow_same_padding_computes_a_different_function():
    # Why `padding="symmetric"` is the default: with the same weights, "same" shifts every
    # stride-2 conv by half a pixel, and the logits move.
    rng = np.random.default_rng(2)
    faithful, same = wide_resnet(depth=10, widen_factor=1), wide_resnet(depth=10, widen_factor=1, padding="same")
    same.set_weights(faithful.get_weights())
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    assert np.abs(faithful(x).numpy() - same(x).numpy()).max() > 1e-3


def test_faithful_layer_settings():
    model = build("wrn-10-1")
    bn = model.get_layer("group1_block1_bn1")
    conv = model.get_layer("group2_block1_conv1")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert not conv.use_bias and conv.padding == "valid"  # explicit symmetric ZeroPadding2D before it
    assert model.get_layer("group2_block1_conv1_pad").padding == ((1, 1), (1, 1))
    init = conv.kernel_initializer.get_config()
    assert (init["scale"], init["mode"], init["distribution"]) == (2.0, "fan_out", "untruncated_normal")
    # The bn options are really named options.
    other = build("wrn-10-1", bn_momentum=0.99, bn_epsilon=1e-3).get_layer("group1_block1_bn1")
    assert (other.momentum, other.epsilon) == (0.99, 1e-3)


def test_bn_gamma_is_a_named_departure_from_the_reference_codes_start():
    gammas = lambda model: np.concatenate([layer.gamma.numpy() for layer in model.layers
                                           if isinstance(layer, keras.layers.BatchNormalization)])
    assert 0 < gammas(wide_resnet(depth=10, widen_factor=1)).min() < gammas(wide_resnet(depth=10, widen_factor=1)).max() < 1
    assert (gammas(wide_resnet(depth=10, widen_factor=1, bn_gamma="ones")) == 1).all()
    assert np.ptp(gammas(cifar_resnet(depth=8, bn_gamma="uniform"))) > 0 and (gammas(cifar_resnet(depth=8)) == 1).all()
    # A run records it and names it.
    run = RunConfig(model="wrn-10-1", model_overrides={"bn_gamma": "ones"}).resolve()
    assert run.initialization()["bn_gamma"] == "ones" and run.configuration_id() == "wrn-10-1-bn_gamma=ones"
    assert RunConfig(model="wrn-10-1").resolve().initialization()["bn_gamma"] == "uniform"


def test_dropout_position_after_conv_is_a_named_option():
    model = wide_resnet(depth=10, widen_factor=1, dropout_rate=0.3, dropout_position="after_conv")
    dropout = model.get_layer("group1_block1_dropout2")
    assert [type(c) for c in consumers_of(model, dropout)] == [FusedBatchNormalization]


@pytest.mark.parametrize("name,overrides", [("wrn-10-1", {"dropout_rate": 0.3}), ("resnet-20", {}),
                                            ("preact-resnet-164", {}),
                                            ("imagenet-plain-18", {"input_shape": (64, 64, 3)}),
                                            ("wrn-10-1", {"block_type": "B(1,3,1)"})])
def test_keras_save_load_round_trip_gives_the_same_outputs(tmp_path, name, overrides):
    model = build(name, **overrides)
    x = np.random.default_rng(3).normal(size=(2, *model.input.shape[1:])).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [(layer.name, type(layer)) for layer in loaded.layers] == [(layer.name, type(layer)) for layer in model.layers]
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


@pytest.mark.parametrize("call,message", [
    (lambda: wide_resnet(depth=27), "depth=27"),
    (lambda: wide_resnet(depth=28, block_type="B(3,x)"), "block_type='B(3,x)'"),
    (lambda: wide_resnet(depth=28, block_type="B(2,3)"), "block_type='B(2,3)'"),
    (lambda: wide_resnet(depth=28, dropout_rate=1.5), "dropout_rate=1.5"),
    (lambda: wide_resnet(depth=28, widen_factor=0), "widen_factor=0"),
    (lambda: wide_resnet(depth=28, dropout_position="middle"), "dropout_position='middle'"),
    (lambda: wide_resnet(depth=28, padding="reflect"), "padding='reflect'"),
    (lambda: wide_resnet(depth=28, bn_gamma="zeros"), "bn_gamma='zeros'"),
    (lambda: cifar_resnet(depth=21), "depth=21"),
    (lambda: cifar_resnet(depth=20, shortcut="option_c"), "shortcut='option_c'"),
    (lambda: preact_resnet(depth=111), "depth=111"),
    (lambda: imagenet_resnet(depth=20), "depth=20"),
    # TensorFlow refuses it as the name scope of the first training step.
    (lambda: wide_resnet(depth=10, widen_factor=1, name="WRN-40-2-B(1,3,1)"), "name='WRN-40-2-B(1,3,1)'"),
    (lambda: build("resnet-50"), "'resnet-50'"),
])
def test_bad_arguments_raise_a_value_error_naming_the_value(call, message):
    with pytest.raises(ValueError) as error:
        call()
    text = str(error.value)
    assert message in text and ("expected" in text or "known" in text)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*wrn-28-2.*imagenet-resnet-50"):
        build("resnet-50")
