"""Training recipes of the papers, named, every field overridable.

    wrn   Zagoruyko & Komodakis: SGD 0.9 Nesterov, lr 0.1 x0.2 at 30/60/80% (epochs 60/120/160
          of 200), weight decay 5e-4 coupled, batch 128, 200 epochs.
    he    He et al. (CIFAR): SGD 0.9, lr 0.1 /10 at 50% and 75% (32k and 48k of 64k iterations,
          64k x 128 / 45k = 182 epochs), weight decay 1e-4, batch 128; 0.01 warm-up for ResNet-110.
    adam  Adam lr 1e-3, constant (the ResNet-18 report, and the SGD-vs-Adam comparison).

Weight decay is applied as the reference codes do: PyTorch's `SGD(weight_decay=wd)` and Torch's
`optim.sgd` add wd * w to the gradient before momentum, for every parameter, BN's gamma and beta
included (the gradient of an L2 penalty wd/2 * sum(w^2)). Our optimizers do exactly that, in their
update step. Keras's own `weight_decay=` is decoupled (AdamW-style) and trains differently.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ablation.core.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Recipe:
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9  # SGD only
    nesterov: bool = False
    weight_decay: float = 0.0  # coupled: wd * w added to the gradient, as PyTorch's SGD
    lr_milestones: tuple[float, ...] = ()  # fractions of the run where the lr is multiplied by lr_decay
    lr_decay: float = 0.1
    warmup_steps: int = 0  # steps at warmup_learning_rate before the schedule starts
    warmup_learning_rate: float = 0.01
    batch_size: int = 128
    epochs: int = 200

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not valid; expected one of {', '.join(OPTIMIZERS)}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} is not valid; expected a positive integer.")
        # epochs=0 would train nothing and mark the run finished.
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs!r} is not valid; expected a positive integer.")
        for name in ("learning_rate", "warmup_learning_rate", "lr_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r} is not valid; expected a finite positive number.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay={self.weight_decay!r} is not valid; expected a finite number >= 0.")
        if any(not 0 < m < 1 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(self.lr_milestones):
            raise ConfigError(f"lr_milestones={self.lr_milestones!r} is not valid; expected increasing "
                              f"fractions of the run in (0, 1).")

    def replace(self, **overrides) -> Recipe:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"recipe field {unknown[0]!r} does not exist; expected one of "
                              f"{', '.join(f.name for f in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **overrides)

    def boundaries(self, steps_per_epoch: int) -> list[int]:
        """Steps where the lr drops: fraction x epochs, rounded to a whole epoch (60/120/160 of 200)."""
        return [round(m * self.epochs) * steps_per_epoch for m in self.lr_milestones]

    def schedule(self, steps_per_epoch: int) -> StepDecay:
        return StepDecay(self.learning_rate, self.boundaries(steps_per_epoch), self.lr_decay, self.warmup_steps,
                         self.warmup_learning_rate)

    def make_optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        lr = self.schedule(steps_per_epoch)
        if self.optimizer == "adam":
            return CoupledAdam(lr, coupled_weight_decay=self.weight_decay)
        return CoupledSGD(lr, momentum=self.momentum, nesterov=self.nesterov, coupled_weight_decay=self.weight_decay)


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
        if self.warmup_steps:
            lr = keras.ops.where(step < self.warmup_steps, self.warmup_learning_rate, lr)
        return lr

    def get_config(self):
        return {"learning_rate": self.learning_rate, "boundaries": self.boundaries, "lr_decay": self.lr_decay,
                "warmup_steps": self.warmup_steps, "warmup_learning_rate": self.warmup_learning_rate}

    @classmethod
    def from_config(cls, config):
        # .keras files saved before the rename spell three arguments the old way.
        renamed = {"base_lr": "learning_rate", "decay": "lr_decay", "warmup_lr": "warmup_learning_rate"}
        return cls(**{renamed.get(key, key): value for key, value in config.items()})


class CoupledWeightDecay:
    """Adds `coupled_weight_decay * w` to each weight's gradient before the optimizer's own update,
    as `torch.optim.SGD(weight_decay=)` does (`d_p = d_p.add(p, alpha=weight_decay)`).

    The same arithmetic as an L2 penalty wd/2 * sum(w^2) in the loss, at a fraction of the cost:
    Keras builds a penalty per weight into the loss and its gradient, a dozen ops per weight,
    which doubled the time to trace a WRN's train step and slowed every step (see the note in
    docs/benchmarks.md). Every trainable weight is decayed, BN's gamma and beta included.
    """

    def __init__(self, *args, coupled_weight_decay=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not coupled_weight_decay >= 0:
            raise ConfigError(f"weight_decay={coupled_weight_decay!r} is not valid; expected a number >= 0.")
        self.coupled_weight_decay = float(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_weight_decay:
            gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                     keras.ops.multiply(variable, keras.ops.cast(self.coupled_weight_decay,
                                                                                 variable.dtype)))
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay}


@keras.saving.register_keras_serializable(package="ablation")
class CoupledSGD(CoupledWeightDecay, keras.optimizers.SGD):
    """SGD with PyTorch's (coupled) weight decay."""


@keras.saving.register_keras_serializable(package="ablation")
class CoupledAdam(CoupledWeightDecay, keras.optimizers.Adam):
    """Adam with PyTorch's (coupled) weight decay: `torch.optim.Adam(weight_decay=)`, not AdamW."""


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int, *, jit_compile="auto") -> keras.Model:
    """The recipe's optimizer, schedule and weight decay on `model`; the loss is the cross-entropy
    alone (weight decay acts in the optimizer), and accuracy is the one metric."""
    # A metric object, not the string "accuracy", and the optimizer built here: outside
    # tf.distribute, Keras creates both lazily inside the first trace of the train step, and a
    # trace that creates variables is traced a second time (about a third of a run's start-up).
    model.compile(optimizer=recipe.make_optimizer(steps_per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model
