"""Training recipes of the papers, named, every field an axis (ablation.run.axes) and overridable.

    wrn   Zagoruyko & Komodakis: SGD 0.9 Nesterov, lr 0.1 x0.2 at 30/60/80% (epochs 60/120/160
          of 200), weight decay 5e-4 coupled, batch 128, 200 epochs.
    he    He et al. (CIFAR): SGD 0.9, lr 0.1 /10 at 50% and 75% (32k and 48k of 64k iterations,
          64k x 128 / 45k = 182 epochs), weight decay 1e-4, batch 128; 0.01 warm-up for ResNet-110.
    adam  Adam lr 1e-3, constant (the ResNet-18 report, and the SGD-vs-Adam comparison).

Weight decay is applied as the reference codes do: PyTorch's `SGD(weight_decay=wd)` and Torch's
`optim.sgd` add wd * w to the gradient before momentum, for every parameter, BN's gamma and beta
included (the gradient of an L2 penalty wd/2 * sum(w^2)). Our optimizers do exactly that, in their
update step. Keras's own `weight_decay=` is decoupled (AdamW-style) and trains differently.

The later knobs, each off in the three recipes (the reference runs are unchanged by them):
`lr_schedule="cosine"` and `warmup_epochs` (the schedules below), `label_smoothing` (the loss,
`CrossEntropy`), `no_bias_decay` (the optimizer), `ema_decay` (ablation.run.recipe_model) and the
data axes (ablation.run.augment). Keras's ready-made pieces are not used where they differ from the
reference codes: `CosineDecay` holds its floor and prefixes its warm-up, optimizers' `use_ema`
averages the trainable weights only (field guide, section 7).
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ablation.core.errors import ConfigError
from ablation.run.axes import DATA, RECIPE_AXES, is_on
from ablation.run.recipe_model import RecipeModel


class _RecipeRules:
    """What a Recipe is beyond its fields: the checks of each field (its axis's) and of how the
    fields go together, and what a run makes of them."""

    def __post_init__(self):
        for axis in RECIPE_AXES:  # JSON's lists back to tuples, then each value as its axis takes it
            object.__setattr__(self, axis.name, axis.check(getattr(self, axis.name)))
        for axis in RECIPE_AXES:
            if axis.needs and not is_on(axis.needs, getattr(self, axis.needs)):
                # It changes nothing without the axis it needs: the run is the one at its default (so
                # a product sweep's cutmix_alpha=0 with any cutmix_prob is the reference run, one id).
                object.__setattr__(self, axis.name, axis.default)
        if is_on("mixup_alpha", self.mixup_alpha) and is_on("cutmix_alpha", self.cutmix_alpha):
            raise ConfigError(f"mixup_alpha={self.mixup_alpha!r} with cutmix_alpha={self.cutmix_alpha!r} is not valid; "
                              f"expected one of them 0: the reference codes apply one (timm's switching between "
                              f"the two per batch is not offered).")
        if self.warmup_epochs and self.warmup_steps:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs!r} with warmup_steps={self.warmup_steps!r} is not "
                              f"valid; expected one warm-up: warmup_steps holds warmup_learning_rate (He et al.'s "
                              f"ResNet-110), warmup_epochs ramps linearly from 0 (Goyal et al.); set the other to 0.")

    def replace(self, **overrides):
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"recipe field {unknown[0]!r} does not exist; expected one of "
                              f"{', '.join(f.name for f in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **overrides)

    @property
    def augment_on_device(self) -> bool:
        """Whether a data axis is on: the run's augmentation, all of it, moves onto the training device."""
        return any(is_on(axis.name, getattr(self, axis.name)) for axis in RECIPE_AXES if axis.acts_on == DATA)

    def boundaries(self, steps_per_epoch: int) -> list[int]:
        """Steps where the lr drops: fraction x epochs, rounded to a whole epoch (60/120/160 of 200)."""
        return [round(m * self.epochs) * steps_per_epoch for m in self.lr_milestones]

    def schedule(self, steps_per_epoch: int) -> keras.optimizers.schedules.LearningRateSchedule:
        if self.lr_schedule == "cosine":
            lr = CosineAnnealing(self.learning_rate, self.epochs * steps_per_epoch, self.warmup_steps,
                                 self.warmup_learning_rate)
        else:
            lr = StepDecay(self.learning_rate, self.boundaries(steps_per_epoch), self.lr_decay, self.warmup_steps,
                           self.warmup_learning_rate)
        if self.warmup_epochs:
            lr = LinearWarmup(lr, self.learning_rate, self.warmup_epochs * steps_per_epoch)
        return lr

    def make_optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        lr = self.schedule(steps_per_epoch)
        decay = dict(coupled_weight_decay=self.weight_decay, no_bias_decay=self.no_bias_decay)
        if self.optimizer == "adam":
            return CoupledAdam(lr, **decay)
        return CoupledSGD(lr, momentum=self.momentum, nesterov=self.nesterov, **decay)


# One field per recipe and data axis, at the axis's default (a bare Recipe(); the named recipes
# below set their own), so that a new axis is declared once, in ablation.run.axes.
Recipe = dataclasses.make_dataclass(
    "Recipe", [(axis.name, axis.values.type, dataclasses.field(default=axis.default)) for axis in RECIPE_AXES],
    bases=(_RecipeRules,), frozen=True)
Recipe.__module__ = __name__
Recipe.__doc__ = ("How a net is trained and what it sees: a field per recipe and data axis (ablation.run.axes), "
                  "each checked as its axis says.")


RECIPES = {
    "wrn": Recipe(nesterov=True, weight_decay=5e-4, lr_milestones=(0.3, 0.6, 0.8), lr_decay=0.2, epochs=200),
    "he": Recipe(weight_decay=1e-4, lr_milestones=(0.5, 0.75), lr_decay=0.1, epochs=182),
    "adam": Recipe(optimizer="adam", learning_rate=1e-3, epochs=20),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"recipe {name!r} is not known; expected one of {', '.join(RECIPES)}.") from None


@keras.saving.register_keras_serializable(package="ablation")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = learning_rate * lr_decay ** (number of boundaries <= step), after `warmup_steps` at
    `warmup_learning_rate` (the Recipe's field names).

    The optimizer's step counter starts at 0, so step `b` is the first one at the lower rate:
    with boundaries [60 * steps_per_epoch, ...] the first batch of epoch 60 (0-indexed) is
    already at 0.02, as PyTorch's MultiStepLR([60, 120, 160], 0.2) stepped once per epoch.
    (Keras's PiecewiseConstantDecay keeps the old rate at the boundary step itself.)
    """

    def __init__(self, learning_rate, boundaries, lr_decay, warmup_steps=0, warmup_learning_rate=0.01):
        self.learning_rate, self.lr_decay = float(learning_rate), float(lr_decay)
        self.boundaries = [int(b) for b in boundaries]
        self.warmup_steps, self.warmup_learning_rate = int(warmup_steps), float(warmup_learning_rate)

    def __call__(self, step):
        step = keras.ops.cast(step, "int64")
        drops = sum((keras.ops.cast(step >= b, "float32") for b in self.boundaries), keras.ops.zeros((), "float32"))
        lr = self.learning_rate * keras.ops.power(self.lr_decay, drops)
        return _constant_warmup(step, lr, self.warmup_steps, self.warmup_learning_rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "boundaries": self.boundaries, "lr_decay": self.lr_decay,
                "warmup_steps": self.warmup_steps, "warmup_learning_rate": self.warmup_learning_rate}

    @classmethod
    def from_config(cls, config):
        # .keras files saved before the rename spell three arguments the old way.
        renamed = {"base_lr": "learning_rate", "decay": "lr_decay", "warmup_lr": "warmup_learning_rate"}
        return cls(**{renamed.get(key, key): value for key, value in config.items()})


def _constant_warmup(step, lr, warmup_steps: int, warmup_learning_rate: float):
    """He et al.'s warm-up for ResNet-110: `warmup_learning_rate` for the first `warmup_steps` steps."""
    return keras.ops.where(step < warmup_steps, warmup_learning_rate, lr) if warmup_steps else lr


@keras.saving.register_keras_serializable(package="ablation")
class CosineAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """lr = learning_rate * (1 + cos(pi * step / decay_steps)) / 2: torch's
    `CosineAnnealingLR(T_max=decay_steps, eta_min=0)` stepped once per batch, over the run's steps
    (Loshchilov & Hutter 2017, without restarts), after `warmup_steps` at `warmup_learning_rate`
    as StepDecay. (Keras's CosineDecay has the same curve but holds its floor past decay_steps and
    prefixes its warm-up; a run never passes decay_steps, and the warm-up here is LinearWarmup.)"""

    def __init__(self, learning_rate, decay_steps, warmup_steps=0, warmup_learning_rate=0.01):
        self.learning_rate, self.decay_steps = float(learning_rate), int(decay_steps)
        self.warmup_steps, self.warmup_learning_rate = int(warmup_steps), float(warmup_learning_rate)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = 0.5 * self.learning_rate * (1.0 + keras.ops.cos(math.pi * step / self.decay_steps))
        return _constant_warmup(step, lr, self.warmup_steps, self.warmup_learning_rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_steps": self.decay_steps,
                "warmup_steps": self.warmup_steps, "warmup_learning_rate": self.warmup_learning_rate}


@keras.saving.register_keras_serializable(package="ablation")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from 0 to `learning_rate` over `warmup_steps` steps (Goyal et al. 2017), laid
    over `schedule`: lr = learning_rate * step / warmup_steps before it, schedule(step) from it on.

    This is timm's CosineLRScheduler with `warmup_prefix=False` and `warmup_lr_init=0`, stepped per
    update: the warm-up replaces the schedule's first steps, and the schedule keeps its own clock
    (a cosine over the whole run, step milestones where they were). Keras's CosineDecay (and timm's
    `warmup_prefix=True`) instead start the decay after the warm-up, shifting it by its length."""

    def __init__(self, schedule, learning_rate, warmup_steps):
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        self.schedule, self.learning_rate, self.warmup_steps = schedule, float(learning_rate), int(warmup_steps)

    def __call__(self, step):
        ramp = self.learning_rate * keras.ops.cast(step, "float32") / self.warmup_steps
        return keras.ops.where(keras.ops.cast(step, "int64") < self.warmup_steps, ramp, self.schedule(step))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "learning_rate": self.learning_rate,
                "warmup_steps": self.warmup_steps}


class CoupledWeightDecay:
    """Adds `coupled_weight_decay * w` to each weight's gradient before the optimizer's own update,
    as `torch.optim.SGD(weight_decay=)` does (`d_p = d_p.add(p, alpha=weight_decay)`).

    The same arithmetic as an L2 penalty wd/2 * sum(w^2) in the loss, at a fraction of the cost:
    Keras builds a penalty per weight into the loss and its gradient, a dozen ops per weight,
    which doubled the time to trace a WRN's train step and slowed every step (see the note in
    docs/benchmarks.md). Every trainable weight is decayed, BN's gamma and beta included, unless
    `no_bias_decay`: then only the convolution and dense kernels are (Bag of Tricks, section 3.1:
    "biases and gamma and beta in BN layers are left unregularized"), by timm's rule for it
    (`param_groups_weight_decay`: no decay for a weight of one dimension or none).
    """

    def __init__(self, *args, coupled_weight_decay=0.0, no_bias_decay=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.coupled_weight_decay = float(coupled_weight_decay)  # checked as the weight_decay axis
        self.no_bias_decay = bool(no_bias_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_weight_decay and not (self.no_bias_decay and len(variable.shape) <= 1):
            gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                     keras.ops.multiply(variable, keras.ops.cast(self.coupled_weight_decay,
                                                                                 variable.dtype)))
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay,
                "no_bias_decay": self.no_bias_decay}


@keras.saving.register_keras_serializable(package="ablation")
class CoupledSGD(CoupledWeightDecay, keras.optimizers.SGD):
    """SGD with PyTorch's (coupled) weight decay."""


@keras.saving.register_keras_serializable(package="ablation")
class CoupledAdam(CoupledWeightDecay, keras.optimizers.Adam):
    """Adam with PyTorch's (coupled) weight decay: `torch.optim.Adam(weight_decay=)`, not AdamW."""


def _soft(y_true, y_pred) -> bool:
    """Whether `y_true` holds a target distribution per image [B, K], not class labels ([B] or [B, 1]);
    told by shape, as Keras hands a loss its labels cast to floats."""
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1] != 1


