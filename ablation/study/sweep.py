"""`python -m ablation sweep`: an ablation declared on the command line, run as a study.

    python -m ablation sweep --model wrn-16-4 --vary dropout_rate=0,0.3 \
        --vary block_type="B(3,3)","B(3,1,3)" --seeds 42,43,44
    python -m ablation sweep --model wrn-16-4 --vary label_smoothing=0,0.1 --vary lr_schedule=step,cosine

Each `--vary NAME=V1,V2,...` names an axis (`python -m ablation axes` lists them): a model argument
of the preset's builder, a recipe field or a data augmentation; the sweep is the cartesian product
of the values, in the order given, and becomes a `Study` that the same runner plans, trains,
resumes, shards and reports. Commas inside parentheses, the paper's block notation B(3,1,3) or a
tuple (0.5,0.75), are not value separators. Every name and every value is checked before anything
trains: names and values by their axes, then by resolving every run and building each
configuration's net once.
"""

from __future__ import annotations

import itertools
import re

import keras

from ablation.core.choices import FOLDER_NAME
from ablation.core.errors import ConfigError
from ablation.run.axes import AXES, MODEL, RECIPE, axis, needs_error, typed
from ablation.run.config import RunConfig, build_model, model_axes_of, preset_of
from ablation.study.declaration import Configuration, Options, Study
from ablation.study.planning import plan, slug

# A comma at parenthesis depth 0: "B(3,3),B(3,1,3)" splits in two, not five.
_TOP_LEVEL_COMMA = re.compile(r",(?![^()]*\))")


def parse_vary(text: str) -> tuple[str, list]:
    """`NAME=V1,V2,...` -> (NAME, [values]), each value as its axis takes it."""
    name, sep, values = text.partition("=")
    parts = [v.strip() for v in _TOP_LEVEL_COMMA.split(values)] if sep else []
    if not name.strip() or not parts or not all(parts):
        raise ConfigError(f"--vary {text!r} is not valid; expected NAME=VALUE,VALUE,..., e.g. dropout_rate=0,0.3 "
                          f"or block_type=B(3,3),B(3,1,3).")
    try:
        varied = axis(name.strip())
        values = [varied.parse(v) for v in parts]
    except ConfigError as error:
        raise ConfigError(f"--vary {text!r}: {error}") from None
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"--vary {text!r} repeats a value; expected distinct values.")
    return varied.name, values


def _kind(model: str, name: str) -> str:
    """MODEL or RECIPE: where a varied axis goes; a one-line error naming what would be valid."""
    if AXES[name].acts_on != MODEL:
        return RECIPE  # the recipe's and the data's axes are the Recipe's fields
    if name in model_axes_of(model):
        return MODEL
    raise ConfigError(f"--vary {name}=... is not valid for {model!r}; its builder ({preset_of(model).family}) takes "
                      f"the model axes {', '.join(model_axes_of(model))}, and every recipe and data axis.")


def sweep_study(model: str, varies: list[str], *, seeds=(42,), recipe=None, baseline=None, name=None) -> Study:
    """The Study of `--model` and the `--vary` arguments (cartesian product, in the order given)."""
    preset_of(model)  # an unknown model is a one-line error that lists the presets
    axes = [parse_vary(text) for text in varies]
    names = [n for n, _ in axes]
    if len(set(names)) != len(names):
        raise ConfigError(f"--vary names {', '.join(names)} repeat one; vary each name once.")
    kinds = {n: _kind(model, n) for n in names}
    for varied, values in axes:  # an axis that acts only with another: that one varied too, or on already
        needed = AXES[varied].needs
        if needed and needed not in names and not RunConfig(model=model, recipe=recipe).resolve().departs(needed):
            raise ConfigError(f"--vary {varied}=...: {needs_error(AXES[varied], values[-1])} Vary or set {needed} too.")
    configurations = []
    for values in itertools.product(*(v for _, v in axes)):
        setting = dict(zip(names, values, strict=True))
        configurations.append(Configuration(
            name=", ".join(f"{n}={typed(v)}" for n, v in setting.items()), model=model,
            model_overrides={n: v for n, v in setting.items() if kinds[n] == MODEL},
            recipe_overrides={n: v for n, v in setting.items() if kinds[n] == RECIPE}))
    configuration_names = [c.name for c in configurations]
    if baseline is not None and baseline not in configuration_names:  # or the name's slug, as --only takes it
        baseline = next((known for known in configuration_names if slug(known) == slug(baseline)), baseline)
    default = slug(f"sweep-{model}-{'-'.join(names)}")
    if name is None and not FOLDER_NAME.fullmatch(default):
        raise ConfigError(f"the sweep's default name {default!r} ({len(default)} characters) is too long for its results "
                          f"folder; expected --name NAME, up to 100 letters, digits and '.', '_', '+', '-'.")
    return Study(name=name or default,
                 question=f"What {'does' if len(names) == 1 else 'do'} {' and '.join(names)} change in {model}?",
                 configurations=configurations,
                 varies=tuple(names), recipe=recipe, seeds=tuple(seeds), baseline=baseline)


def check_nets(study: Study, options: Options) -> None:
    """Every configuration's net built once (a value a builder refuses fails here, before training)."""
    runs = plan(study, options)
    for configuration in study.configurations:
        run = next(r for r in runs if r.configuration is configuration)
        try:
            build_model(run.resolved)
        except ConfigError as error:
            raise ConfigError(f"configuration {configuration.name!r}: {error}") from None
        finally:
            keras.backend.clear_session()
