"""The one set-up of a run: its net, recipe, strategy, precision and data, for training, the bench and the search.

    with set_up(config) as run:
        model = run.compile(run.build())
        model.fit(run.pipeline.train_batches(0, epochs), ...)

A run, a benchmark and a keras-tuner trial differ in what they do with the net, never in how it
is set up: the same seeds and determinism, the strategy the config names (the net built and
compiled in its scope), the precision policy for as long as the run lasts, the same pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator

import keras

from ablation.run import data, distribute
from ablation.run.augment import BatchAugmentation
from ablation.run.config import ResolvedRun, RunConfig, build_model
from ablation.run.recipe_model import RecipeModel
from ablation.run.recipes import Recipe, compile_model


@dataclasses.dataclass
class RunSetup:
    """What a run trains with, from its `RunConfig`."""

    config: RunConfig
    resolved: ResolvedRun
    strategy: object  # a tf.distribute.Strategy
    devices: list[str]
    source: data.Source

    @property
    def num_classes(self) -> int:
        return len(self.source.class_names)

    @functools.cached_property
    def pipeline(self) -> data.Pipeline:
        """The run's data pipeline; made on first use, so that a net with bad arguments fails before
        the data is read."""
        run = self.resolved
        return data.make_pipeline(self.source, image_shape=run.input_shape, batch_size=run.recipe_fields.batch_size,
                                  seed=run.seed, validation_fraction=run.validation_fraction, augment=run.augment,
                                  max_steps_per_epoch=run.max_steps_per_epoch,
                                  augment_on_device=run.recipe_fields.augment_on_device)

    def build(self, **overrides) -> keras.Model:
        """The run's net, sized by the data, built in the strategy's scope; `overrides` are builder
        arguments, e.g. the dropout rate a tuner drew."""
        with self.strategy.scope():
            return build_model(self.resolved, num_classes=self.num_classes, **overrides)

    def compile(self, model: keras.Model, recipe: Recipe | None = None, steps_per_epoch: int | None = None) -> RecipeModel:
        """`model` trained with the run's recipe (or `recipe`): a RecipeModel over its layers, compiled
        in the strategy's scope, its schedule counted in steps of the run's epochs (or
        `steps_per_epoch`), and the recipe's data axes on the device when it has any."""
        recipe = recipe or self.resolved.recipe_fields
        augmentation = None
        if recipe.augment_on_device:
            pipeline = self.pipeline
            augmentation = BatchAugmentation(recipe, num_classes=self.num_classes, mean=pipeline.mean, std=pipeline.std,
                                             seed=pipeline.seed, steps_per_epoch=pipeline.steps_per_epoch,
                                             augment=pipeline.augment)
        with self.strategy.scope():
            return compile_model(model, recipe, steps_per_epoch or self.pipeline.steps_per_epoch,
                                 jit_compile=self.config.jit_mode(), augmentation=augmentation)


@contextlib.contextmanager
def set_up(config: RunConfig, *, source: data.Source | None = None) -> Iterator[RunSetup]:
    """Set up the run of `config` (validated first): its strategy, data source, determinism, the seeds
    (the same seed, the same initial weights) and its precision policy until the block ends.
    `source` replaces the config's data set (the bench's synthetic images)."""
    resolved = config.resolve()
    strategy, devices = distribute.make_strategy(config.strategy)
    source = source or data.open_source(config.dataset, data_dir=config.data_dir)
    distribute.set_determinism(config.deterministic)
    distribute.set_seeds(config.seed)  # last: nothing draws between the seeds and the net's weights
    with distribute.precision_policy(config.precision):
        yield RunSetup(config=config, resolved=resolved, strategy=strategy, devices=devices, source=source)
