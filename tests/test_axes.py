"""Every axis declared once and read everywhere: its declaration is whole and every builder argument
has one; each axis walks through validation, `--vary`, `ablation train --set`, the run id,
config.json, results.csv, HParams, the runs table and `--dry-run`, with one real training step
through a declared study's entry point; the new recipe and data axes train otherwise than the
reference run; and `ablation sweep` varies each of them from its default to another value."""

from __future__ import annotations

import dataclasses
import html
import inspect
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ablation.cli import build_parser, main, train_config
from ablation.core.errors import ConfigError
from ablation.run.axes import ACTS_ON, AXES, MODEL_AXES, RECIPE_AXES, folder_word, typed
from ablation.run.config import RunConfig, preset_of
from ablation.run.recipes import Recipe, get_recipe
from ablation.study.declaration import Options
from ablation.study.planning import plan
from ablation.study.sweep import sweep_study
from builders import PRESETS
from tests.helpers import ROOT

# The recipe and data axes issue 31 added, each off in the reference recipes.
NEW_AXES = ("lr_schedule", "warmup_epochs", "label_smoothing", "no_bias_decay", "ema_decay", "mixup_alpha",
            "cutmix_alpha", "cutmix_prob", "cutout", "randaugment_ops", "randaugment_magnitude")
# The model axes issue 32 added (the modern ResNet's tweaks), each off in every preset.
NEW_MODEL_AXES = ("shortcut", "stem", "bottleneck_stride", "drop_path_rate", "zero_init_residual", "se_reduction",
                  "activation", "norm")
BASE = "wrn-10-1"
# Where a model axis is walked: WRN-10-1 if its builder takes it, else the first preset whose builder does.
MODEL_OF = {a.name: next(name for name, preset in PRESETS.items() if a.name in inspect.signature(preset.builder).parameters)
            for a in MODEL_AXES if a.name not in inspect.signature(PRESETS[BASE].builder).parameters}
# The walk's recipe: batches of 32, so that a run of the tiny data takes several steps an epoch.
STUDY_RECIPE = {"batch_size": 32}


def own_value(axis, model: str):
    """The value a run of `model` has for `axis` unless told otherwise (the walk's recipe included)."""
    preset = preset_of(model)
    if axis.acts_on == "model":
        return {**{n: p.default for n, p in inspect.signature(preset.builder).parameters.items()},
                **preset.kwargs}.get(axis.name)
    recipe = get_recipe(preset.recipe).replace(**preset.recipe_overrides, **STUDY_RECIPE)
    return getattr(recipe, axis.name)


def setting(axis) -> tuple[str, dict]:
    """Where the walk puts `axis`: its model, and the axes set (its example, or its default where the
    example is the run's own value; and the axis it needs)."""
    model = MODEL_OF.get(axis.name, BASE)
    value = axis.example if axis.example != own_value(axis, model) else axis.default
    needed = {axis.needs: AXES[axis.needs].example} if axis.needs else {}
    return model, {**needed, axis.name: value}


def named_in(run_id: str, name: str, value) -> bool:
    """Whether a run id names an axis's value: by its word, or by a preset that has that value
    (residual=False on ImageNet-style ResNet-18 is imagenet-plain-18)."""
    return AXES[name].word(value) in run_id or any(
        run_id.startswith(f"{preset_name}-") and preset.kwargs.get(name) == value for preset_name, preset in PRESETS.items())


def split(values: dict) -> tuple[dict, dict]:
    """(model overrides, recipe overrides) of a dict of axis values."""
    return ({k: v for k, v in values.items() if AXES[k].acts_on == "model"},
            {k: v for k, v in values.items() if AXES[k].acts_on != "model"})


def test_every_axis_is_declared_whole_and_every_builder_argument_is_one():
    assert [f.name for f in dataclasses.fields(Recipe)] == [a.name for a in RECIPE_AXES]
    for field in dataclasses.fields(Recipe):
        assert field.default == AXES[field.name].default, field.name
    for a in AXES.values():
        assert a.acts_on in ACTS_ON and a.reference and a.summary, a.name
        assert a.check(a.example) == a.example != a.default, a.name
        assert a.parse(typed(a.example)) == a.example, a.name  # the example as a command line spells it
        if isinstance(a.example, tuple):  # as a run id spells it (0.5x0.75, 64x64x3): copied from a folder name
            assert a.parse(folder_word(a.example)) == a.example, a.name
        assert a.needs is None or a.needs in AXES, a.name
        if a.acts_on != "model":
            assert a.check(a.default) == a.default, a.name
    builders = {preset.builder for preset in PRESETS.values()}
    arguments = {name for builder in builders for name in inspect.signature(builder).parameters}
    # Every argument of a builder is an axis, but the two the run decides: the data's classes, the model's name.
    assert arguments - {"num_classes", "name"} == {a.name for a in MODEL_AXES}