def _cross_entropy(y_true, y_pred, label_smoothing=0.0):
    # Integer labels (validation, the test, and training without smoothing or mixing): Keras's sparse
    # cross-entropy, the very op of the reference recipes. Soft targets [B, K] (mixup, CutMix, or
    # one-hot for smoothing): target (1 - e) y + e / K, as torch's CrossEntropyLoss(label_smoothing=e).
    if _soft(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True, label_smoothing=label_smoothing)
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


@keras.saving.register_keras_serializable(package="ablation")
class CrossEntropy(keras.losses.Loss):
    """The training loss: the cross-entropy of integer labels, or of soft targets smoothed by
    `label_smoothing`. Mixing targets, lam y_a + (1 - lam) y_b, gives mixup-cifar10's and CutMix's
    lam CE(y_a) + (1 - lam) CE(y_b) exactly: the cross-entropy is linear in its target. Validation
    and test labels are integers, so their loss is the plain cross-entropy (as timm validates),
    comparable across a label-smoothing sweep."""

    def __init__(self, label_smoothing=0.0, name="cross_entropy"):
        super().__init__(name=name)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return _cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _accuracy(y_true, y_pred):
    # Soft targets: the target's weight on the predicted class, lam [pred = y_a] + (1 - lam) [pred = y_b]
    # under mixing (mixup-cifar10's training accuracy); integer labels: the usual accuracy.
    if _soft(y_true, y_pred):
        predicted = keras.ops.one_hot(keras.ops.argmax(y_pred, axis=-1), y_pred.shape[-1], dtype=y_true.dtype)
        return keras.ops.sum(y_true * predicted, axis=-1)
    return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="ablation")
