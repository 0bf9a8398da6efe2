"""The recipe axes against their references, on the same inputs: the smoothed loss against torch's,
the cosine schedule and the warm-up against torch's scheduler and timm's formula at every step, no
bias decay against torch's SGD with timm's parameter groups, and the EMA against ModelEmaV2's
formula. Each test also shows that a plausible wrong version (Keras's ready-made piece, or the
usual slip) gives another answer, so the test can fail. And the reference recipes train bitwise
as before."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ablation.run.callbacks import PortableExport
from ablation.run.recipes import CoupledSGD, CrossEntropy, Recipe, compile_model, get_recipe
from builders import build
from tests.helpers import ROOT

CLASSES = 10


def _logits_and_labels(seed=0, count=16):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (count, CLASSES)).astype("float32"), rng.integers(0, CLASSES, count)


def _cross_entropy(target, logits):
    """The cross-entropy of a target distribution, in NumPy float64."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(target * log_p).sum(axis=1).mean())


# ----------------------------------------------------------------------------------------------
# Label smoothing


def test_label_smoothing_is_torchs_cross_entropy_and_mixed_targets_are_the_papers_loss():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    logits, labels = _logits_and_labels()
    one_hot = np.eye(CLASSES, dtype="float32")[labels]
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    for e in (0.0, 0.1, 0.3):
        theirs = float(torch.nn.functional.cross_entropy(t_logits, t_labels, label_smoothing=e))
        assert float(CrossEntropy(e)(one_hot, logits)) == pytest.approx(theirs, rel=1e-5)
        # mixup's and CutMix's loss: lam CE(y_a) + (1 - lam) CE(y_b), each smoothed, from the mixed target.
        lam, partner = 0.37, np.random.default_rng(1).permutation(len(labels))
        mixed = lam * one_hot + (1 - lam) * one_hot[partner]
        reference = lam * theirs + (1 - lam) * float(torch.nn.functional.cross_entropy(
            t_logits, t_labels[partner], label_smoothing=e))
        assert float(CrossEntropy(e)(mixed, logits)) == pytest.approx(reference, rel=1e-5)
    # Integer labels (validation and the test) get the plain cross-entropy, smoothing or not.
    plain = float(torch.nn.functional.cross_entropy(t_logits, t_labels))
    assert float(CrossEntropy(0.1)(labels, logits)) == pytest.approx(plain, rel=1e-5)
    assert float(CrossEntropy(0.1)(labels[:, None], logits)) == pytest.approx(plain, rel=1e-5)  # keras.datasets' [N, 1]
    # The plausible slip: e / (K - 1) to the other classes only (the true class at exactly 1 - e).
    e = 0.1
    slipped = (1 - e) * one_hot + e / (CLASSES - 1) * (1 - one_hot)
    smoothed = float(torch.nn.functional.cross_entropy(t_logits, t_labels, label_smoothing=e))
    assert abs(_cross_entropy(slipped, logits) - smoothed) > 1e-3


def test_the_training_step_smooths_its_targets_and_validation_does_not():
    net = build("wrn-10-1", input_shape=(16, 16, 3), num_classes=CLASSES)
    model = compile_model(net, Recipe(label_smoothing=0.2), steps_per_epoch=10)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, CLASSES, 8)
    before = net(x, training=True).numpy()  # the step's forward: batch statistics, no weight yet changed
    smoothed = 0.8 * np.eye(CLASSES)[y] + 0.2 / CLASSES
    assert model.train_on_batch(x, y, return_dict=True)["loss"] == pytest.approx(_cross_entropy(smoothed, before),
                                                                                 rel=1e-4)
    after = net(x, training=False).numpy()
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
        _cross_entropy(np.eye(CLASSES)[y], after), rel=1e-4)


# ----------------------------------------------------------------------------------------------
# Schedules


