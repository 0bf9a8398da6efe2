"""The net as its recipe trains it: what a training step does beyond Keras's own.

    model = RecipeModel(net, one_hot_targets=True, ema_decay=0.9998, augmentation=batch_transform)

A `RecipeModel` is a functional model over the net's own layers: the same variables, saved under
the same names (a run's resumable state reads the same with it or without), so that the net itself
stays a plain Keras model for diagrams and the saved `.keras` files. Its training step adds, where
the recipe asks for them:

* the data axes' augmentation of the batch (ablation.run.augment), on the device that trains, told
  which batch of the run it is by a step counter of its own, saved with the weights (so a resumed
  run draws what the uninterrupted one would; the optimizer's counter stands still on the steps a
  loss scale skips);
* one-hot targets for label smoothing (the loss smooths them; ablation.run.recipes.CrossEntropy);
* an exponential moving average of the weights after every step (timm's ModelEmaV2: e = d e +
  (1 - d) w, from the initial weights). It covers every weight of the net, batch norm's moving mean
  and variance included, as ModelEmaV2 averages the whole state dict: the averaged weights are a
  different net, whose activations the raw weights' statistics do not describe. (Keras's optimizer
  `use_ema` averages the trainable weights only, and validates with the raw ones.) Inference, that
  is validation, the test and the saved nets, uses the averages.

With none of them (the reference recipes), every step is Keras's own, unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class RecipeModel(keras.Model):
    """The net's graph and weights, trained with its recipe's step (see the module)."""

    def __init__(self, net: keras.Model, *, one_hot_targets=False, ema_decay=0.0, augmentation=None):
        super().__init__(inputs=net.input, outputs=net.output, name=net.name)
        self.one_hot_targets = bool(one_hot_targets)
        self.ema_decay = float(ema_decay)
        self.augmentation = augmentation  # (images, labels, step, xla=) -> (images, targets), or None
        if augmentation is not None:  # only then: a reference run's state holds what it held before
            self.steps_taken = keras.Variable(0, dtype="int64", trainable=False, name="steps_taken",
                                              aggregation="only_first_replica")
        # Set past Keras's tracking: they are this model's layers' weights already, and tracked again
        # they would be saved twice.
        object.__setattr__(self, "_averaged", tuple(net.weights) if self.ema_decay else ())
        # Tracked, so that the resumable state restores the averages with the weights. Each starts as
        # a copy of its weight's value (given the weight's own tf.Variable, Keras would share it).
        self.averages = [keras.Variable(weight.numpy(), trainable=False, name=f"average_{weight.name}",
                                        aggregation=weight.aggregation, synchronization=weight.synchronization)
                         for weight in self._averaged]
        # Each weight's average by the weight, for the saved nets (set past tracking, as `_averaged`).
        object.__setattr__(self, "_average_of", {id(w): a for w, a in zip(self._averaged, self.averages, strict=True)})

    @property
    def reference_step(self) -> bool:
        """Whether the training step is Keras's own: nothing of the recipe's to add."""
        return self.augmentation is None and not self.one_hot_targets and not self.ema_decay

    def train_step(self, data):
        if self.reference_step:
            return super().train_step(data)
        images, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.augmentation is not None:
            images, targets = self.augmentation(images, targets, self.steps_taken, xla=bool(self.jit_compile))
            self.steps_taken.assign_add(1)
        if self.one_hot_targets and len(targets.shape) == 1:
            targets = tf.one_hot(tf.cast(targets, tf.int32), self.output.shape[-1])
        logs = super().train_step((images, targets, sample_weight))
        if self.ema_decay:
            self._update_averages()
        return logs

    def _update_averages(self):
        d = self.ema_decay
        for average, weight in zip(self.averages, self._averaged, strict=True):
            average.assign(d * average + (1.0 - d) * tf.cast(weight.value, average.dtype))

    def call(self, inputs, training=None, mask=None):
        if training or not self.ema_decay:
            return super().call(inputs, training=training, mask=mask)
        # Inference with the averages in place of the weights (nothing is assigned in the scope).
        with keras.StatelessScope(state_mapping=list(zip(self._averaged, self.averages, strict=True))):
            return super().call(inputs, training=training, mask=mask)

    def inference_weights(self, layer) -> list:
        """The values inference uses for `layer`'s weights (its averages with an EMA): what a saved
        net holds."""
        if not self.ema_decay:
            return layer.get_weights()
        return [keras.ops.convert_to_numpy(self._average_of[id(weight)].value) for weight in layer.weights]
