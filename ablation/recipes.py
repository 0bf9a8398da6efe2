"""Training recipes of the papers, named, every field overridable.

    wrn   Zagoruyko & Komodakis: SGD 0.9 Nesterov, lr 0.1 x0.2 at 30/60/80% (epochs 60/120/160
          of 200), weight decay 5e-4 coupled, batch 128, 200 epochs.
    he    He et al. (CIFAR): SGD 0.9, lr 0.1 /10 at 50% and 75% (32k and 48k of 64k iterations,
          64k x 128 / 45k = 182 epochs), weight decay 1e-4, batch 128; 0.01 warm-up for ResNet-110.
    adam  Adam lr 1e-3, constant (the ResNet-18 report, and the SGD-vs-Adam comparison).

Weight decay is applied as the reference codes do: PyTorch's `SGD(weight_decay=wd)` and Torch's
`optim.sgd` add wd * w to the gradient before momentum, for every parameter, BN's gamma and beta
included. That is the gradient of an L2 penalty wd/2 * sum(w^2) on every trainable weight, which
is what we add. Keras's own `weight_decay=` is decoupled (AdamW-style) and trains differently.
"""

from __future__ import annotations

import dataclasses

import keras

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Recipe:
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9  # SGD only
    nesterov: bool = False
    weight_decay: float = 0.0  # coupled, as an L2 penalty of weight_decay / 2
    lr_milestones: tuple[float, ...] = ()  # fractions of the run where the lr is multiplied by lr_decay
    lr_decay: float = 0.1
    warmup_steps: int = 0  # steps at warmup_learning_rate before the schedule starts
    warmup_learning_rate: float = 0.01
    batch_size: int = 128
    epochs: int = 200

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not valid; expected one of {', '.join(OPTIMIZERS)}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} is not valid; expected a positive integer.")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs={self.epochs!r} is not valid; expected a non-negative integer.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} is not valid; expected a positive number.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} is not valid; expected a number >= 0.")
        if any(not 0 < m < 1 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(self.lr_milestones):
            raise ValueError(f"lr_milestones={self.lr_milestones!r} is not valid; expected increasing "
                             f"fractions of the run in (0, 1).")

    def replace(self, **overrides) -> "Recipe":
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"recipe field {unknown[0]!r} does not exist; expected one of "
                             f"{', '.join(f.name for f in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **overrides)

    def boundaries(self, steps_per_epoch: int) -> list[int]:
        """Steps where the lr drops: fraction x epochs, rounded to a whole epoch (60/120/160 of 200)."""
        return [round(m * self.epochs) * steps_per_epoch for m in self.lr_milestones]

    def schedule(self, steps_per_epoch: int) -> "StepDecay":
        return StepDecay(self.learning_rate, self.boundaries(steps_per_epoch), self.lr_decay, self.warmup_steps,
                         self.warmup_learning_rate)

    def make_optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        lr = self.schedule(steps_per_epoch)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(lr)
        return keras.optimizers.SGD(lr, momentum=self.momentum, nesterov=self.nesterov)


RECIPES = {
    "wrn": Recipe(nesterov=True, weight_decay=5e-4, lr_milestones=(0.3, 0.6, 0.8), lr_decay=0.2, epochs=200),
    "he": Recipe(weight_decay=1e-4, lr_milestones=(0.5, 0.75), lr_decay=0.1, epochs=182),
    "adam": Recipe(optimizer="adam", learning_rate=1e-3, epochs=20),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"recipe {name!r} is not known; expected one of {', '.join(RECIPES)}.") from None


@keras.saving.register_keras_serializable(package="ablation")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = base * decay ** (number of boundaries <= step), after `warmup_steps` at `warmup_lr`.

    The optimizer's step counter starts at 0, so step `b` is the first one at the lower rate:
    with boundaries [60 * steps_per_epoch, ...] the first batch of epoch 60 (0-indexed) is
    already at 0.02, as PyTorch's MultiStepLR([60, 120, 160], 0.2) stepped once per epoch.
    (Keras's PiecewiseConstantDecay keeps the old rate at the boundary step itself.)
    """

    def __init__(self, base_lr, boundaries, decay, warmup_steps=0, warmup_lr=0.01):
        self.base_lr, self.boundaries, self.decay = float(base_lr), [int(b) for b in boundaries], float(decay)
        self.warmup_steps, self.warmup_lr = int(warmup_steps), float(warmup_lr)

    def __call__(self, step):
        step = keras.ops.cast(step, "int64")
        drops = sum((keras.ops.cast(step >= b, "float32") for b in self.boundaries), keras.ops.zeros((), "float32"))
        lr = self.base_lr * keras.ops.power(self.decay, drops)
        if self.warmup_steps:
            lr = keras.ops.where(step < self.warmup_steps, self.warmup_lr, lr)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "boundaries": self.boundaries, "decay": self.decay,
                "warmup_steps": self.warmup_steps, "warmup_lr": self.warmup_lr}


def apply_weight_decay(model: keras.Model, weight_decay: float) -> None:
    """The reference's coupled weight decay: an L2 penalty wd/2 * w^2 on every trainable weight.

    Set on the variables (not the layers' configs), so a saved model carries the plain
    architecture and the penalty is a property of the recipe, re-applied on resume.
    """
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    for variable in model.trainable_variables:
        variable.regularizer = regularizer


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int, *, jit_compile="auto") -> keras.Model:
    """The recipe's optimizer, schedule and weight decay on `model`, with the metrics every run
    records: accuracy, and the cross-entropy alone (Keras's "loss" includes the L2 penalty)."""
    apply_weight_decay(model, recipe.weight_decay)
    model.compile(optimizer=recipe.make_optimizer(steps_per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True,
                                                                                   name="cross_entropy")],
                  jit_compile=jit_compile)
    return model
