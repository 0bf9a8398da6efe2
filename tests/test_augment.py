"""The data axes against their reference codes, on the same inputs and draws: mixup and CutMix
against mixup-cifar10's and CutMix-PyTorch's formulas (in PyTorch where installed), `rand_bbox`
as written, Cutout's mask as util/cutout.py computes it, RandAugment's ops as torchvision's
tensor functions compute them (transcribed in NumPy below); and how each draws: one lambda per
batch, boxes and holes centred anywhere and clipped, CutMix on about half the batches, each
image its own RandAugment ops. Each shows that the plausible wrong version (Keras's layer, or a box
kept inside the image) gives another answer."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from ablation.run import RunConfig, augment, randaugment, train
from ablation.run.augment import BatchAugmentation
from ablation.run.recipes import CrossEntropy, Recipe
from tests.helpers import ROOT, quiet

f32 = np.float32


def _images(count=8, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("uint8")


def _chain(augment=False, **axes):
    """A run's device augmentation with the pixels kept as x / 255 (mean 0, std 1), without the crop
    unless `augment`."""
    return BatchAugmentation(Recipe(**axes), num_classes=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), seed=5,
                             steps_per_epoch=1000, augment=augment)


# ----------------------------------------------------------------------------------------------
# mixup


def test_mixup_is_mixup_cifar10s_for_a_given_lambda_and_permutation():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    lam, index = 0.3, np.array([3, 0, 1, 2, 7, 6, 5, 4])
    mixed, targets = augment.mixup(tf.constant(x), tf.one_hot(y, 8), lam, tf.constant(index))
    # train.py's mixup_data: mixed_x = lam * x + (1 - lam) * x[index, :], on NCHW tensors.
    t_x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    reference = lam * t_x + (1 - lam) * t_x[torch.from_numpy(index), :]
    np.testing.assert_allclose(mixed.numpy(), reference.numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
    # mixup_criterion: lam CE(pred, y_a) + (1 - lam) CE(pred, y_b).
    logits = np.random.default_rng(1).normal(size=(8, 8)).astype("float32")
    t_logits, t_y = torch.from_numpy(logits), torch.from_numpy(y)
    loss = lam * torch.nn.functional.cross_entropy(t_logits, t_y) + (1 - lam) * torch.nn.functional.cross_entropy(
        t_logits, t_y[torch.from_numpy(index)])
    assert float(CrossEntropy()(targets, logits)) == pytest.approx(float(loss), rel=1e-5)


def _mixing_of(images, targets, labels):
    """From a mixed batch of distinct labels 0..n-1: each image's lambda (its own label's weight) and
    partner (the other label's), where the partner is another image."""
    lams, partners = targets[np.arange(len(labels)), labels], []
    for i in range(len(labels)):
        others = np.flatnonzero((targets[i] > 1e-6) & (np.arange(targets.shape[1]) != labels[i]))
        partners.append(int(others[0]) if len(others) else i)
    return lams, np.array(partners)


def test_mixup_draws_one_lambda_per_batch_from_beta_alpha_alpha():
    images, labels = _images(), np.arange(8)
    chain = _chain(mixup_alpha=1.0)
    mixed, targets = chain(tf.constant(images), tf.constant(labels), tf.constant(0, tf.int64))
    lams, partners = _mixing_of(images, targets.numpy(), labels)
    moved = partners != np.arange(8)
    assert moved.sum() >= 4 and np.ptp(lams[moved]) < 1e-6  # the same lambda for every image of the batch
    lam = lams[moved][0]
    np.testing.assert_allclose(mixed.numpy(), (lam * images + (1 - lam) * images[partners]) / 255, atol=1e-5)
    # The slip, Keras's layer: a lambda per image (and alpha 0.2 by default).
    from keras.layers import MixUp
    theirs = MixUp(alpha=1.0, seed=3)({"images": tf.constant(images, tf.float32), "labels": tf.one_hot(labels, 8)},
                                      training=True)
    their_lams, their_partners = _mixing_of(images, theirs["labels"].numpy(), labels)
    assert np.ptp(their_lams[their_partners != np.arange(8)]) > 1e-3
    # Over many batches lambda follows Beta(a, a); another alpha, another distribution.
    for alpha in (1.0, 0.2):
        chain = _chain(mixup_alpha=alpha)
        draws = []
        for step in range(300):
            _, targets = chain(tf.constant(images[:2]), tf.constant([0, 1]), tf.constant(step, tf.int64))
            draws.append(float(targets.numpy()[0, 0]) if targets.numpy()[0, 1] > 1e-6 else None)
        draws = [d for d in draws if d is not None]  # the image was its own partner: lambda unseen
        assert len(draws) > 100 and stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_beta_draws_stay_finite_for_a_tiny_alpha():
    # Gamma(alpha) draws of a tiny alpha underflow to 0 (and G1 / (G1 + G2) to 0 / 0): taken in logs.
    lams = np.array([float(augment.draw_beta(tf.constant([s, 3], tf.int64), 0.001)) for s in range(200)])
    assert np.isfinite(lams).all() and ((lams >= 0) & (lams <= 1)).all()
    assert np.mean((lams < 1e-6) | (lams > 1 - 1e-6)) > 0.9  # Beta(0.001, 0.001): nearly always 0 or 1


# ----------------------------------------------------------------------------------------------
# CutMix


def _rand_bbox_as_written(size, lam, cx, cy):
    """CutMix-PyTorch train.py's rand_bbox, with its two randint draws given."""
    W = size[2]
    H = size[3]
    cut_rat = np.sqrt(1. - lam)
    cut_w = int(W * cut_rat)
    cut_h = int(H * cut_rat)
    bbx1 = np.clip(cx - cut_w // 2, 0, W)
    bby1 = np.clip(cy - cut_h // 2, 0, H)
    bbx2 = np.clip(cx + cut_w // 2, 0, W)
    bby2 = np.clip(cy + cut_h // 2, 0, H)
    return bbx1, bby1, bbx2, bby2


@pytest.mark.parametrize("rows,columns", [(32, 32), (24, 40)])
def test_the_box_is_rand_bbox_as_written_centred_anywhere_and_clipped(rows, columns):
    rng = np.random.default_rng(0)
    lams = np.concatenate([rng.uniform(size=200), [0.0, 0.25, 0.5, 0.75, 1.0 - 1e-9, 0.999]])
    for lam in lams:
        cx, cy = int(rng.integers(rows)), int(rng.integers(columns))
        box = augment.rand_bbox(rows, columns, lam, cx, cy)
        assert tuple(int(v) for v in box) == _rand_bbox_as_written((8, 3, rows, columns), lam, cx, cy)
    # At a corner the reference's box is clipped to a quarter of its size; Keras's CutMix keeps its
    # box inside the image, which would keep all of it.
    x1, y1, x2, y2 = (int(v) for v in augment.rand_bbox(rows, columns, 0.75, 0, 0))
    full = (int(rows * 0.5) // 2 * 2) * (int(columns * 0.5) // 2 * 2)
    assert (x1, y1) == (0, 0) and (x2 - x1) * (y2 - y1) == full // 4


def test_cutmix_pastes_the_partners_box_and_mixes_by_the_pixels_kept_as_the_reference():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; it is the reference being matched")
    x = np.random.default_rng(0).normal(size=(6, 10, 12, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 4, 5])
    index, box = np.array([5, 4, 3, 2, 1, 0]), (2, 3, 10, 7)  # rows 2..9, columns 3..6, clipped at the bottom
    mixed, targets = augment.cutmix(tf.constant(x), tf.one_hot(y, 6), box, tf.constant(index))
    # train.py: input[:, :, bbx1:bbx2, bby1:bby2] = input[rand_index, :, bbx1:bbx2, bby1:bby2] (NCHW)
    bbx1, bby1, bbx2, bby2 = box
    t_input = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    t_input[:, :, bbx1:bbx2, bby1:bby2] = t_input[torch.from_numpy(index), :, bbx1:bbx2, bby1:bby2]
    np.testing.assert_array_equal(mixed.numpy(), t_input.numpy().transpose(0, 2, 3, 1))
    lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (t_input.size()[-1] * t_input.size()[-2]))
    logits = np.random.default_rng(1).normal(size=(6, 6)).astype("float32")
    t_logits, t_y = torch.from_numpy(logits), torch.from_numpy(y)
    loss = torch.nn.functional.cross_entropy(t_logits, t_y) * lam + torch.nn.functional.cross_entropy(
        t_logits, t_y[torch.from_numpy(index)]) * (1. - lam)
    assert float(CrossEntropy()(targets, logits)) == pytest.approx(float(loss), rel=1e-5)


def test_cutmix_applies_to_about_cutmix_prob_of_the_batches():
    images, labels = _images(4), np.arange(4)
    for probability in (0.5, 1.0):
        chain = _chain(cutmix_alpha=1.0, cutmix_prob=probability)
        applied = 0
        for step in range(400):
            _, targets = chain(tf.constant(images), tf.constant(labels), tf.constant(step, tf.int64))
            applied += not np.allclose(targets.numpy(), np.eye(8)[labels])
        # A mixed batch can look unmixed (an empty box, or each image its own partner): rare.
        low, high = stats.binom(400, probability).ppf([1e-4, 1 - 1e-4]) if probability < 1 else (380, 400)
        assert low - 10 <= applied <= high, (probability, applied)


# ----------------------------------------------------------------------------------------------
# Cutout


def _cutout_as_written(img, length, y, x):
    """uoguelph-mlrg/Cutout util/cutout.py's Cutout on a CHW image, with its two randint draws given."""
    h = img.shape[1]
    w = img.shape[2]
    mask = np.ones((h, w), np.float32)
    y1 = np.clip(y - length // 2, 0, h)
    y2 = np.clip(y + length // 2, 0, h)
    x1 = np.clip(x - length // 2, 0, w)
    x2 = np.clip(x + length // 2, 0, w)
    mask[y1: y2, x1: x2] = 0.
    return img * mask[None]


def test_cutout_is_util_cutout_for_given_centres_and_every_image_has_its_hole():
    images = np.random.default_rng(0).normal(size=(40, 32, 32, 3)).astype("float32") + 5.0  # no zero of its own
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, 32, 40), rng.integers(0, 32, 40)
    ys[:4], xs[:4] = [0, 31, 0, 16], [0, 31, 16, 16]  # corners and an edge: clipped holes
    for length in (16, 8, 5):
        out = augment.cutout(tf.constant(images), length, tf.constant(ys, tf.int32), tf.constant(xs, tf.int32)).numpy()
        for i in range(40):
            reference = _cutout_as_written(images[i].transpose(2, 0, 1), length, ys[i], xs[i]).transpose(1, 2, 0)
            np.testing.assert_array_equal(out[i], reference)
    holes = (out == 0).all(axis=-1).sum(axis=(1, 2))
    # L = 5: rows [y - 2, y + 2), clipped: 2 x 2 at the top-left corner, 3 x 3 at the bottom-right, 4 x 4 inside.
    assert (holes[0], holes[1], holes[3]) == (4, 9, 16)


def test_cutout_holes_are_centred_anywhere_clipped_at_the_borders_and_zeros_in_the_normalised_image():
    centres = np.concatenate([augment.draw_positions(tf.constant([s, 7], tf.int64), 64, 32).numpy() for s in range(200)])
    counts = np.bincount(centres, minlength=32)
    assert counts.min() > 0 and stats.chisquare(counts).pvalue > 1e-3  # borders included, evenly
    images = _images(16)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    chain = BatchAugmentation(Recipe(cutout=16), num_classes=8, mean=mean, std=std, seed=5, steps_per_epoch=10,
                              augment=False)
    holes = []
    for step in range(60):
        out, _ = chain(tf.constant(images), tf.constant(np.arange(16) % 8), tf.constant(step, tf.int64))
        hole = (out.numpy() == 0).all(axis=-1)
        holes += list(hole.sum(axis=(1, 2)))
        kept = ~hole
        np.testing.assert_allclose(out.numpy()[kept], ((images / 255 - mean) / std)[kept], rtol=1e-5, atol=1e-5)
    holes = np.array(holes)
    assert (holes >= 8 * 8).all()  # every image has its hole: at least the quarter a corner leaves
    # A centre within 8 pixels of a border (3 in 4 centres on a 32 x 32 image) clips the 16 x 16 square;
    # a hole kept inside the image (Keras's RandomErasing, CutMix) would always be whole.
    clipped = np.mean(holes < 16 * 16)
    assert 0.68 < clipped < 0.82, clipped


def test_a_data_axis_leaves_the_crops_and_flips_the_pipeline_would_draw(easy):
    # The device draws a batch's crops from the pipeline's own seeds: with Cutout on, every pixel
    # outside the hole is the reference run's, so runs of one seed stay paired.
    from ablation.run import data

    source = data.open_source(easy)
    pipeline = data.make_pipeline(source, image_shape=(32, 32, 3), batch_size=32, seed=7, max_steps_per_epoch=3)
    raw = dataclasses.replace(pipeline, augment_on_device=True)
    chain = BatchAugmentation(Recipe(cutout=8), num_classes=4, mean=pipeline.mean, std=pipeline.std, seed=7,
                              steps_per_epoch=pipeline.steps_per_epoch, augment=True)
    reference = list(pipeline.train_batches(0, 2))
    for step, (images, labels) in enumerate(raw.train_batches(0, 2)):
        out, _ = chain(images, labels, tf.constant(step, tf.int64))
        kept = ~(out.numpy() == 0).all(axis=-1)
        assert kept.mean() > 0.9
        np.testing.assert_allclose(out.numpy()[kept], reference[step][0].numpy()[kept], rtol=1e-6, atol=1e-6)


def test_over_two_replicas_each_crops_its_share_as_the_whole_batch_would():
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest.py sets up two logical CPUs"
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    chain = _chain(augment=True)
    images, labels = _images(8), np.arange(8)
    whole, _ = chain(tf.constant(images), tf.constant(labels), tf.constant(5, tf.int64))
    batches = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((images, labels)).batch(8))
    shares = strategy.run(lambda x, y: chain(x, y, tf.constant(5, tf.int64))[0], args=next(iter(batches)))
    np.testing.assert_array_equal(np.concatenate([s.numpy() for s in strategy.experimental_local_results(shares)]),
                                  whole.numpy())


# ----------------------------------------------------------------------------------------------
# RandAugment: torchvision's tensor ops, transcribed in NumPy float32 from torchvision 0.29.1


def _tv_blend(img, other, ratio):
    # _blend: (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)
    return np.floor(np.clip(f32(ratio) * img.astype(f32) + f32(1.0 - ratio) * other.astype(f32), 0, 255))


def _tv_grey(img):
    # rgb_to_grayscale: (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype)
    r, g, b = (img[..., i].astype(f32) for i in range(3))
    return np.floor(f32(0.2989) * r + f32(0.587) * g + f32(0.114) * b)[..., None]


def _tv_inverse_affine_matrix(center, angle, translate, scale, shear):
    # torchvision.transforms.functional._get_inverse_affine_matrix (inverted=True)
    rot = math.radians(angle)
    sx = math.radians(shear[0])
    sy = math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix = [x / scale for x in matrix]
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
    matrix[2] += cx
    matrix[5] += cy
    return matrix


def _tv_affine(img, matrix):
    # F_t.affine: _gen_affine_grid (pixel centres, theta / (size / 2)), grid_sample nearest
    # (round half to even), padding zeros, align_corners=False; all float32.
    h, w = img.shape[:2]
    theta = np.array(matrix, f32).reshape(2, 3)
    xb = (np.arange(w, dtype=f32) + f32(0.5) - f32(w * 0.5))[None, :]
    yb = (np.arange(h, dtype=f32) + f32(0.5) - f32(h * 0.5))[:, None]
    r = theta.T / np.array([0.5 * w, 0.5 * h], f32)
    gx = xb * r[0, 0] + yb * r[1, 0] + r[2, 0]
    gy = xb * r[0, 1] + yb * r[1, 1] + r[2, 1]
    ix = np.rint((gx + f32(1)) * f32(w / 2) - f32(0.5)).astype(int)
    iy = np.rint((gy + f32(1)) * f32(h / 2) - f32(0.5)).astype(int)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    return np.where(inside[..., None], img[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)], 0).astype(f32)


def _tv_op(name, img, magnitude):
    """autoaugment._apply_op on one HWC image of uint8 values, `magnitude` signed."""
    h, w = img.shape[:2]
    if name == "ShearX":
        shear = math.degrees(math.atan(magnitude))
        return _tv_affine(img, _tv_inverse_affine_matrix([0 - w * 0.5, 0 - h * 0.5], 0.0, [0.0, 0.0], 1.0, [shear, 0.0]))
    if name == "ShearY":
        shear = math.degrees(math.atan(magnitude))
        return _tv_affine(img, _tv_inverse_affine_matrix([0 - w * 0.5, 0 - h * 0.5], 0.0, [0.0, 0.0], 1.0, [0.0, shear]))
    if name == "TranslateX":
        return _tv_affine(img, _tv_inverse_affine_matrix([0.0, 0.0], 0.0, [float(int(magnitude)), 0.0], 1.0, [0.0, 0.0]))
    if name == "TranslateY":
        return _tv_affine(img, _tv_inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, float(int(magnitude))], 1.0, [0.0, 0.0]))
    if name == "Rotate":  # F.rotate hands the matrix -angle
        return _tv_affine(img, _tv_inverse_affine_matrix([0.0, 0.0], -magnitude, [0.0, 0.0], 1.0, [0.0, 0.0]))
    if name == "Brightness":
        return _tv_blend(img, np.zeros_like(img), 1.0 + magnitude)
    if name == "Color":
        return _tv_blend(img, _tv_grey(img), 1.0 + magnitude)
    if name == "Contrast":
        grey = _tv_grey(img)
        return _tv_blend(img, grey.sum(dtype=f32) / f32(h * w), 1.0 + magnitude)
    if name == "Sharpness":
        x = img.astype(np.int64)
        window = sum(x[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) + 4 * x[1:-1, 1:-1]
        degenerate = img.astype(f32).copy()
        degenerate[1:-1, 1:-1] = np.round(window / 13)  # torch.round of conv2d with [[1,1,1],[1,5,1],[1,1,1]] / 13
        return _tv_blend(img, degenerate, 1.0 + magnitude)
    if name == "Posterize":
        return (img.astype(np.uint8) & np.uint8((0xFF << (8 - int(magnitude))) & 0xFF)).astype(f32)
    if name == "Solarize":
        return np.where(img >= magnitude, 255 - img, img).astype(f32)
    if name == "AutoContrast":
        lo, hi = img.min(axis=(0, 1)).astype(f32), img.max(axis=(0, 1)).astype(f32)
        with np.errstate(divide="ignore"):
            scale = (f32(1) / (hi - lo)) * f32(255)  # `bound / tensor` is tensor.reciprocal() * bound
        flat = ~np.isfinite(scale)
        lo[flat], scale[flat] = 0, 1
        return np.floor(np.clip((img.astype(f32) - lo) * scale, 0, 255))
    if name == "Equalize":
        out = img.astype(f32).copy()
        for c in range(img.shape[-1]):
            channel = img[..., c].astype(np.int64)
            hist = np.bincount(channel.ravel(), minlength=256)
            step = hist[hist != 0][:-1].sum() // 255
            if step == 0:
                continue
            lut = (np.cumsum(hist) + step // 2) // step
            lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
            out[..., c] = lut[channel]
        return out
    return img.astype(f32)


@pytest.mark.parametrize("magnitude", [9, 14, 30])
@pytest.mark.parametrize("name", randaugment.OPS)
def test_each_randaugment_op_is_torchvisions_on_the_same_images(name, magnitude):
    images = _images(6, size=20).astype("float32")
    images[1] = images[1] // 4 + 60  # a narrow histogram: AutoContrast and Equalize at work
    images[2, ..., 1] = 128  # a flat channel: AutoContrast's and Equalize's special cases
    table = randaugment.magnitudes(magnitude, 20, 20)
    negative = np.array([False, True] * 3)
    out = randaugment.apply_ops(tf.constant(images), tf.fill([6], randaugment.OPS.index(name)), tf.constant(negative),
                                table).numpy()
    value = table.get(name, 0.0)
    signed = name in randaugment.SIGNED
    for i, image in enumerate(images):
        expected = _tv_op(name, image, -value if signed and negative[i] else value)
        differ = (out[i] != expected).any(axis=-1)
        assert differ.sum() == 0, (name, i, differ.sum())
    if name != "Identity":
        assert not np.array_equal(out, images)


@pytest.mark.parametrize("partitioned", [True, False])  # False: the static shapes of an XLA-compiled step
def test_a_batch_of_mixed_ops_gives_each_image_its_own_ops_result(partitioned):
    images = _images(28, size=16).astype("float32")
    chosen = np.tile(np.arange(len(randaugment.OPS)), 2)[::-1].copy()
    negative = np.arange(28) % 3 == 0
    table = randaugment.magnitudes(14, 16, 16)
    out = randaugment.apply_ops(tf.constant(images), tf.constant(chosen, tf.int32), tf.constant(negative), table,
                                partitioned=partitioned).numpy()
    for i, (op, image) in enumerate(zip(chosen, images, strict=True)):
        name = randaugment.OPS[op]
        value = table.get(name, 0.0)
        expected = _tv_op(name, image, -value if name in randaugment.SIGNED and negative[i] else value)
        assert not (out[i] != expected).any(), (i, name)


@pytest.mark.parametrize("name", randaugment.OPS)
def test_each_randaugment_op_is_torchvision_itself_where_it_is_installed(name):
    # torchvision is not a requirement (beside the torch wheel on disk it needs another torch); where
    # it imports, its `_apply_op` on the same images, at several magnitudes and both signs.
    pytest.importorskip("torchvision", reason="torchvision is optional; where installed, RandAugment is checked "
                                              "against it (the NumPy transcription above runs everywhere)")
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as tv

    images = _images(4, size=24)
    images[1] = images[1] // 4 + 60
    space_of = tv.RandAugment()._augmentation_space
    for magnitude in (0, 9, 20, 30):
        bins, signed = space_of(randaugment.MAGNITUDE_BINS, (24, 24))[name]
        table = randaugment.magnitudes(magnitude, 24, 24)
        for negative in (False, True):
            out = randaugment.apply_ops(tf.constant(images, tf.float32), tf.fill([4], randaugment.OPS.index(name)),
                                        tf.fill([4], negative), table).numpy()
            value = float(bins[magnitude].item()) if bins.ndim > 0 else 0.0
            value = -value if signed and negative else value
            for i, image in enumerate(images):
                theirs = tv._apply_op(torch.from_numpy(image.transpose(2, 0, 1).copy()), name, value,
                                      interpolation=InterpolationMode.NEAREST, fill=None)
                np.testing.assert_array_equal(out[i], theirs.numpy().transpose(1, 2, 0), err_msg=f"{name} {magnitude}")


def test_randaugment_magnitudes_are_torchvisions_table():
    # The table of RandAugment._augmentation_space at bins 0, 9 and 30 of 31, for a 32 x 32 image
    # (torch.linspace in float32; TranslateX 150 / 331 of the width).
    at = {m: randaugment.magnitudes(m, 32, 32) for m in (0, 9, 30)}
    assert at[9]["ShearX"] == pytest.approx(0.09) and at[30]["ShearX"] == pytest.approx(0.3)
    assert at[9]["Rotate"] == 9.0 and at[30]["Rotate"] == 30.0 and at[0]["Rotate"] == 0.0
    assert int(at[9]["TranslateX"]) == 4 and at[30]["TranslateX"] == pytest.approx(150 / 331 * 32)
    assert at[9]["Brightness"] == pytest.approx(0.27) and at[30]["Brightness"] == pytest.approx(0.9)
    # torch's linspace fuses each entry's multiply-add: torch.linspace(0, 0.9, 31)[20] is 0.59999996 in
    # float32, not the 0.6000000238 of rounding the product first (read off torch 2.14).
    assert randaugment.magnitudes(20, 32, 32)["Brightness"] == float(np.float32(0.59999996))
    assert [randaugment.magnitudes(m, 32, 32)["Posterize"] for m in range(31)] == [8] * 4 + [7] * 8 + [6] * 7 + \
        [5] * 8 + [4] * 4
    assert at[9]["Solarize"] == 178.5 and at[0]["Solarize"] == 255.0 and at[30]["Solarize"] == 0.0


def test_randaugment_draws_its_ops_for_each_image():
    # 64 copies of one image: every image its own ops, so the outputs differ (Keras's RandAugment
    # draws one set of ops for the whole batch: 64 equal outputs).
    images = np.repeat(_images(1), 64, axis=0)
    out = randaugment.randaugment(tf.constant(images), 1, 9, tf.constant([3, 4], tf.int64)).numpy()
    assert len({o.tobytes() for o in out}) >= 10
    # With 14 ops drawn uniformly, about 1 image in 14 is left as it was by Identity.
    unchanged = np.mean([np.array_equal(o, images[0]) for o in out])
    assert unchanged < 0.3


# ----------------------------------------------------------------------------------------------
# The chain in real runs: resumable to the bit, over two replicas, in mixed precision

# Every data axis that draws, the EMA and smoothing on, under deterministic kernels (a process of
# its own): a run stopped after its first epoch and resumed ends with the uninterrupted run's bits.
_RESUMED = """
import hashlib, json, sys
import keras
from ablation.run import RunConfig, train
from ablation.run.callbacks import RunRecorder
recipe = {"epochs": 2, "batch_size": 32, "cutmix_alpha": 1.0, "cutout": 8, "randaugment_ops": 2, "ema_decay": 0.9,
          "label_smoothing": 0.1}
config = RunConfig(model="wrn-10-1", dataset=sys.argv[1], recipe_overrides=recipe, max_steps_per_epoch=3,
                   deterministic=True, model_overrides={"input_shape": (16, 16, 3)})
out = sys.argv[2]
train(config, out + "/straight", log=lambda *_: None)
begin = RunRecorder.on_epoch_begin
def stop_before_the_second(self, epoch, logs=None):
    if epoch == 1:
        raise KeyboardInterrupt
    begin(self, epoch, logs)
RunRecorder.on_epoch_begin = stop_before_the_second
try:
    train(config, out + "/resumed", log=lambda *_: None)
except KeyboardInterrupt:
    pass
RunRecorder.on_epoch_begin = begin
lines = []
train(config, out + "/resumed", log=lines.append)
digest = lambda name: hashlib.sha256(b"".join(w.tobytes() for w in keras.saving.load_model(
    f"{out}/{name}/final.keras").get_weights())).hexdigest()
print(json.dumps({"resumed_line": any("resuming after epoch 1" in line for line in lines),
                  "weights": [digest("straight"), digest("resumed")],
                  "history": [open(f"{out}/{name}/history.csv").read().splitlines()[1:] for name in ("straight", "resumed")]}))
"""


@pytest.mark.slow
def test_a_run_with_the_data_axes_and_an_ema_resumes_to_the_bits_of_the_uninterrupted_run(easy, tmp_path):
    done = subprocess.run([sys.executable, "-c", _RESUMED, easy, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["resumed_line"]
    assert result["weights"][0] == result["weights"][1]
    strip = lambda rows: [",".join(row.split(",")[:6]) for row in rows]  # the losses, accuracies and lr, not the times
    assert strip(result["history"][0]) == strip(result["history"][1])


@pytest.mark.slow
@pytest.mark.parametrize("strategy,precision,jit_compile,mix", [
    ("mirrored", "float32", "auto", "mixup_alpha"), ("one_device", "mixed_bfloat16", "auto", "cutmix_alpha"),
    ("one_device", "float32", "on", "mixup_alpha"),  # XLA: the step a GPU compiles (no gamma kernel, static shapes)
    ("one_device", "float32", "on", "cutmix_alpha")])
def test_the_data_axes_and_the_ema_train_over_two_replicas_in_mixed_precision_and_under_xla(strategy, precision,
                                                                                           jit_compile, mix, easy,
                                                                                           tmp_path):
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest.py sets up two logical CPUs"
    recipe = {"epochs": 2, "batch_size": 32, mix: 1.0, "cutout": 8, "randaugment_ops": 1, "ema_decay": 0.9,
              "label_smoothing": 0.1}
    config = RunConfig(model="wrn-10-1", dataset=easy, recipe_overrides=recipe, max_steps_per_epoch=3,
                       strategy=strategy, precision=precision, jit_compile=jit_compile)
    metrics = train(config, tmp_path / "run", log=quiet)
    assert metrics.epochs == 2 and np.isfinite(metrics.test_loss)
    environment = json.loads((tmp_path / "run" / "config.json").read_text())["environment"]
    assert environment["replicas"] == (2 if strategy == "mirrored" else 1) and environment["dtype_policy"] == precision
    assert environment["jit_compile"] == ("on" if jit_compile == "on" else "off")