@pytest.mark.parametrize("name", list(AXES))
def test_an_axis_is_checked_by_its_declaration_before_anything_trains(name):
    a = AXES[name]
    bad = {"Number": -1, "Choice": "nonsense", "Flag": "maybe", "Fractions": (0.9, 0.1), "BlockType": "B(2,3)",
           "Shape": (0, 0, 3)}[type(a.values).__name__]
    model = MODEL_OF.get(name, BASE)
    overrides, recipe = split({name: bad})
    with pytest.raises(ConfigError, match=f"^{name}=.* is not valid; expected "):
        RunConfig(model=model, model_overrides=overrides, recipe_overrides=recipe).resolve()
    with pytest.raises(ConfigError, match=f"--vary .*{name}.* is not valid"):
        sweep_study(model, [f"{name}={typed(bad)}"])
    if a.needs:  # on without the axis it needs, it changes nothing: the run is the reference run, and
        model, values = setting(a)  # asked for by --set alone it is one line
        overrides, recipe = split({name: values[name]})
        alone = RunConfig(model=model, model_overrides=overrides, recipe_overrides=recipe).resolve()
        assert alone.configuration_id() == RunConfig(model=model).resolve().configuration_id() == model
        with pytest.raises(ConfigError, match=f"without {a.needs} is not valid"):
            train_config(build_parser().parse_args(["train", "--model", model, "--out", "run",
                                                    f"--set={name}={typed(values[name])}"]))
        with pytest.raises(ConfigError, match=f"without {a.needs} is not valid.* Vary or set {a.needs} too"):
            sweep_study(model, [f"{name}={typed(values[name])}"])
        # In a product sweep the configurations where the needed axis is off are the reference run.
        study = sweep_study(model, [f"{a.needs}={typed(AXES[a.needs].default if AXES[a.needs].default is not None else 0)}"
                                    f",{typed(AXES[a.needs].example)}", f"{name}={typed(values[name])}"])
        assert [r.run_id for r in plan(study, Options())][0] == f"{model}-s42"


@pytest.mark.parametrize("name", list(AXES))
def test_an_axis_reaches_the_run_through_vary_and_set_named_in_its_id_and_config(name, tmp_path):
    a = AXES[name]
    model, values = setting(a)
    varies = [f"{n}={typed(v)}" for n, v in values.items()]
    (run,) = plan(sweep_study(model, varies), Options())
    assert named_in(run.run_id, name, values[name])
    record = run.resolved.to_json()  # config.json's "run"
    stored = record["model_kwargs" if a.acts_on == "model" else "recipe_fields"][name]
    assert json.loads(json.dumps(stored)) == json.loads(json.dumps(values[name]))
    args = build_parser().parse_args(["train", "--model", model, "--out", str(tmp_path / "run"),
                                      *(f"--set={text}" for text in varies)])
    assert train_config(args).resolve() == run.resolved  # the same run, set or varied