class Accuracy(keras.metrics.MeanMetricWrapper):
    """The accuracy of integer labels, or the target-weighted accuracy of mixed soft targets
    (mixup-cifar10's training accuracy; CutMix-PyTorch reports the unmixed labels' instead)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int, *, jit_compile="auto",
                  augmentation=None) -> RecipeModel:
    """The net `model` trained as `recipe` says (a RecipeModel over its layers), compiled with the
    recipe's optimizer, schedule and weight decay; the loss is the cross-entropy alone (weight decay
    acts in the optimizer), and accuracy is the one metric. `augmentation`: the data axes' batch
    transform (ablation.run.augment), when the recipe has one."""
    trainer = RecipeModel(model, one_hot_targets=is_on("label_smoothing", recipe.label_smoothing),
                          ema_decay=recipe.ema_decay, augmentation=augmentation)
    # A metric object, not the string "accuracy", and the optimizer built here: outside
    # tf.distribute, Keras creates both lazily inside the first trace of the train step, and a
    # trace that creates variables is traced a second time (about a third of a run's start-up).
    trainer.compile(optimizer=recipe.make_optimizer(steps_per_epoch),
                    loss=CrossEntropy(recipe.label_smoothing),
                    metrics=[Accuracy()], jit_compile=jit_compile)
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer
