"""Data pipelines: tensorflow-datasets or a NumPy archive, a seeded validation split, per-channel
normalisation and the papers' augmentation, as `tf.data`.

A dataset is named `cifar10` (any tfds image-classification name) or `npz:PATH`, an archive with
the keys of `keras.datasets` (`x_train`, `y_train`, `x_test`, `y_test`, optional `label_names`).

Determinism: the validation split is a seeded permutation; every epoch's order and every image's
crop and flip come from stateless random ops seeded by (seed, epoch, batch), so a run resumed
at epoch e sees exactly the batches the uninterrupted run would have seen.

With a data axis on (mixup, CutMix, Cutout, RandAugment), the training batches leave the pipeline
as they were read (uint8, shuffled, batched): the whole augmentation runs on the training device,
in the training step (ablation.run.augment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import warnings
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import downloader as _tfds_downloader

from ablation.core.errors import ConfigError
from ablation.run import npz
from ablation.run.augment import batch_seeds, epoch_seed, normalise, pad_crop_flip

AUTOTUNE = tf.data.AUTOTUNE
# Keep in memory what fits easily; a larger split streams from tfds's own files every epoch.
CACHE_LIMIT_BYTES = 4 * 2**30
SHUFFLE_BUFFER_LIMIT = 50_000
# A tensorflow-datasets set with only a train split: the last this many percent is its test split.
HELD_OUT_PERCENT = 10
# Sets whose "test" split has no labels, and the split every paper reports instead: ImageNet's test labels
# are not public (tfds's imagenet2012 5.1.0 added the unlabelled test images as "test").
TEST_SPLITS = {"imagenet2012": "validation"}


def held_out_splits(num_train: int) -> tuple[int, int]:
    """(training, test) images of a set with only a train split, as tfds's percent slicing cuts it."""
    train = round((100 - HELD_OUT_PERCENT) / 100 * num_train)
    return train, num_train - train


