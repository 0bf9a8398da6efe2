"""RandAugment (Cubuk et al. 2020, arXiv 1909.13719) as `torchvision.transforms.RandAugment` computes it,
on whole batches on the device, each image its own draws.

For each of N slots, every image draws one of the paper's 14 ops uniformly (with replacement over
the slots) and, for the signed ones, a sign; every op is applied at bin M of 31 magnitude bins
(0..30) of torchvision's table. Images are uint8-valued and every op returns uint8 values, with
torchvision's arithmetic on uint8 tensors (torchvision 0.29.1, `transforms/autoaugment.py` and
`transforms/_functional_tensor.py`, defaults `interpolation=NEAREST`, `fill=None`):

    Identity, AutoContrast, Equalize     no magnitude
    ShearX/Y       shear t = tan(atan(m)), m of 0..0.3, about the image's top-left corner
    TranslateX/Y   int(m) pixels, m of 0..150/331 of the width (height)
    Rotate         m of 0..30 degrees about the centre, counter-clockwise for positive m
    Brightness, Color, Contrast, Sharpness   blend with black, grey, the grey mean, a 3x3 blur, factor 1 + m, m of 0..0.9
    Posterize      8 - round(M / 7.5) bits;  Solarize: invert pixels >= 255 - 8.5 M

Geometric ops sample the nearest pixel (half to even, as grid_sample) and fill with 0; blends are
float32, clamped to [0, 255] and truncated to integers, as torchvision's `_blend`.

Where ours departs: torchvision draws from torch's generator per image in a data-loader process,
ours from TensorFlow's stateless generator per batch on the device (the same distributions);
float32 sums may be fused or ordered otherwise on some devices (a level of one pixel value, rarely).
`keras.layers.RandAugment` (Keras 3.15) is another method: 11 ops, drawn once for the whole batch.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
                    "Sharpness"})
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
MAGNITUDE_BINS = 31  # torchvision's num_magnitude_bins: magnitudes 0..30, the paper's scale
# torchvision's grayscale weights (rgb_to_grayscale), as float32 multiplies.
GREY = (0.2989, 0.587, 0.114)


def torch_linspace(start: float, end: float, index: int, steps: int = MAGNITUDE_BINS) -> float:
    """Entry `index` of torch.linspace(start, end, steps) in float32, as torch's CPU kernel computes
    it: from the start for the first half, from the end for the second, each a fused multiply-add
    of float32 values rounded once (checked against torch 2.14 for torchvision's tables)."""
    f = np.float32
    first, last = f(start), f(end)
    step = f(f(last - first) / f(steps - 1))
    if index < steps // 2:
        return float(f(float(first) + float(step) * index))
    return float(f(float(last) - float(step) * (steps - 1 - index)))


def magnitudes(magnitude: int, height: int, width: int) -> dict[str, float]:
    """Each op's magnitude at bin `magnitude` of torchvision's table for an image of this size."""
    m = magnitude
    return {"ShearX": torch_linspace(0.0, 0.3, m), "ShearY": torch_linspace(0.0, 0.3, m),
            "TranslateX": torch_linspace(0.0, 150.0 / 331.0 * width, m),
            "TranslateY": torch_linspace(0.0, 150.0 / 331.0 * height, m),
            "Rotate": torch_linspace(0.0, 30.0, m),
            **{name: torch_linspace(0.0, 0.9, m) for name in ("Brightness", "Color", "Contrast", "Sharpness")},
            "Posterize": int(8 - np.round(np.float32(m) / np.float32((MAGNITUDE_BINS - 1) / 4))),
            "Solarize": torch_linspace(255.0, 0.0, m)}


def randaugment(images, ops: int, magnitude: int, seed, *, partitioned=True):
    """`ops` RandAugment ops per image of a batch [B, H, W, C] of pixel values 0..255, at `magnitude`
    of 30, drawn from the stateless `seed`; returns float32 pixel values 0..255. `partitioned`: see
    `apply_ops` (False under XLA)."""
    x = tf.cast(images, tf.float32)
    _, height, width, _ = x.shape
    table = magnitudes(magnitude, height, width)
    count = tf.shape(x)[0]
    for slot_seed in tf.unstack(tf.random.experimental.stateless_split(seed, ops)):
        op_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(slot_seed, 2))
        chosen = tf.random.stateless_uniform([count], op_seed, maxval=len(OPS), dtype=tf.int32)
        # A sign for every image; only the signed ops read it (torchvision draws it for those alone).
        negative = tf.random.stateless_uniform([count], sign_seed, maxval=2, dtype=tf.int32) == 1
        x = apply_ops(x, chosen, negative, table, partitioned=partitioned)
    return x


