"""`python -m ablation sweep`: the expansion of --vary, its errors before anything trains, and a
sweep end to end through the study runner."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from ablation.cli import main
from ablation.core import io, layout, records
from ablation.core.errors import ConfigError
from ablation.report import tables
from ablation.run.config import RunConfig, run_identity
from ablation.statistics import compare_all
from ablation.study import Configuration, Options, Study, seeding
from ablation.study.planning import plan
from ablation.study.runner import run_study
from ablation.study.sweep import check_nets, parse_vary, sweep_study
from studies import block_types, deepening_factor, depth_vs_width


def test_values_are_typed_and_the_block_notation_keeps_its_commas():
    assert parse_vary("dropout_rate=0,0.3") == ("dropout_rate", [0, 0.3])
    assert parse_vary("block_type=B(3,3),B(3,1,3)") == ("block_type", ["B(3,3)", "B(3,1,3)"])
    assert parse_vary("nesterov=true,false") == ("nesterov", [True, False])
    assert parse_vary(" depth = 16, 22 ") == ("depth", [16, 22])


@pytest.mark.parametrize("text", ["dropout_rate", "dropout_rate=", "=0,1", "dropout_rate=0,,1", "depth=16,16"])
def test_a_malformed_vary_is_a_one_line_error_naming_it(text):
    with pytest.raises(ConfigError, match="--vary"):
        parse_vary(text)


def test_the_sweep_is_the_cartesian_product_of_model_arguments_and_recipe_fields():
    study = sweep_study("wrn-16-4", ["dropout_rate=0,0.3", "block_type=B(3,3),B(3,1,3)", "learning_rate=0.1,0.05"],
                        seeds=(42, 43))
    assert len(study.configurations) == 8 and study.varies == ("dropout_rate", "block_type", "learning_rate")
    first, last = study.configurations[0], study.configurations[-1]
    assert first.name == "dropout_rate=0, block_type=B(3,3), learning_rate=0.1"
    assert dict(last.model_overrides) == {"dropout_rate": 0.3, "block_type": "B(3,1,3)"}
    assert dict(last.recipe_overrides) == {"learning_rate": 0.05}
    assert study.baseline_name == first.name and study.name == "sweep-wrn-16-4-dropout-rate-block-type-learning-rate"
    # The baseline by its label or by the label's slug.
    assert sweep_study("wrn-16-4", ["dropout_rate=0,0.3"], baseline="dropout-rate-0-3").baseline == "dropout_rate=0.3"


@pytest.mark.parametrize("model,varies,message", [
    ("wrn-16-4", ["dropout=0,0.3"], "--vary 'dropout=0,0.3': 'dropout' is not an axis; expected one of depth, "),
    ("resnet-20", ["block_type=B(3,3),B(1,3,1)"], "--vary block_type=... is not valid for 'resnet-20'; its builder "
                                                  "(cifar_resnet) takes the model axes depth, bn_momentum"),
    ("wrn-16-4", ["dropout_rate=0,1.5"], "--vary 'dropout_rate=0,1.5': dropout_rate=1.5 is not valid; expected a number "
                                         "in [0, 1)"),
    ("wrn-16-4", ["lr_schedule=step,linear"], "lr_schedule='linear' is not valid; expected one of step, cosine"),
    ("wrn-16-4", ["depth=16,22", "depth=28"], "repeat one"),
    ("wrn-99-9", ["depth=16,22"], "wrn-99-9"),
])
def test_unknown_names_are_refused_before_anything_trains(model, varies, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sweep_study(model, varies)


def test_a_value_the_builder_refuses_fails_before_training_naming_its_configuration():
    study = sweep_study("wrn-10-1", ["depth=10,11"])  # a positive integer (the axis), not 6N+4 (the builder)
    with pytest.raises(ConfigError, match=r"configuration 'depth=11': depth=11 is not valid for a Wide ResNet"):
        check_nets(study, Options())


def test_a_bad_sweep_on_the_command_line_is_one_line_and_trains_nothing(tmp_path, capsys):
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "block_type=B(3,3),B(2,3)", "--results-dir",
                 str(tmp_path / "bad")])
    assert code == 2 and "B(2,3)" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("name", ["../outside", "<script>alert(1)</script>", "a/b", ".hidden", "two\nlines"])
def test_a_name_that_is_not_a_folder_name_is_refused_in_one_line(name, tmp_path, capsys):
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--name", name, "--results-dir",
                 str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and f"name={name!r} is not valid; expected a folder name" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------------------------
# Run ids: what a run is, however it was declared


def run_ids(study, **options) -> set[str]:
    return {run.run_id for run in plan(study, Options(**options))}


@pytest.mark.parametrize("module,model,varies", [
    (depth_vs_width, "wrn-28-2", ["dropout_rate=0,0.3"]),  # the module names wrn-28-2-dropout, a preset
    (block_types, "wrn-40-2", ["block_type=B(3,1),B(1,3,1)"]),
    (deepening_factor, "wrn-40-2", ["block_type=B(3,3,3)", "blocks_per_group=4"]),
])
def test_a_configuration_of_a_study_module_has_the_same_run_id_in_a_sweep(module, model, varies):
    swept = run_ids(sweep_study(model, varies, seeds=module.STUDY.seeds, recipe=module.STUDY.recipe))
    assert swept and swept <= run_ids(module.STUDY)
    # The protocol is the results folder's, not the run's.
    assert run_ids(module.STUDY, protocol="paper", epochs=2) == run_ids(module.STUDY)


@pytest.mark.parametrize("model,overrides,recipe,recipe_overrides,name", [
    ("wrn-28-2", {"dropout_rate": 0.3}, None, {}, "wrn-28-2-dropout"),
    ("wrn-28-2", {"dropout_rate": 0}, None, {}, "wrn-28-2"),  # the builder's default is no change
    ("wrn-40-2", {"dropout_rate": 0.3, "block_type": "B(1, 3,1)"}, None, {}, "wrn-40-2-block_type=B131-dropout_rate=0.3"),
    ("wrn-28-2", {"depth": 22, "block_type": "B(3,1,3)"}, None, {},
     "wide-resnet-depth=22-widen_factor=2-block_type=B313"),  # no preset is WRN-22-2
    ("resnet-110", {}, None, {}, "resnet-110"),  # its warmup is its paper's recipe
    ("resnet-110", {"shortcut": "projection"}, None, {}, "resnet-110-projection-recipe=he-warmup_steps=400"),
    ("resnet-20", {}, "wrn", {}, "resnet-20-recipe=wrn"),
    ("wrn-10-1", {}, None, {"learning_rate": 0.05, "epochs": 200}, "wrn-10-1-learning_rate=0.05"),
    ("imagenet-resnet-18", {"input_shape": (64, 64, 3)}, None, {}, "imagenet-resnet-18-input_shape=64x64x3"),
])
def test_a_run_is_named_by_its_content(model, overrides, recipe, recipe_overrides, name):
    config = RunConfig(model=model, model_overrides=overrides, recipe=recipe, recipe_overrides=recipe_overrides)
    assert config.resolve().configuration_id() == name


def test_the_same_run_declared_two_ways_is_one_identity_and_a_folder_accepts_either(tmp_path):
    as_preset = RunConfig(model="wrn-28-2-dropout").resolve().to_json()
    as_override = RunConfig(model="wrn-28-2", model_overrides={"dropout_rate": 0.3}).resolve().to_json()
    other = RunConfig(model="wrn-28-2", model_overrides={"dropout_rate": 0.4}).resolve().to_json()
    assert run_identity(as_preset) == run_identity(as_override) != run_identity(other)
    io.write_json(tmp_path / layout.CONFIG_FILE, {"run": as_preset})
    records.check_same_run(tmp_path, as_override, run_identity)  # resumed, not refused
    with pytest.raises(ConfigError, match=r"holds a different run \(model_kwargs .*'dropout_rate': 0.3.* -> .*0.4"):
        records.check_same_run(tmp_path, other, run_identity)


def test_two_configurations_that_are_the_same_run_are_refused():
    with pytest.raises(ConfigError, match=r"'dropout_rate=0' and 'dropout_rate=0.0' are the same run \(wrn-10-1\)"):
        plan(sweep_study("wrn-10-1", ["dropout_rate=0,0.0"]), Options())


@pytest.mark.slow
def test_a_sweep_runs_every_configuration_and_seed_as_a_study(easy, tmp_path, capsys):
    results = tmp_path / "sweep"
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "42,43,44",
                 "--preset", "smoke", "--epochs", "1", "--dataset", easy, "--results-dir", str(results)])
    assert code == 0
    frame = pd.read_csv(results / "results.csv")
    assert len(frame) == 6 and set(frame["status"]) == {"done"} and sorted(set(frame["seed"])) == [42, 43, 44]
    assert sorted(set(frame["dropout_rate"])) == [0.0, 0.3]
    comparisons = pd.read_csv(results / "comparisons.csv")
    assert list(comparisons["configuration"]) == ["dropout_rate=0.3"] and comparisons["seeds"].iloc[0] == 3
    assert comparisons["ci_low"].iloc[0] <= comparisons["mean_difference"].iloc[0] <= comparisons["ci_high"].iloc[0]
    summary = (results / "summary.md").read_text()
    assert "- dropout_rate=0.3 " in summary and "95% CI" in summary
    assert r"\toprule" in (results / "results.tex").read_text()
    assert len([p for p in (results / "hparams").iterdir() if p.is_dir()]) == 6
    assert json.loads((results / "study.json").read_text())["baseline"] == "dropout_rate=0"
    # Calling it again trains nothing: the same run ids, every one found done.
    capsys.readouterr()
    assert main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "42,43,44",
                 "--preset", "smoke", "--epochs", "1", "--dataset", easy, "--results-dir", str(results)]) == 0
    assert capsys.readouterr().out.count("done, skipped") == 6
    # A study module declaring the same configurations finds them done: the same run ids.
    declared = Study(name="declared", question="Does dropout help WRN-10-1?", varies=("dropout_rate",),
                     seeds=(42, 43, 44),
                     configurations=[Configuration("WRN-10-1", "wrn-10-1"),
                                     Configuration("WRN-10-1-dropout", "wrn-10-1", {"dropout_rate": 0.3})])
    lines = []
    options = Options(protocol="smoke", epochs=1, dataset=easy, seeds=(42, 43, 44))
    assert run_study(declared, options, results_dir=results, log=lines.append) == 0
    assert sum("done, skipped" in line for line in lines) == 6


@pytest.mark.slow
def test_seeds_auto_trains_what_the_looks_need_once_across_workers_and_a_second_call_nothing(easy, tmp_path,
                                                                                          capsys):
    results = tmp_path / "auto"
    args = ["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "auto", "--max-seeds", "4",
            "--protocol", "smoke", "--epochs", "1", "--dataset", easy, "--results-dir", str(results)]
    assert main([*args, "--parallel", "2"]) == 0
    out = capsys.readouterr().out
    study, frame = tables.collect_results(results)
    frame = tables.runs_shown(frame, seeding.next_look(study, frame))
    assert study.seeding == records.Seeding(auto=True, sequence=(42, 43, 44, 45), looks=(3, 4))
    assert set(frame["status"]) == {"done"}
    # What was trained is what the decision, replayed from the records, needed: 3 seeds each, and
    # the fourth for both where the first look left the comparison open.
    decided = compare_all(tables.errors_by_configuration(frame, study), "dropout_rate=0",
                          looks=[[42, 43, 44]])[0].decided
    assert sorted(set(frame["seed"])) == ([42, 43, 44] if decided else [42, 43, 44, 45])
    assert len(frame) == 2 * frame["seed"].nunique()
    for run_id in frame["run_id"]:  # each run trained once, by one of the two workers
        assert out.count(f"{run_id}: test accuracy") == 1, run_id
    summary = (results / "summary.md").read_text()
    assert "**Seeds.** `--seeds auto`: looks after 3, 4 seeds" in summary and "stopped: " in summary
    assert pd.read_csv(results / "comparisons.csv")["seeds"].iloc[0] == frame["seed"].nunique()
    # Decided or spent: a second call derives the same from the folders and trains nothing.
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "test accuracy" not in again and "seeding has stopped" in again
    assert main([*args, "--dry-run"]) == 0
    assert f"these are the runs trained and those the next look needs ({len(frame)})" in capsys.readouterr().out


def test_seeds_auto_is_refused_with_a_budget_below_the_first_look(tmp_path, capsys):
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "auto", "--max-seeds", "2",
                 "--results-dir", str(tmp_path), "--dry-run"])
    assert code == 2
    assert "--max-seeds 2 is not valid; expected 3 (the seeds of the first look) to 1000" in capsys.readouterr().err


def test_seeds_auto_is_refused_with_a_budget_beyond_what_a_verdict_counts(tmp_path, capsys):
    # 10000 took the whole machine's memory (the looks' null studies, held at once) before it was refused.
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "auto", "--max-seeds",
                 "10000", "--results-dir", str(tmp_path), "--dry-run"])
    assert code == 2
    assert "--max-seeds 10000 is not valid; expected 3 (the seeds of the first look) to 1000" in capsys.readouterr().err


@pytest.mark.slow
def test_run_ids_longer_than_a_folder_name_takes_end_in_a_hash_and_train(easy, tmp_path):
    # 60 milestones spell a run id of over 300 bytes: it passed the plan and the dry run, then the first
    # run failed with "File name too long". Two that differ only at their end stay two runs.
    many = ",".join(f"0.{i:02d}" for i in range(1, 60))
    results = tmp_path / "long"
    assert main(["sweep", "--model", "wrn-10-1", "--vary", f"lr_milestones=({many}),({many},0.61)", "--seeds", "42",
                 "--protocol", "smoke", "--epochs", "1", "--dataset", easy, "--results-dir", str(results)]) == 0
    frame = pd.read_csv(results / "results.csv")
    assert len(set(frame["run_id"])) == 2 and set(frame["status"]) == {"done"}
    assert all(len(run_id.encode()) <= 255 - len(".stale-10.tmp-4194304") for run_id in frame["run_id"])
    assert all(re.fullmatch(r"wrn-10-1-lr_milestones=0\.01x0\.02x.*-[0-9a-f]{12}-s42", run_id)
               for run_id in frame["run_id"])


def test_a_default_sweep_name_too_long_for_a_folder_asks_for_name(tmp_path, capsys):
    varies = [f"--vary={name}=0.1,0.2" for name in ("dropout_rate", "label_smoothing", "weight_decay", "mixup_alpha",
                                                  "cutmix_alpha", "drop_path_rate", "ema_decay", "learning_rate")]
    assert main(["sweep", "--model", "wrn-10-1", *varies, "--results-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is too long for its results folder; expected --name NAME" in err
