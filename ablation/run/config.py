"""A run's configuration, its resolved (validated) form, and the factories built from it.

`RunConfig` is what a user or a study asks for; `RunConfig.resolve()` validates it against the
model's preset and recipe and returns a `ResolvedRun`: everything that defines the run, frozen.
Its JSON form is config.json's "run"; `run_identity` of it is what a folder must match to be
resumed (everything but the preset's name and spelled-out defaults), and
`ResolvedRun.configuration_id()` names it from its content (a study's run id adds the seed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Mapping

from ablation.core import io
from ablation.core.choices import JIT_MODES, LARGEST_SEED, PRECISIONS, STRATEGIES, checked, seed_is_valid
from ablation.core.errors import ConfigError
from ablation.run.axes import AXES, MODEL, MODEL_AXES, RECIPE_AXES, is_on, plain
from ablation.run.recipes import Recipe, get_recipe
from builders import INITIALIZATIONS, PRESETS, get_preset


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: str  # a preset of builders.PRESETS
    dataset: str = "cifar10"
    recipe: str | None = None  # None: the recipe of the model's paper (its preset's)
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)  # e.g. epochs, batch_size
    model_overrides: Mapping = dataclasses.field(default_factory=dict)  # e.g. dropout_rate, block_type
    seed: int = 42
    validation_fraction: float = 0.1
    augment: bool = True
    max_steps_per_epoch: int | None = None  # smoke runs: cut every epoch short
    strategy: str = "auto"  # one of choices.STRATEGIES
    precision: str = "float32"  # one of choices.PRECISIONS
    jit_compile: str = "auto"  # one of choices.JIT_MODES
    data_dir: str | None = None  # tensorflow-datasets' data_dir: where the data is, not what the run is
    # TensorFlow's deterministic kernels, XLA off: how the run computes, not what it is (config.json's
    # environment records it; a run started without it may be resumed with it).
    deterministic: bool = False

    def resolve(self) -> ResolvedRun:
        """Everything that defines the run, validated (the run's identity)."""
        preset = preset_of(self.model)
        overrides = self.checked_model_overrides()
        recipe_name = self.recipe or preset.recipe
        recipe = get_recipe(recipe_name)
        if recipe_name == preset.recipe:
            recipe = recipe.replace(**preset.recipe_overrides)
        recipe = recipe.replace(**self.recipe_overrides)
        if not seed_is_valid(self.seed):
            raise ConfigError(f"seed={self.seed!r} is not valid; expected an integer in 0..{LARGEST_SEED} (2**32 - 1).")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"max_steps_per_epoch={self.max_steps_per_epoch!r} is not valid; expected >= 1.")
        checked("strategy", self.strategy, STRATEGIES)
        checked("jit_compile", self.jit_compile, JIT_MODES)
        checked("precision", self.precision, PRECISIONS)
        if self.deterministic and self.jit_compile == "on":
            raise ConfigError("--deterministic with --jit-compile on is not valid: XLA's max-pool gradient has no "
                              "deterministic kernel; use --jit-compile auto or off.")
        model_kwargs = {**preset.kwargs, **overrides}
        defaults = _defaults(preset.family)
        for a in MODEL_AXES:  # as a Recipe does: an axis that changes nothing without its needed one is at its default
            if a.needs and a.name in model_kwargs and model_kwargs.get(a.needs, defaults.get(a.needs)) == defaults.get(a.needs):
                model_kwargs.pop(a.name)
        if "input_shape" in model_kwargs:
            model_kwargs["input_shape"] = tuple(model_kwargs["input_shape"])
        return ResolvedRun(
            model=self.model, family=preset.family, model_kwargs=model_kwargs,
            input_shape=tuple(model_kwargs.get("input_shape") or preset.input_shape), dataset=self.dataset,
            recipe=recipe_name, recipe_fields=recipe, seed=self.seed, validation_fraction=self.validation_fraction,
            augment=self.augment, max_steps_per_epoch=self.max_steps_per_epoch, strategy=self.strategy,
            precision=self.precision, jit_compile=self.jit_compile)

    def checked_model_overrides(self) -> dict:
        """The model overrides, each a model axis of this model's builder, checked by its axis and in
        one spelling ("B(1, 3,1)" is "B(1,3,1)"): validated before any run trains (the builder checks
        its family's rules, e.g. a WRN's depth, when the net is built)."""
        valid = model_axes_of(self.model)
        overrides = {}
        for key, value in self.model_overrides.items():
            if key not in valid:
                preset = preset_of(self.model)
                raise ConfigError(f"{key}={value!r} does not apply to model {self.model!r} "
                                  f"({preset.family}); it accepts {', '.join(valid)}.")
            overrides[key] = AXES[key].canonical(AXES[key].check(value))
        return overrides

    def jit_mode(self):
        """What Keras's `jit_compile` gets: XLA is off in a deterministic run."""
        return False if self.deterministic else JIT_MODES[self.jit_compile]

    def title(self) -> str:
        """The net in the papers' words, for plot titles: "wrn-40-2, block_type B(1,3,1)"."""
        return ", ".join([self.model, *(f"{key} {plain(value)}" for key, value in
                                        self.checked_model_overrides().items())])


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A run's configuration, validated and complete: the preset's arguments merged with the
    overrides, the recipe with every field. `to_json()` is config.json's "run"."""

    model: str
    family: str  # the preset's family: the name of its builder function, e.g. wide_resnet (Preset.family)
    model_kwargs: Mapping
    input_shape: tuple
    dataset: str
    recipe: str  # the recipe's name
    recipe_fields: Recipe  # every field of it, overrides applied
    seed: int
    validation_fraction: float
    augment: bool
    max_steps_per_epoch: int | None
    strategy: str
    precision: str
    jit_compile: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def initialization(self) -> dict:
        """How the run's net starts: its family's reference code, and BN's gamma as the run sets it
        (config.json's "initialization")."""
        return INITIALIZATIONS[self.family].with_bn_gamma(self.model_kwargs.get("bn_gamma")).to_json()

    @classmethod
    def from_json(cls, run: dict) -> ResolvedRun:
        """The JSON form read back (lists back to tuples, the recipe's fields back to a Recipe)."""
        tuples = lambda mapping: {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}
        return cls(**{**run, "model_kwargs": tuples(run["model_kwargs"]), "input_shape": tuple(run["input_shape"]),
                      "recipe_fields": Recipe(**tuples(run["recipe_fields"]))})

    def configuration_id(self) -> str:
        """The run's configuration in a few words, from its content alone: a study's run id is this
        and the seed ("wrn-28-2-dropout-s42"), `ablation train --out` is the user's choice. It is
        the most specific preset its net is, each other builder argument that is not the builder's
        default (in the builder's order), then the recipe if it is not that net's own and each field
        that departs from it: "wrn-28-2-dropout", "wrn-40-2-block_type=B131",
        "wrn-10-1-dropout_rate=0.3-batch_size=32", "imagenet-resnet-34-recipe=adam-epochs=30".
        However a study module or a sweep declared it, the same run gets the same name: wrn-28-2 with
        dropout_rate 0.3 is wrn-28-2-dropout, and dropout_rate 0 is wrn-28-2. The data and the
        protocol's changes are not in it (they are the results folder's), nor the seed."""
        kwargs, defaults = _without_defaults(self.family, self.model_kwargs), _defaults(self.family)
        family = [(name, preset) for name, preset in PRESETS.items() if preset.family == self.family]
        # A preset may spell out a default (wrn-28-2's depth 28): matched against the value in effect.
        matches = [(name, preset) for name, preset in family
                   if all(kwargs.get(k, defaults.get(k)) == v for k, v in preset.kwargs.items())]
        preset_name, preset = max(matches, key=lambda item: len(item[1].kwargs),
                                  default=(self.family.replace("_", "-"), None))
        words = [preset_name, *(AXES[key].word(value) for key, value in kwargs.items()
                                if preset is None or key not in preset.kwargs)]
        own = preset or family[0][1]  # a net no preset names: its family's first preset's recipe
        if self.recipe == own.recipe:
            recipe = get_recipe(own.recipe).replace(**own.recipe_overrides)
        else:
            recipe, words = get_recipe(self.recipe), [*words, f"recipe={self.recipe}"]
        words += [AXES[field.name].word(getattr(self.recipe_fields, field.name)) for field in dataclasses.fields(recipe)
                  if getattr(self.recipe_fields, field.name) != getattr(recipe, field.name)]
        return "-".join(words)

    def departs(self, name: str) -> bool:
        """Whether axis `name` is off its default in this run: a builder argument other than its
        builder's default, a recipe field other than its axis's."""
        if AXES[name].acts_on == MODEL:
            return name in _without_defaults(self.family, self.model_kwargs)
        return is_on(name, getattr(self.recipe_fields, name))

    def setting(self, key: str):
        """A hyperparameter's value: model argument, recipe field or run field, falling back to the
        builder's default (dropout_rate 0.0 when a preset does not set it); None if it has none."""
        if key in self.model_kwargs:
            return self.model_kwargs[key]
        if key in {f.name for f in dataclasses.fields(Recipe)}:  # fields only, not Recipe's methods
            return getattr(self.recipe_fields, key)
        if key in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, key)
        return _defaults(self.family).get(key)