# The (training, test) images of tensorflow-datasets sets, known before they are downloaded: a dry
# run's cost estimate, and the bench's real epoch for its synthetic CIFAR-shaped input (CIFAR-10's).
# cats_vs_dogs: its 23,262 train images cut into train and test as held_out_splits does; imagenet2012:
# its validation split is the test split (TEST_SPLITS).
SPLIT_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "svhn_cropped": (73_257, 26_032),
               "mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000),
               "cats_vs_dogs": held_out_splits(23_262), "imagenet2012": (1_281_167, 50_000)}


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset's official splits as (uint8 image, int64 label) elements, read when first used: a
    run checks its model's arguments (which need only the class names) before a dataset that must
    be downloaded and prepared is fetched."""

    name: str
    class_names: tuple[str, ...]
    test_split: str  # how the test split was obtained, recorded in config.json
    read: Callable[[], tuple[tf.data.Dataset, tf.data.Dataset]]  # (train, test)

    @functools.cached_property
    def splits(self) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        return self.read()

    @property
    def train(self) -> tf.data.Dataset:
        return self.splits[0]

    @property
    def test(self) -> tf.data.Dataset:
        return self.splits[1]


@dataclasses.dataclass
class Pipeline:
    """What a run trains, selects and tests on."""

    source: Source
    image_shape: tuple[int, int, int]
    batch_size: int
    seed: int
    augment: bool
    train_images: tf.data.Dataset  # uint8, cached, after the validation split is carved out
    validation: tf.data.Dataset  # normalised batches
    test: tf.data.Dataset
    num_train: int
    num_validation: int
    num_test: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_steps_per_epoch: int | None = None  # smoke runs cut every epoch short
    augment_on_device: bool = False  # a data axis is on: training batches leave as read, the device augments them

    @property
    def steps_per_epoch(self) -> int:
        full = self.num_train // self.batch_size  # the last partial batch is dropped, as the reference
        return min(full, self.max_steps_per_epoch or full)

    @property
    def class_names(self):
        return self.source.class_names

    def train_batches(self, initial_epoch: int, epochs: int, *, seed: int | None = None) -> tf.data.Dataset:
        """Batches of epochs `initial_epoch`, ..., each epoch shuffled and augmented by its own seeds.

        `seed` varies the order and augmentation alone, keeping the validation split (the
        pipeline's seed): the executions of a tuning trial differ only in what they should.
        """
        images, n = self.train_images, self.num_train
        seed = self.seed if seed is None else seed
        buffer = min(n, SHUFFLE_BUFFER_LIMIT)

        def one_epoch(epoch):
            shuffled = images.shuffle(buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)
            batches = shuffled.take(self.steps_per_epoch * self.batch_size).batch(self.batch_size,
                                                                                  drop_remainder=True)
            return batches.enumerate().map(lambda i, batch: (batch_seeds(seed, epoch, i), batch))

        return (tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch)
                .apply(tf.data.experimental.assert_cardinality((epochs - initial_epoch) * self.steps_per_epoch))
                .map(self._train_batch, num_parallel_calls=AUTOTUNE)
                .prefetch(AUTOTUNE))

    def _train_batch(self, seeds, batch):
        images, labels = batch
        if self.augment_on_device:
            return images, labels
        if self.augment:
            images = pad_crop_flip(images, seeds)
        return normalise(images, self.mean, self.std), labels


# --------------------------------------------------------------------------------------------
# Sources


def open_source(dataset: str, *, data_dir=None) -> Source:
    """`cifar10` (any tfds name) or `npz:PATH`, validated; raises ConfigError naming what is wrong."""
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"dataset={dataset!r} is not valid; expected a tensorflow-datasets name or npz:PATH.")
    if dataset.startswith("npz:"):
        return _npz_source(dataset)
    return _tfds_source(dataset, data_dir)


def _npz_source(dataset):
    images, labels, class_names = npz.read_npz(dataset)
    train, test = (tf.data.Dataset.from_tensor_slices((images[s], labels[s])) for s in ("train", "test"))
    return Source(dataset, class_names, "test", read=lambda: (train, test))


@contextlib.contextmanager
def _few_download_retries(downloading: bool):
    """tensorflow-datasets retries a failed download 10 times with exponential back-off: offline,
    over three minutes before the first error. Two retries (about a second) still ride out a
    transient failure, and a machine without internet hears so at once. (Its module constant is
    the one setting it offers; it is read at each download.)"""
    if not downloading:
        yield
        return
    saved, _tfds_downloader.MAX_RETRIES = _tfds_downloader.MAX_RETRIES, 2
    try:
        yield
    finally:
        _tfds_downloader.MAX_RETRIES = saved


def tfds_splits(name: str, known_splits) -> tuple[str, str]:
    """(train split, test split) of a tensorflow-datasets set: its own test split, else the one its
    papers report (TEST_SPLITS), else (cats_vs_dogs: a train split only) the last HELD_OUT_PERCENT of train."""
    reported = TEST_SPLITS.get(name.split(":")[0].split("/")[0])
    if reported in known_splits:
        return "train", reported
    if "test" in known_splits:
        return "train", "test"
    kept = 100 - HELD_OUT_PERCENT
    return f"train[:{kept}%]", f"train[{kept}%:]"


def _tfds_source(name, data_dir):
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError and friends
        known = "cifar10, cifar100, svhn_cropped, cats_vs_dogs"
        raise ConfigError(f"dataset {name!r} is not a tensorflow-datasets name ({known}, ...) nor npz:PATH "
                          f"({type(error).__name__}).") from None
    info = builder.info
    label = info.features[info.supervised_keys[1]] if info.supervised_keys else None
    if label is None or not hasattr(label, "names"):
        raise ConfigError(f"dataset {name!r} is not an image-classification dataset (no supervised "
                          f"image and class label).")
    known_splits = set(info.splits.keys()) if info.splits else {"train", "test"}
    train_split, test_split = tfds_splits(name, known_splits)

    def read():
        prepared = builder.is_prepared()
        try:
            with _few_download_retries(not prepared):
                train, test = tfds.load(name, split=[train_split, test_split], as_supervised=True,
                                        shuffle_files=False, data_dir=data_dir)
        except Exception as error:
            where = data_dir or tfds.core.constants.DATA_DIR
            how = ("" if prepared else f"; it is not prepared in {where}: prepare it on a machine with internet "
                   f"(python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}').download_and_prepare()\") "
                   f"and pass its folder with --data-dir, or use npz:PATH")
            raise ConfigError(f"dataset {name!r} could not be loaded by tensorflow-datasets ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160]}){how}.") from None
        cast = lambda image, label: (image, tf.cast(label, tf.int64))
        return train.map(cast), test.map(cast)

    return Source(name, tuple(label.names), test_split, read=read)


# --------------------------------------------------------------------------------------------
# The pipeline of one run


def make_pipeline(source: Source, *, image_shape, batch_size, seed, validation_fraction=0.1,
                  augment=True, max_steps_per_epoch=None, eval_batch_size=None, augment_on_device=False) -> Pipeline:
    """Carve the validation split, compute normalisation from the training images, batch."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction={validation_fraction!r} is not valid; expected a number in [0, 1).")
    h, w, c = image_shape
    fit = lambda image, label: (_fit_size(image, h, w), label)
    train_all = source.train.map(fit, num_parallel_calls=AUTOTUNE)
    num_all = _size(train_all)
    if num_all == 0:
        raise ConfigError(f"dataset {source.name!r} has no training images.")
    num_validation = int(round(num_all * validation_fraction))
    is_validation = np.zeros(num_all, bool)
    is_validation[np.random.default_rng(seed).permutation(num_all)[:num_validation]] = True
    mask = tf.constant(is_validation)
    pick = lambda wanted: (lambda i, example: tf.equal(tf.gather(mask, i), wanted))
    drop_index = lambda i, example: example
    # Each split cached on its own: filtering a cached whole every epoch costs the input
    # pipeline a fifth of its speed; this way the source is read twice, once per split.
    train = _cache(train_all.enumerate().filter(pick(False)).map(drop_index), num_all - num_validation, image_shape)
    validation = _cache(train_all.enumerate().filter(pick(True)).map(drop_index), num_validation, image_shape)
    test = source.test.map(fit, num_parallel_calls=AUTOTUNE)
    num_test = _size(test)
    test = _cache(test, num_test, image_shape)

    mean, std, class_counts = training_statistics(train, len(source.class_names))
    num_train = num_all - num_validation
    if num_train < batch_size:
        raise ConfigError(f"batch_size={batch_size} is larger than the {num_train} training images of "
                          f"{source.name!r}; expected at most {num_train}.")
    if num_validation:
        _check_hold_out(source, validation, class_counts, validation_fraction)
    eval_batch_size = eval_batch_size or max(batch_size, 256)

    def evaluate(ds, count):
        # filter() hides the size from tf.data; Keras needs it to end an evaluation without a warning.
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
        return (ds.map(lambda image, label: (normalise(image, mean, std), label), num_parallel_calls=AUTOTUNE)
                .batch(eval_batch_size).prefetch(AUTOTUNE))

    return Pipeline(source=source, image_shape=tuple(image_shape), batch_size=batch_size, seed=seed,
                    augment=augment, train_images=train, validation=evaluate(validation, num_validation),
                    test=evaluate(test, num_test),
                    num_train=num_train, num_validation=num_validation, num_test=num_test, mean=mean, std=std,
                    max_steps_per_epoch=max_steps_per_epoch, augment_on_device=augment_on_device)


