"""Augmentation on whole batches: the papers' pad-crop-flip, and the data axes, each as its reference code does it.

    pad_crop_flip   4-pixel reflect padding, a random crop and a horizontal flip, per image (He et al.;
                    Zagoruyko & Komodakis): in the input pipeline, or on the device with a data axis on
    randaugment     N of RandAugment's 14 ops per image at magnitude M of 30 (Cubuk et al. 2020), as
                    torchvision.transforms.RandAugment (ablation.run.randaugment)
    cutout          one L x L square per image, centre anywhere, clipped at the borders, zeros in the
                    normalised image, every image (DeVries & Taylor 2017; uoguelph-mlrg/Cutout)
    mixup           one lambda ~ Beta(a, a) per batch and a permuted partner (Zhang et al. 2018;
                    facebookresearch/mixup-cifar10 train.py)
    cutmix          per batch with probability p: lambda ~ Beta(a, a), the box of `rand_bbox`, lambda
                    reset to the pixels kept (Yun et al. 2019; clovaai/CutMix-PyTorch train.py)

With a data axis on, `BatchAugmentation` runs the whole chain in the reference codes' order
(RandAugment, crop and flip, normalisation, Cutout, then mixup or CutMix on the batch) inside the
training step, on the device that trains: a GPU does it, and the CPU's input pipeline only reads,
shuffles and batches (the data axes' reference codes run per image in data-loader processes, or
mixup and CutMix on the GPU). Mixing returns soft targets lam y_a + (1 - lam) y_b, whose
cross-entropy is the references' lam CE(y_a) + (1 - lam) CE(y_b).

Keras's own layers are not these methods (field guide, section 7): `keras.layers.MixUp` draws a
lambda per sample with alpha 0.2; `keras.layers.CutMix` draws per sample, keeps the box inside the
image, always applies and mixes labels by the box's continuous area; `keras.layers.RandAugment`
has 11 ops drawn once for the whole batch; `keras.layers.RandomErasing` is not Cutout (random
aspect, noise fill, about half the images).

Randomness: stateless draws from each batch's seeds, the input pipeline's (the run's data seed,
the epoch, the batch's position), so a resumed run draws what the uninterrupted one would and a
data axis leaves the crops and flips of the run as they were; under tf.distribute each replica
folds in its id for the axes' draws and mixes within its share of the batch (as timm does per
process).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ablation.run.randaugment import randaugment

# 4 pixels of the 32 of CIFAR (He et al.; Zagoruyko & Komodakis); other sizes pad in proportion.
PAD_FRACTION = 4 / 32
# Epoch e of seed s shuffles with seed e + s * SEEDS_APART: a prime above any epoch count, so that no
# epoch of one run seed shuffles as an epoch of another (seed 1's epoch 0 is not seed 0's epoch 1).
SEEDS_APART = 100_003


def epoch_seed(seed, epoch):
    """The seed of epoch `epoch` of a run whose data seed is `seed`: its shuffle's."""
    return tf.cast(epoch, tf.int64) + seed * SEEDS_APART


def batch_seeds(seed, epoch, index):
    """The stateless seeds of batch `index` of epoch `epoch`: the epoch's seed and the batch's
    position. The input pipeline and the device draw a batch's augmentation from them alike."""
    return tf.stack([epoch_seed(seed, epoch), tf.cast(index, tf.int64)])


def pad_crop_flip(images, seeds, *, first=0, total=None):
    """Each image of a batch reflect-padded by 1/8 of the side (4 px at 32), cropped back at a
    random offset (uniform over the 2 x pad + 1 positions of each axis) and flipped left-right with
    probability 1/2, drawn from the stateless `seeds` (the batch's epoch and position). Images
    `first`.. of a batch of `total` (a replica's share) get the draws the whole batch's would.

    A whole batch at once, as two gathers: per image, tf.data's per-element overhead, not the
    arithmetic, capped the pipeline at about 17,000 images/s however many cores it had."""
    _, h, w, _ = images.shape
    pad = max(1, round(h * PAD_FRACTION))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    count = tf.shape(images)[0]
    offset_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seeds, 2))
    drawn = count if total is None else total
    offsets = tf.random.stateless_uniform((drawn, 2), offset_seed, maxval=2 * pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform((drawn, 1), flip_seed, maxval=2, dtype=tf.int32) == 1
    if total is not None:
        offsets, flips = offsets[first:first + count], flips[first:first + count]
    rows = offsets[:, :1] + tf.range(h)[tf.newaxis]
    columns = offsets[:, 1:] + tf.where(flips, tf.range(w - 1, -1, -1)[tf.newaxis], tf.range(w)[tf.newaxis])
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), columns, axis=2, batch_dims=1)