def _torch_lrs(torch, scheduler_of, steps, lr=0.1):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = scheduler_of(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


def test_cosine_is_torchs_cosine_annealing_stepped_per_batch():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    epochs, steps_per_epoch = 4, 7
    total = epochs * steps_per_epoch
    schedule = get_recipe("wrn").replace(lr_schedule="cosine", epochs=epochs).schedule(steps_per_epoch)
    ours = [float(schedule(step)) for step in range(total)]
    theirs = _torch_lrs(torch, lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), total)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    # The slip: stepped once per epoch (timm's default, t_in_epochs), the lr flat within an epoch.
    per_epoch = [0.5 * 0.1 * (1 + math.cos(math.pi * (step // steps_per_epoch) / epochs)) for step in range(total)]
    assert max(abs(a - b) for a, b in zip(ours, per_epoch, strict=True)) > 1e-3
    # He et al.'s constant warm-up (ResNet-110's) still holds its first steps under the cosine.
    warm = get_recipe("he").replace(lr_schedule="cosine", epochs=epochs, warmup_steps=3).schedule(steps_per_epoch)
    assert [float(warm(step)) for step in range(5)] == pytest.approx([0.01, 0.01, 0.01, ours[3], ours[4]], rel=1e-5)


@pytest.mark.parametrize("lr_schedule", ["cosine", "step"])
def test_the_warm_up_is_linear_from_zero_and_laid_over_the_schedule_as_timms(lr_schedule):
    epochs, steps_per_epoch, warmup_epochs, peak = 10, 5, 2, 0.1
    recipe = get_recipe("wrn").replace(lr_schedule=lr_schedule, epochs=epochs, warmup_epochs=warmup_epochs)
    without = recipe.replace(warmup_epochs=0).schedule(steps_per_epoch)
    schedule = recipe.schedule(steps_per_epoch)
    warmup, total = warmup_epochs * steps_per_epoch, epochs * steps_per_epoch
    # timm's CosineLRScheduler(warmup_t, warmup_lr_init=0, warmup_prefix=False), per update:
    # lr = warmup_lr_init + t (base - warmup_lr_init) / warmup_t before warmup_t, the schedule's own value after.
    expected = [peak * t / warmup if t < warmup else float(without(t)) for t in range(total)]
    ours = [float(schedule(t)) for t in range(total)]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-8)
    if lr_schedule == "cosine":
        np.testing.assert_allclose(ours[warmup:], [0.5 * peak * (1 + math.cos(math.pi * t / total))
                                                   for t in range(warmup, total)], rtol=1e-5)
        # The slip: Keras's CosineDecay warm-up is a prefix, and starts the decay after it.
        prefixed = keras.optimizers.schedules.CosineDecay(0.0, total - warmup, warmup_target=peak, warmup_steps=warmup)
        assert max(abs(float(prefixed(t)) - ours[t]) for t in range(warmup, total)) > 1e-3


# ----------------------------------------------------------------------------------------------
# No bias decay


def test_no_bias_decay_is_torch_sgd_with_timms_parameter_groups():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    net = build("wrn-10-1", input_shape=(8, 8, 3), num_classes=4)
    wd, rng = 0.05, np.random.default_rng(0)
    values = [v.numpy() for v in net.trainable_variables]
    gradients = [[rng.normal(size=v.shape).astype("float32") for v in values] for _ in range(3)]
    optimizer = CoupledSGD(0.1, momentum=0.9, nesterov=True, coupled_weight_decay=wd, no_bias_decay=True)
    for step in gradients:
        optimizer.apply_gradients([(tf.constant(g), v) for g, v in zip(step, net.trainable_variables, strict=True)])
    params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    # timm's param_groups_weight_decay: no decay for a parameter of one dimension or none.
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": wd},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    sgd = torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
    for step in gradients:
        for p, g in zip(params, step, strict=True):
            p.grad = torch.from_numpy(g)
        sgd.step()
    decayed = 0
    for variable, param in zip(net.trainable_variables, params, strict=True):
        np.testing.assert_allclose(variable.numpy(), param.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=variable.path)
        decayed += variable.name == "kernel"
    assert {v.name for v in net.trainable_variables if len(v.shape) <= 1} == {"gamma", "beta", "bias"} and decayed
    # The slip: every weight decayed (the reference recipes' coupled decay) moves gamma, beta and bias otherwise.
    everything = torch.optim.SGD([torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values], lr=0.1,
                                 momentum=0.9, nesterov=True, weight_decay=wd)
    for step in gradients:
        for p, g in zip(everything.param_groups[0]["params"], step, strict=True):
            p.grad = torch.from_numpy(g)
        everything.step()
    gamma = next(i for i, v in enumerate(net.trainable_variables) if v.name == "gamma")
    assert not np.allclose(everything.param_groups[0]["params"][gamma].detach().numpy(),
                           net.trainable_variables[gamma].numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# The exponential moving average


def _ema_model(decay=0.8):
    net = build("wrn-10-1", input_shape=(16, 16, 3), num_classes=4)
    return net, compile_model(net, Recipe(ema_decay=decay), steps_per_epoch=10)


def _batches(count=3, size=8):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(size, 16, 16, 3)).astype("float32"), rng.integers(0, 4, size)) for _ in range(count)]


def test_the_ema_is_timms_model_ema_v2_over_every_weight_and_batch_norm_statistic():
    decay = 0.8
    net, model = _ema_model(decay)
    expected = [w.numpy() for w in net.weights]  # ModelEmaV2 starts as a copy of the model
    raw = []
    for x, y in _batches():
        model.train_on_batch(x, y)
        raw = [w.numpy() for w in net.weights]
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, raw, strict=True)]
    for weight, average, value in zip(net.weights, model.averages, expected, strict=True):
        np.testing.assert_allclose(average.numpy(), value, rtol=1e-5, atol=1e-6, err_msg=weight.path)
    # The slip (Keras's optimizer EMA): only the trainable weights averaged, BN's statistics raw.
    statistics = [i for i, w in enumerate(net.weights) if w.name in ("moving_mean", "moving_variance")]
    assert statistics and all(not np.allclose(model.averages[i].numpy(), raw[i], atol=1e-4) for i in statistics)