def _fit_size(image, h, w):
    # Images of another size (cats_vs_dogs, or a downsized smoke net) are resized to the net's input.
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return tf.cast(tf.clip_by_value(tf.image.resize(image, (h, w)), 0, 255), tf.uint8)


def _cache(ds, count, image_shape):
    return ds.cache() if count * int(np.prod(image_shape)) <= CACHE_LIMIT_BYTES else ds


def _size(ds) -> int:
    """tf.data's own count when it knows it (npz, tfds), else a pass over the data."""
    count = int(ds.cardinality())
    return count if count >= 0 else _count(ds)


def _count(ds) -> int:
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def training_statistics(images: tf.data.Dataset, num_classes: int):
    """Per-channel mean and standard deviation of pixel values in [0, 1] over a split, and its images
    per class: one pass over the images, which reading them once more to count labels would double."""
    def accumulate(totals, batch):
        x = tf.cast(batch[0], tf.float64) / 255.0
        x = tf.reshape(x, (-1, tf.shape(x)[-1]))
        labels = tf.math.bincount(tf.cast(batch[1], tf.int32), minlength=num_classes, maxlength=num_classes,
                                  dtype=tf.int64)
        return (totals[0] + tf.reduce_sum(x, 0), totals[1] + tf.reduce_sum(x * x, 0),
                totals[2] + tf.cast(tf.shape(x)[0], tf.float64), totals[3] + labels)

    channels = images.element_spec[0].shape[-1]
    zeros = tf.zeros(channels, tf.float64)
    start = (zeros, zeros, tf.constant(0.0, tf.float64), tf.zeros(num_classes, tf.int64))
    total, total_sq, n, counts = images.batch(1024).reduce(start, accumulate)
    mean = total / n
    std = tf.sqrt(tf.maximum(total_sq / n - mean * mean, 1e-12))
    return tuple(float(v) for v in mean.numpy()), tuple(float(v) for v in std.numpy()), counts.numpy()


def _label_counts(ds: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Images per class of a split, reading its labels alone."""
    count = lambda counts, labels: counts + tf.math.bincount(tf.cast(labels, tf.int32), minlength=num_classes,
                                                             maxlength=num_classes, dtype=tf.int64)
    labels = ds.map(lambda image, label: label).batch(4096)
    return labels.reduce(tf.zeros(num_classes, tf.int64), count).numpy()


def _check_hold_out(source: Source, validation: tf.data.Dataset, train_counts: np.ndarray,
                    validation_fraction: float) -> None:
    """One line naming the classes whose every training image the validation hold-out took (a class of
    one image, say): the net never trains on them, yet is tested on them. A warning, not an error: the
    other classes still make a run worth having, and which images are held out depends on the seed."""
    if train_counts.all():
        return
    # Only now are the validation labels read (a class lost its every training image: a rare case).
    emptied = np.flatnonzero((train_counts == 0) & (_label_counts(validation, len(train_counts)) > 0))
    if not len(emptied):
        return
    names = npz.first_few([repr(source.class_names[c]) for c in emptied[:npz.LISTED]], len(emptied), ", ")
    warnings.warn(f"dataset {source.name!r}: the validation hold-out (validation_fraction={validation_fraction:g}) "
                  f"took every training image of {len(emptied)} of the {len(train_counts)} classes ({names}): the net "
                  f"never trains on them; give those classes more images, or pass --validation-fraction 0 to train "
                  f"on every image.", stacklevel=3)
