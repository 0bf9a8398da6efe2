"""`python -m ablation sweep`: an ablation declared on the command line, run as a study.

    python -m ablation sweep --model wrn-16-4 --vary dropout_rate=0,0.3 \
        --vary block_type="B(3,3)","B(3,1,3)" --seeds 42,43,44

Each `--vary NAME=V1,V2,...` names a model argument of the preset's builder or a field of the
recipe; the sweep is the cartesian product of the values, in the order given, and becomes a
`Study` that the same runner plans, trains, resumes, shards and reports. Commas inside the
paper's block notation, B(3,1,3), are not value separators. Every name and every value is checked
before anything trains: names against the builder and the recipe, values by resolving every run
and building each configuration's net once.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re

import keras

from ablation.core.errors import ConfigError
from ablation.run.config import MODEL_OVERRIDES, build_model, preset_of
from ablation.run.recipes import Recipe
from ablation.study.declaration import Configuration, Options, Study
from ablation.study.runner import plan, slug

# A comma at parenthesis depth 0: "B(3,3),B(3,1,3)" splits in two, not five.
_TOP_LEVEL_COMMA = re.compile(r",(?![^()]*\))")


def parse_value(text: str):
    """A value as typed: an integer, a number, true/false, or else the text itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_vary(text: str) -> tuple[str, list]:
    """`NAME=V1,V2,...` -> (NAME, [values])."""
    name, sep, values = text.partition("=")
    parts = [v.strip() for v in _TOP_LEVEL_COMMA.split(values)] if sep else []
    if not name.strip() or not parts or not all(parts):
        raise ConfigError(f"--vary {text!r} is not valid; expected NAME=VALUE,VALUE,..., e.g. dropout_rate=0,0.3 "
                          f"or block_type=B(3,3),B(3,1,3).")
    values = [parse_value(v) for v in parts]
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"--vary {text!r} repeats a value; expected distinct values.")
    return name.strip(), values


def _kind(model: str, name: str) -> str:
    """'model' or 'recipe': where a varied name goes; a one-line error naming what would be valid."""
    accepted = inspect.signature(preset_of(model).builder).parameters
    if name in MODEL_OVERRIDES and name in accepted:
        return "model"
    if name in {f.name for f in dataclasses.fields(Recipe)}:
        return "recipe"
    model_names = [k for k in MODEL_OVERRIDES if k in accepted]
    raise ConfigError(f"--vary {name}=... is not valid for {model!r}; expected a model argument "
                      f"({', '.join(model_names)}) or a recipe field ({', '.join(f.name for f in dataclasses.fields(Recipe))}).")


def sweep_study(model: str, varies: list[str], *, seeds=(42,), recipe=None, baseline=None, name=None) -> Study:
    """The Study of `--model` and the `--vary` arguments (cartesian product, in the order given)."""
    preset_of(model)  # an unknown model is a one-line error that lists the presets
    axes = [parse_vary(text) for text in varies]
    names = [n for n, _ in axes]
    if len(set(names)) != len(names):
        raise ConfigError(f"--vary names {', '.join(names)} repeat one; vary each name once.")
    kinds = {n: _kind(model, n) for n in names}
    configurations = []
    for values in itertools.product(*(v for _, v in axes)):
        setting = dict(zip(names, values, strict=True))
        configurations.append(Configuration(
            name=", ".join(f"{n}={v}" for n, v in setting.items()), model=model,
            model_overrides={n: v for n, v in setting.items() if kinds[n] == "model"},
            recipe_overrides={n: v for n, v in setting.items() if kinds[n] == "recipe"}))
    configuration_names = [c.name for c in configurations]
    if baseline is not None and baseline not in configuration_names:  # or the name's slug, as --only takes it
        baseline = next((known for known in configuration_names if slug(known) == slug(baseline)), baseline)
    return Study(name=name or slug(f"sweep-{model}-{'-'.join(names)}"),
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