def apply_ops(x, chosen, negative, table, *, partitioned=True):
    """Op `OPS[chosen[i]]` on image i, its magnitude negated where `negative[i]` (signed ops); the
    geometric ops are one sampling, each image with its own matrix. `partitioned`: each op computes
    its own images alone (a seventh of the work on a CPU); else every op the whole batch, selected per
    image, in static shapes, as XLA (a GPU's compiled training step) needs."""
    sign = tf.cast(tf.where(negative, -1.0, 1.0), tf.float64)
    # The geometric ops share one sampling (a matrix per image): one group; Identity needs no work.
    groups = ["Identity", GEOMETRIC, *_PHOTOMETRIC]
    group_of = tf.constant([next(g for g, group in enumerate(groups) if name == group or name in group) for name in OPS])

    def group(index, images, ops, signs):
        if index == 0:
            return images
        if index == 1:
            return affine(images, _inverse_matrices(ops, signs, table, x.shape))
        name = groups[index]
        return _PHOTOMETRIC[name](images, 1.0 + signs * table.get(name, 0.0), table)  # factor in double, as Python

    partition = tf.gather(group_of, chosen)
    if not partitioned:
        out = x
        for index in range(1, len(groups)):
            out = tf.where((partition == index)[:, None, None, None], group(index, x, chosen, sign), out)
        return out
    parts = [tf.dynamic_partition(values, partition, len(groups)) for values in (tf.range(tf.shape(x)[0]), x, chosen,
                                                                                 sign)]
    out = [group(index, *(part[index] for part in parts[1:])) for index in range(len(groups))]
    return tf.reshape(tf.dynamic_stitch(parts[0], out), tf.shape(x))


# ----------------------------------------------------------------------------------------------
# Geometric ops: torchvision's inverse affine matrix, grid and nearest sampling


def _inverse_matrices(chosen, sign, table, shape):
    """Per image, torchvision's `_get_inverse_affine_matrix` of its op ([m0..m5]: output -> input in
    coordinates centred on the image, pixel edges at integers +- size / 2), identity for the others."""
    _, h, w, _ = shape
    one, zero = tf.ones_like(sign), tf.zeros_like(sign)
    t_x = tf.tan(tf.atan(sign * table["ShearX"]))
    t_y = tf.tan(tf.atan(sign * table["ShearY"]))
    tx = tf.cast(tf.cast(sign * table["TranslateX"], tf.int32), tf.float64)  # int(): toward zero
    ty = tf.cast(tf.cast(sign * table["TranslateY"], tf.int32), tf.float64)
    theta = sign * table["Rotate"] * math.pi / 180.0
    cos, sin = tf.cos(theta), tf.sin(theta)
    matrices = {
        "ShearX": [one, t_x, t_x * h / 2, zero, one, zero],  # about the top-left corner (center=[0, 0])
        "ShearY": [one, zero, zero, t_y, one, t_y * w / 2],
        "TranslateX": [one, zero, -tx, zero, one, zero],
        "TranslateY": [one, zero, zero, zero, one, -ty],
        "Rotate": [cos, -sin, zero, sin, cos, zero],  # F.rotate negates the angle: positive is counter-clockwise
    }
    rows = [one, zero, zero, zero, one, zero]
    for name, matrix in matrices.items():
        rows = [tf.where(chosen == OPS.index(name), entry, row) for entry, row in zip(matrix, rows, strict=True)]
    return tf.cast(tf.stack(rows, axis=1), tf.float32)


def affine(x, matrices):
    """torchvision's `affine` on tensors: the output pixel (u, v) samples the input at torch's grid
    point (base grid of pixel centres, theta / (size / 2), grid_sample's unnormalisation, all in
    float32), nearest pixel (half to even), 0 outside the image."""
    _, h, w, c = x.shape
    m = matrices[:, :, None, None]
    xb = tf.range(w, dtype=tf.float32) + 0.5 - w / 2  # exact, as torch's linspace of step 1
    yb = tf.range(h, dtype=tf.float32)[:, None] + 0.5 - h / 2
    half_w, half_h = np.float32(w / 2), np.float32(h / 2)
    gx = (xb * (m[:, 0] / half_w) + yb * (m[:, 1] / half_w)) + m[:, 2] / half_w
    gy = (xb * (m[:, 3] / half_h) + yb * (m[:, 4] / half_h)) + m[:, 5] / half_h
    ix = tf.cast(tf.round((gx + 1.0) * half_w - 0.5), tf.int32)  # tf.round: half to even
    iy = tf.cast(tf.round((gy + 1.0) * half_h - 0.5), tf.int32)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    flat = tf.reshape(x, [-1, h * w, c])
    sampled = tf.gather(flat, tf.where(inside, iy * w + ix, 0), batch_dims=1)
    return tf.where(inside[..., None], sampled, 0.0)