def test_set_refuses_an_unknown_axis_one_set_twice_and_one_its_flag_sets(tmp_path, capsys):
    common = ["train", "--model", BASE, "--out", str(tmp_path / "run")]
    for extra, message in ((["--set", "smoothing=0.1"], "'smoothing' is not an axis; expected one of depth"),
                           (["--set", "cutout=8", "--set", "cutout=16"], "--set 'cutout=16' is not valid: --set cutout"),
                           (["--epochs", "3", "--set", "epochs=4"], "--epochs 3 already sets epochs"),
                           (["--set", "label_smoothing"], "expected NAME=VALUE"),
                           (["--set", "stem=deep"], "stem='deep' does not apply to model 'wrn-10-1' (wide_resnet)")):
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_axes_lists_every_axis_with_its_reference(capsys):
    assert main(["axes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == list(AXES)
    for row in rows:
        assert {"name", "acts_on", "default", "values", "reference"} <= set(row) and row["reference"]
    listed = {row["name"]: row for row in rows}
    assert listed["label_smoothing"]["default"] == 0.0 and listed["label_smoothing"]["acts_on"] == "recipe"
    assert listed["cutout"]["acts_on"] == "data" and "uoguelph-mlrg/Cutout" in listed["cutout"]["reference"]
    assert listed["lr_schedule"]["choices"] == ["step", "cosine"]
    assert listed["learning_rate"]["default"] is None and "adam 0.001" in listed["learning_rate"]["default_text"]
    assert listed["depth"]["default_text"] == "the preset's"
    assert main(["axes"]) == 0
    text = capsys.readouterr().out
    assert all(f"  {name} " in text for name in AXES) and "in a run id: label_smoothing=0.1" in text


# ----------------------------------------------------------------------------------------------
# The walk: every axis in one declared study, trained a step or two, then read back from every export

WALK = """
import sys
from ablation.cli import study_main
from ablation.core.console import prepare_console
from ablation.study import Configuration, Study
configurations = [Configuration(name, model, model_overrides, recipe_overrides=recipe_overrides)
                  for name, model, model_overrides, recipe_overrides in {configurations!r}]
STUDY = Study(name="every-axis", question="Does each axis reach every place?", configurations=configurations,
              varies={varies!r}, recipe_overrides={recipe!r}, seeds=(42,))
prepare_console()
sys.exit(study_main(STUDY, sys.argv[1:]))
"""


def walk_configurations():
    rows = [("reference", BASE, {}, {})]
    for name, a in AXES.items():
        model, values = setting(a)
        overrides, recipe = split(values)
        rows.append((name, model, overrides, recipe))
    return rows


def _hparams(path) -> dict:
    """The hyperparameters a session of TensorBoard's HParams data holds."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    for events in path.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        return {k: v for k, v in data.session_start_info.hparams.items()}
    return {}


def _cell(value):
    """A value as results.csv and the page show it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _same(shown, value) -> bool:
    """Whether a table's cell (read back from CSV or HParams) shows `value`."""
    value = _cell(value)
    if isinstance(value, bool) or isinstance(shown, (bool, np.bool_)):
        return str(shown).lower() == str(value).lower()
    if isinstance(value, (int, float)):
        return float(shown) == float(value)
    return str(shown) == str(value)


@pytest.mark.slow
def test_every_axis_walks_through_every_place_with_a_real_training_step(easy, tmp_path):
    script = tmp_path / "every_axis.py"
    script.write_text(WALK.format(configurations=walk_configurations(), varies=tuple(AXES), recipe=STUDY_RECIPE))
    results = tmp_path / "results"
    command = [sys.executable, str(script), "--protocol", "smoke", "--epochs", "2", "--dataset", easy,
               "--results-dir", str(results), "--deterministic"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={"PYTHONPATH": str(ROOT), **_environment()})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dry = subprocess.run([*command, "--dry-run", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), **_environment()})
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = {run["configuration"]: run for run in json.loads(dry.stdout)["runs"]}
    frame = pd.read_csv(results / "results.csv")
    assert set(frame["status"]) == {"done"} and set(AXES) <= set(frame.columns)
    by_name = frame.set_index("configuration")
    page = (results / "index.html").read_text()
    histories = {name: pd.read_csv(results / "runs" / row.run_id / "history.csv") for name, row in by_name.iterrows()}
    for name, a in AXES.items():
        _, values = setting(a)
        value, row = values[name], by_name.loc[name]
        assert named_in(row.run_id, name, value), name
        if name == "epochs":  # the protocol's --epochs is the results folder's: the run id names the
            value = 2         # configuration's, the records what trained
        config = json.loads((results / "runs" / row.run_id / "config.json").read_text())["run"]
        stored = config["model_kwargs" if a.acts_on == "model" else "recipe_fields"][name]
        assert stored == json.loads(json.dumps(_cell(value))), name
        assert _same(row[name], value), (name, row[name])  # results.csv
        assert planned[name][name] == json.loads(json.dumps(_cell(value))), name  # --dry-run --json
        hparam = _hparams(results / "hparams" / row.run_id)[name]
        shown = hparam.bool_value if hparam.HasField("bool_value") else (
            hparam.number_value if hparam.HasField("number_value") else hparam.string_value)
        assert _same(shown, value), (name, shown)
        assert f"<th>{html.escape(name)}</th>" in page, name  # the runs table has the axis's column
        assert len(histories[name]) == 2, name  # trained: two epochs
        if name == "lr_schedule":  # a cosine run's history follows the closed form, lr0 (1 + cos(pi t / T)) / 2
            steps = json.loads((results / "runs" / row.run_id / "config.json").read_text())["data"]["steps_per_epoch"]
            t = (histories[name]["epoch"] - 1) * steps
            np.testing.assert_allclose(histories[name]["learning_rate"],
                                       0.05 * (1 + np.cos(np.pi * t / (len(histories[name]) * steps))), rtol=1e-5)
        if name in NEW_AXES or (name in NEW_MODEL_AXES and MODEL_OF.get(name, BASE) == BASE):
            # trains (or, the EMA, validates) otherwise than the run it departs from
            departs_from = histories[a.needs if a.needs else "reference"]
            losses = ["loss", "val_loss"]
            assert not histories[name][losses].equals(departs_from[losses]), name


def _environment():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


# ----------------------------------------------------------------------------------------------
# What the reviewer runs: a sweep of each new axis from its default to another value


@pytest.mark.long
@pytest.mark.parametrize("name", NEW_AXES + NEW_MODEL_AXES)
def test_a_sweep_of_each_new_axis_trains_both_runs_differently(name, easy, tmp_path):
    a = AXES[name]
    model, values = setting(a)
    other, default = values[name], a.default if a.acts_on != "model" else own_value(a, model)
    varies = ["--vary", f"{name}={typed(default)},{typed(other)}"]
    if a.needs:  # held at a value that lets the axis act
        varies += ["--vary", f"{a.needs}={typed(AXES[a.needs].example)}"]
    results = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "ablation", "sweep", "--model", model, *varies, "--protocol", "smoke",
                           "--epochs", "2", "--dataset", easy, "--results-dir", str(results), "--deterministic"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    frame = pd.read_csv(results / "results.csv")
    assert len(frame) == 2 and set(frame["status"]) == {"done"}
    reference, varied = frame.iloc[0], frame.iloc[1]
    assert a.word(other) in varied.run_id and a.word(other) not in reference.run_id
    configs = [json.loads((results / "runs" / run_id / "config.json").read_text())["run"]
               for run_id in frame["run_id"]]
    if a.acts_on == "model":  # the preset's own value is not spelled out; the other is
        assert name not in configs[0]["model_kwargs"] or configs[0]["model_kwargs"][name] == default
        assert configs[1]["model_kwargs"][name] == json.loads(json.dumps(_cell(other)))
    else:
        assert [c["recipe_fields"][name] for c in configs] == [a.default, json.loads(json.dumps(_cell(other)))]
    # Trains otherwise (the EMA: validates otherwise; a schedule may first differ in the last update).
    losses = [pd.read_csv(results / "runs" / run_id / "history.csv")[["loss", "val_loss"]] for run_id in frame["run_id"]]
    assert not losses[0].equals(losses[1])
    assert not np.isclose(varied.test_loss, reference.test_loss, rtol=0, atol=1e-9)


def test_a_run_recorded_before_the_new_axes_is_the_same_run_and_keeps_its_id(tmp_path):
    from ablation.core import io, layout, records
    from ablation.run.config import run_identity

    resolved = RunConfig(model="wrn-28-2-dropout").resolve()
    before = json.loads(json.dumps(resolved.to_json()))
    for name in NEW_AXES:  # config.json of a run trained before these axes existed
        del before["recipe_fields"][name]
    io.write_json(tmp_path / layout.CONFIG_FILE, {"run": before})
    records.check_same_run(tmp_path, resolved.to_json(), run_identity)  # resumed, not refused
    assert resolved.configuration_id() == "wrn-28-2-dropout"
    assert type(resolved).from_json(before) == resolved  # read back at the axes' defaults
    smoothed = RunConfig(model="wrn-28-2-dropout", recipe_overrides={"label_smoothing": 0.1}).resolve()
    with pytest.raises(ConfigError, match=r"holds a different run \(recipe_fields"):
        records.check_same_run(tmp_path, smoothed.to_json(), run_identity)