def run_identity(run: Mapping) -> dict:
    """What makes two runs the same experiment, from config.json's "run": everything but the preset's
    name, a builder argument at its default whether spelled out or not (a folder trained as
    wrn-28-2-dropout is resumed by a sweep's wrn-28-2 with dropout_rate 0.3), and a recipe field a
    run written before its axis existed does not record, at the axis's default (the run it trained)."""
    identity = {key: value for key, value in run.items() if key != "model"}
    if isinstance(run.get("model_kwargs"), Mapping):
        identity["model_kwargs"] = _without_defaults(run.get("family"), run["model_kwargs"])
    if isinstance(run.get("recipe_fields"), Mapping):
        identity["recipe_fields"] = {**_RECIPE_DEFAULTS, **run["recipe_fields"]}
    return identity


# A recipe field at its axis's default, as config.json holds it: what a record without the field trained.
_RECIPE_DEFAULTS = io.json_roundtrip({a.name: a.default for a in RECIPE_AXES})


def model_axes_of(model: str) -> list[str]:
    """The model axes the builder of preset `model` takes, in the table's order."""
    accepted = inspect.signature(preset_of(model).builder).parameters
    return [a.name for a in MODEL_AXES if a.name in accepted]


def _defaults(family: str) -> dict:
    """The builder's arguments and their defaults, in its order; empty for a builder this version
    does not know."""
    builder = next((preset.builder for preset in PRESETS.values() if preset.family == family), None)
    return {name: p.default for name, p in inspect.signature(builder).parameters.items()} if builder else {}


def _without_defaults(family: str, kwargs: Mapping) -> dict:
    """The builder arguments that are not its defaults, in the builder's order (compared as JSON
    holds them: config.json's lists equal the builders' tuples)."""
    defaults = _defaults(family)
    order = {name: i for i, name in enumerate(defaults)}
    kept = {key: value for key, value in kwargs.items()
            if key not in defaults or io.json_roundtrip(value) != io.json_roundtrip(defaults[key])}
    return dict(sorted(kept.items(), key=lambda item: order.get(item[0], len(order))))


@contextlib.contextmanager
def builder_arguments():
    """The builders know nothing of this framework and raise ValueError for a bad argument; a net
    built from a configuration is a function of that configuration alone, so here it is bad input."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def preset_of(model: str):
    """The preset named `model`, or a ConfigError listing the known ones."""
    with builder_arguments():
        return get_preset(model)


def build_model(run: ResolvedRun, **overrides):
    """The net of a resolved run (its preset, arguments and input shape), with `overrides`,
    e.g. num_classes from the data or the dropout rate a tuner drew."""
    with builder_arguments():
        return preset_of(run.model).build(**{**run.model_kwargs, "input_shape": run.input_shape, **overrides})