# ----------------------------------------------------------------------------------------------
# Photometric ops: torchvision's uint8 arithmetic in float32


def _truncate(values):
    """Clamp to [0, 255] and truncate, as `.clamp(0, 255).to(torch.uint8)`."""
    return tf.floor(tf.clip_by_value(values, 0.0, 255.0))


def _blend(image, other, factor):
    """torchvision's `_blend`: ratio * image + (1 - ratio) * other, each factor rounded to float32 once."""
    ratio = tf.cast(factor, tf.float32)[:, None, None, None]
    rest = tf.cast(1.0 - factor, tf.float32)[:, None, None, None]
    return _truncate(ratio * image + rest * other)


def _grey(x):
    """`rgb_to_grayscale`: 0.2989 r + 0.587 g + 0.114 b, truncated to uint8 values; one channel."""
    if x.shape[-1] == 1:
        return x
    r, g, b = tf.unstack(x, axis=-1)
    return tf.floor((GREY[0] * r + GREY[1] * g) + GREY[2] * b)[..., None]


def _brightness(x, factor, table):
    return _blend(x, tf.zeros_like(x), factor)


def _color(x, factor, table):
    return x if x.shape[-1] == 1 else _blend(x, _grey(x), factor)


def _contrast(x, factor, table):
    _, h, w, _ = x.shape
    mean = tf.reduce_sum(_grey(x), axis=[1, 2, 3], keepdims=True) / float(h * w)
    return _blend(x, mean, factor)


def _sharpness(x, factor, table):
    """Blend with the image blurred by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (rounded) inside a border
    kept from the image; the blend covers the border too, as torchvision's."""
    _, h, w, _ = x.shape
    if h <= 2 or w <= 2:
        return x
    # The kernel's sum over each interior pixel, exact in float32: its 3 x 3 window plus 4 x itself.
    window = sum(x[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    window += 4.0 * x[:, 1:-1, 1:-1]
    blurred = tf.cast((tf.cast(window, tf.int32) + 6) // 13, tf.float32)  # round(S / 13): never a tie
    interior = tf.pad(tf.ones((h - 2, w - 2, 1), tf.bool), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior, tf.pad(blurred, [[0, 0], [1, 1], [1, 1], [0, 0]]), x)
    return _blend(x, degenerate, factor)


def _posterize(x, factor, table):
    step = 2.0 ** (8 - table["Posterize"])
    return tf.floor(x / step) * step  # x & mask: the top `bits` bits (exact: a power of two)


def _solarize(x, factor, table):
    return tf.where(x >= table["Solarize"], 255.0 - x, x)


def _autocontrast(x, factor, table):
    low = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    spread = tf.reduce_max(x, axis=[1, 2], keepdims=True) - low
    # 255 / (hi - lo) as torch computes an int over a tensor: its reciprocal, then times 255 (two
    # roundings). A true division: tf.math.reciprocal is not correctly rounded on CPUs (1/255 * 255 < 1).
    scale = (1.0 / spread) * 255.0
    flat = spread == 0
    return _truncate((x - tf.where(flat, 0.0, low)) * tf.where(flat, 1.0, scale))


def _equalize(x, factor, table):
    """torchvision's `_scale_channel` per image and channel: step = (pixels - count of the top value)
    // 255; lut[k] = (cumsum[k - 1] + step // 2) // step (lut[0] = 0), clamped; unchanged if step is 0."""
    _, h, w, c = x.shape
    pixels = tf.cast(tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, h * w]), tf.int32)
    # The raw op with a constant size: XLA compiles a bincount only when its size is known.
    hist = tf.raw_ops.DenseBincount(input=pixels, size=tf.constant(256), weights=tf.constant([], tf.int32))
    top = tf.gather(hist, tf.reduce_max(pixels, axis=1), batch_dims=1)
    step = (h * w - top) // 255
    safe = tf.maximum(step, 1)[:, None]
    lut = (tf.cumsum(hist, axis=1) + step[:, None] // 2) // safe
    lut = tf.minimum(tf.concat([tf.zeros_like(lut[:, :1]), lut[:, :-1]], axis=1), 255)
    equalised = tf.where(step[:, None] == 0, pixels, tf.gather(lut, pixels, batch_dims=1))
    return tf.transpose(tf.reshape(tf.cast(equalised, tf.float32), [-1, c, h, w]), [0, 2, 3, 1])


_PHOTOMETRIC = {"Brightness": _brightness, "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
                "Posterize": _posterize, "Solarize": _solarize, "AutoContrast": _autocontrast, "Equalize": _equalize}