def test_validation_the_test_and_the_saved_net_use_the_averages(tmp_path):
    net, model = _ema_model()
    for x, y in _batches():
        model.train_on_batch(x, y)
    averaged = keras.models.clone_model(net)
    averaged.set_weights([a.numpy() for a in model.averages])
    x, y = _batches(1, 16)[0]
    expected = averaged(x, training=False).numpy()
    assert not np.allclose(net(x, training=False).numpy(), expected, atol=1e-4)  # the raw weights differ
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
        _cross_entropy(np.eye(4)[y], expected.astype("float64")), rel=1e-4)
    PortableExport(model).save(tmp_path / "final.keras")
    loaded = keras.saving.load_model(tmp_path / "final.keras")
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_resumable_state_keeps_the_averages_and_a_plain_nets_state_still_loads(tmp_path):
    net, model = _ema_model()
    for x, y in _batches():
        model.train_on_batch(x, y)
    model.save_weights(tmp_path / "state.weights.h5")
    _, resumed = _ema_model()
    resumed.load_weights(tmp_path / "state.weights.h5")
    for ours, theirs in zip(model.averages, resumed.averages, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # A state written before RecipeModel (the net compiled itself) resumes into one.
    plain = build("wrn-10-1", input_shape=(16, 16, 3), num_classes=4)
    plain.compile(optimizer=get_recipe("wrn").make_optimizer(10),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.optimizer.build(plain.trainable_variables)
    plain.train_on_batch(*_batches(1)[0])
    plain.save_weights(tmp_path / "plain.weights.h5")
    again = compile_model(build("wrn-10-1", input_shape=(16, 16, 3), num_classes=4), get_recipe("wrn"), 10)
    again.load_weights(tmp_path / "plain.weights.h5")
    for ours, theirs in zip(plain.weights, again.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert int(again.optimizer.iterations) == 1


# ----------------------------------------------------------------------------------------------
# The reference recipes are unchanged


# What runs did before RecipeModel: the net compiled itself with Keras's sparse cross-entropy and
# accuracy. Under deterministic kernels (in a process of its own: they cannot be turned off again),
# the same steps must give the same bits either way.
_BITWISE = """
import hashlib, json, sys
import keras, numpy as np, tensorflow as tf
from ablation.run.recipes import compile_model, get_recipe
from builders import build
tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
batches = [(rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, 4, 8)) for _ in range(3)]
out = {}
for wrapped in (False, True):
    keras.utils.set_random_seed(3)
    net = build("wrn-10-1", input_shape=(16, 16, 3), num_classes=4)
    recipe = get_recipe("wrn")
    if wrapped:
        model = compile_model(net, recipe, steps_per_epoch=10)
        assert model.reference_step
    else:
        model = net
        model.compile(optimizer=recipe.make_optimizer(10), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    logs = [model.train_on_batch(x, y, return_dict=True) for x, y in batches]
    digest = hashlib.sha256(b"".join(w.numpy().tobytes() for w in net.weights)).hexdigest()
    out[str(wrapped)] = {"logs": logs, "weights": digest}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_reference_recipes_train_bitwise_as_the_net_compiled_by_itself():
    result = subprocess.run([sys.executable, "-c", _BITWISE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["False"] == runs["True"]
    assert runs["False"]["logs"][0]["loss"] != runs["False"]["logs"][-1]["loss"]  # it did train