def normalise(image, mean, std):
    return (tf.cast(image, tf.float32) / 255.0 - mean) / std


# ----------------------------------------------------------------------------------------------
# Each method with its draws given (what the tests compare with the reference codes), and its draws


def mixup(images, targets, lam, partner):
    """mixup-cifar10's `mixup_data` for a drawn lam and permutation: lam x + (1 - lam) x[partner];
    the targets (one-hot) alike."""
    lam = tf.cast(lam, images.dtype)
    mixed = lam * images + (1.0 - lam) * tf.gather(images, partner)
    return mixed, lam * targets + (1.0 - lam) * tf.gather(targets, partner)


def rand_bbox(rows, columns, lam, cx, cy):
    """CutMix-PyTorch's `rand_bbox` as written, for a drawn lam and centre: side int(rows sqrt(1 -
    lam)) and int(columns sqrt(1 - lam)), corners cx -+ side // 2 clipped to the image. (The
    reference's W and H are an NCHW tensor's sizes 2 and 3: the rows and the columns.) In float64,
    as NumPy computes it, so that int() truncates the same products."""
    cut = tf.sqrt(1.0 - tf.cast(lam, tf.float64))
    cut_rows = tf.cast(tf.cast(rows, tf.float64) * cut, tf.int32)
    cut_columns = tf.cast(tf.cast(columns, tf.float64) * cut, tf.int32)
    x1, x2 = (tf.clip_by_value(cx + sign * (cut_rows // 2), 0, rows) for sign in (-1, 1))
    y1, y2 = (tf.clip_by_value(cy + sign * (cut_columns // 2), 0, columns) for sign in (-1, 1))
    return x1, y1, x2, y2


def cutmix(images, targets, box, partner):
    """CutMix-PyTorch's step for a drawn box and permutation: the box of every image replaced by its
    partner's, lam reset to the fraction of pixels kept, the targets mixed by it."""
    x1, y1, x2, y2 = box
    _, rows, columns, _ = images.shape
    inside = ((tf.range(rows)[:, None] >= x1) & (tf.range(rows)[:, None] < x2)
              & (tf.range(columns)[None, :] >= y1) & (tf.range(columns)[None, :] < y2))
    mixed = tf.where(inside[None, :, :, None], tf.gather(images, partner), images)
    lam = 1.0 - tf.cast((x2 - x1) * (y2 - y1), tf.float32) / (rows * columns)
    return mixed, lam * targets + (1.0 - lam) * tf.gather(targets, partner)


def cutout(images, length, ys, xs):
    """uoguelph-mlrg/Cutout's `Cutout` for drawn centres (y, x) per image: the square rows
    [y - L//2, y + L//2) and columns likewise, clipped at the borders, set to 0 on every channel."""
    _, h, w, _ = images.shape
    y1, y2 = (tf.clip_by_value(ys + sign * (length // 2), 0, h)[:, None, None] for sign in (-1, 1))
    x1, x2 = (tf.clip_by_value(xs + sign * (length // 2), 0, w)[:, None, None] for sign in (-1, 1))
    rows, columns = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
    inside = (rows >= y1) & (rows < y2) & (columns >= x1) & (columns < x2)
    return tf.where(inside[..., None], tf.zeros((), images.dtype), images)


def draw_beta(seed, alpha):
    """lam ~ Beta(alpha, alpha), as NumPy's beta: G1 / (G1 + G2) for two Gamma(alpha) draws, taken from
    their logarithms (a small alpha's draws underflow to 0, and 0 / 0)."""
    log_g1, log_g2 = tf.unstack(log_gamma_draws(seed, alpha, 2))
    return tf.sigmoid(log_g1 - log_g2)


# Candidates each Gamma draw makes at once: Marsaglia-Tsang accepts one with probability >= 0.95,
# so all 32 fail with probability below 1e-40.
GAMMA_CANDIDATES = 32


def log_gamma_draws(seed, alpha: float, count: int):
    """The logarithms of `count` draws of Gamma(alpha, 1), by Marsaglia & Tsang's method (ACM TOMS
    2000) from uniform and normal draws alone, alpha < 1 boosted as G(alpha + 1) U^(1 / alpha). Not
    TensorFlow's gamma sampler: it has no XLA kernel, and a GPU's training step is compiled by XLA;
    every candidate is drawn at once and the first accepted kept, a fixed shape as XLA needs."""
    boost = alpha < 1
    d = (alpha + 1.0 if boost else alpha) - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    normal_seed, uniform_seed, boost_seed = _split(seed, 3)
    x = tf.random.stateless_normal([count, GAMMA_CANDIDATES], normal_seed, dtype=tf.float64)
    u = tf.random.stateless_uniform([count, GAMMA_CANDIDATES], uniform_seed, dtype=tf.float64)
    v = (1.0 + c * x) ** 3
    safe_v = tf.where(v > 0, v, 1.0)
    accepted = (v > 0) & (tf.math.log(u) < 0.5 * x * x + d - d * safe_v + d * tf.math.log(safe_v))
    first = tf.argmax(tf.cast(accepted, tf.int32), axis=1)
    logs = tf.math.log(d * tf.gather(safe_v, first, batch_dims=1))
    if boost:
        logs += tf.math.log(tf.random.stateless_uniform([count], boost_seed, minval=1e-300, dtype=tf.float64)) / alpha
    return logs


def draw_permutation(seed, count):
    """A uniform random permutation of 0..count - 1 (torch.randperm): the order of uniform draws."""
    return tf.argsort(tf.random.stateless_uniform([count], seed))


def draw_positions(seed, count, limit):
    """`count` integers uniform over 0..limit - 1 (np.random.randint(limit), one per image)."""
    return tf.random.stateless_uniform([count], seed, maxval=limit, dtype=tf.int32)


# ----------------------------------------------------------------------------------------------
# The chain of a run


@dataclasses.dataclass(frozen=True)
class BatchAugmentation:
    """A run's augmentation on the training device: (uint8 images, integer labels, step) ->
    (normalised images, targets), the targets one-hot and mixed when mixup or CutMix is on.

    Every draw is a function of the batch's seeds as the input pipeline has them (the run's data
    seed, the epoch and the batch's position, from the step): the crops and flips are the very ones
    the pipeline would have drawn, so a data axis adds to a run without changing the rest of its
    augmentation, and runs of the same seed stay paired; the axes' own draws are folded from them,
    and from the replica's id under tf.distribute."""

    recipe: object  # the run's Recipe: its data axes' fields (ablation.run.axes)
    num_classes: int
    mean: tuple
    std: tuple
    seed: int  # the run's data seed: the pipeline's (Pipeline.seed, or a tuner execution's)
    steps_per_epoch: int
    augment: bool = True  # the papers' pad-crop-flip (RunConfig.augment)

    @property
    def mixes(self) -> bool:
        return bool(self.recipe.mixup_alpha or self.recipe.cutmix_alpha)

    def __call__(self, images, labels, step, *, xla=False):
        """The chain on the batch of training step `step` (from 0 at the run's start); `xla`: the step
        is compiled by XLA (static shapes)."""
        recipe = self.recipe
        step = tf.cast(step, tf.int64)
        seeds = batch_seeds(self.seed, step // self.steps_per_epoch, step % self.steps_per_epoch)
        replica, replicas = _replica()
        own = tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(seeds, 1), replica)
        randaugment_seed, cutout_seed, mix_seed = _split(own, 3)
        count = tf.shape(images)[0]
        _, h, w, _ = images.shape
        if recipe.randaugment_ops:  # before the crop, as the reference scripts put it first
            images = randaugment(images, recipe.randaugment_ops, recipe.randaugment_magnitude, randaugment_seed,
                                 partitioned=not xla)
        if self.augment:
            images = pad_crop_flip(images, seeds, first=replica * count, total=replicas * count)
        images = normalise(images, self.mean, self.std)
        if recipe.cutout:
            row_seed, column_seed = _split(cutout_seed, 2)
            images = cutout(images, recipe.cutout, draw_positions(row_seed, count, h), draw_positions(column_seed, count, w))
        if not self.mixes:
            return images, labels
        targets = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        lam_seed, partner_seed, row_seed, column_seed, coin_seed = _split(mix_seed, 5)
        partner = draw_permutation(partner_seed, count)
        if recipe.mixup_alpha:
            return mixup(images, targets, draw_beta(lam_seed, recipe.mixup_alpha), partner)
        cx, cy = draw_positions(row_seed, 1, h)[0], draw_positions(column_seed, 1, w)[0]
        x1, y1, x2, y2 = rand_bbox(h, w, draw_beta(lam_seed, recipe.cutmix_alpha), cx, cy)
        # A batch left whole (probability 1 - cutmix_prob) is an empty box: lam 1, the targets its own.
        applied = tf.random.stateless_uniform([], coin_seed) < recipe.cutmix_prob
        return cutmix(images, targets, (x1, y1, tf.where(applied, x2, x1), y2), partner)


def _replica():
    """(this replica's id, the replicas) under tf.distribute; (0, 1) outside it."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 0, 1
    return tf.cast(context.replica_id_in_sync_group, tf.int32), context.num_replicas_in_sync


def _split(seed, count: int) -> list:
    """`count` independent stateless seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))
