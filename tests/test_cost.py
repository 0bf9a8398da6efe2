"""The cost model: its arithmetic on known inputs, the profile's cache, and --dry-run's figures
through the command line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ablation.cli import main, study_main
from ablation.run.config import RunConfig
from ablation.study import cost
from tests.tiny_study import STUDY as TINY

PROFILE = cost.Profile(machine="test", startup=2.0, startup_per_layer=0.1, rates=((2e6, 1e11), (8e6, 4e11)))


def test_images_follow_the_pipeline_validation_batches_and_smoke_cap():
    run = RunConfig(model="wrn-28-2").resolve()  # the WRN recipe: 200 epochs of batch 128, 10% validation
    assert cost.images(run, (50_000, 10_000)) == (351 * 128 * 200, 5_000 * 200 + 10_000)
    smoke = RunConfig(model="wrn-28-2", recipe_overrides={"epochs": 3}, max_steps_per_epoch=10).resolve()
    assert cost.images(smoke, (5_085, 1_017)) == (10 * 128 * 3, 508 * 3 + 1_017)


def test_an_estimate_is_compute_at_the_profiles_rate_plus_its_start_up():
    run = RunConfig(model="wrn-28-2", recipe_overrides={"epochs": 1}).resolve()
    net = cost.Net(macs=4e8, layers=50)  # 8M MACs per layer: the profile's upper rate
    estimate = cost.estimate(run, net, (50_000, 10_000), PROFILE)
    flops = 2 * 4e8 * (3 * 351 * 128 + 5_000 + 10_000)
    assert estimate.flops == pytest.approx(flops)
    assert estimate.seconds == pytest.approx(2.0 + 0.1 * 50 + flops / 4e11)
    for gpu, peaks in cost.GPU_PEAKS.items():
        utilisation = cost.gpu_utilisation(net)
        assert estimate.gpu_hours[gpu] == pytest.approx((flops / (peaks["float32"] * utilisation) + 7.0) / 3600)
    assert estimate.gpu_hours["H100"] < estimate.gpu_hours["A100"]


def test_the_rate_is_log_log_between_the_reference_nets_and_constant_outside():
    assert PROFILE.rate(cost.Net(macs=1e6, layers=1)) == pytest.approx(1e11)  # thinner than both
    assert PROFILE.rate(cost.Net(macs=1e9, layers=1)) == pytest.approx(4e11)  # wider than both
    assert PROFILE.rate(cost.Net(macs=4e6, layers=1)) == pytest.approx(2e11)  # halfway in log: the geometric mean


def test_gpu_utilisation_grows_with_the_work_per_layer_within_its_bounds():
    thin, wide = cost.Net(macs=2.5e8, layers=110), cost.Net(macs=5.25e9, layers=28)  # ResNet-110, WRN-28-10
    assert 0.05 <= cost.gpu_utilisation(thin) <= 0.07
    assert 0.45 <= cost.gpu_utilisation(wide) <= 0.5
    assert cost.gpu_utilisation(cost.Net(macs=1e3, layers=10)) == 0.05


def test_a_net_is_counted_by_its_weighted_layers_and_macs():
    net = cost.net_of(RunConfig(model="resnet-20").resolve())
    assert net.layers == 20  # 19 convolutions (zero-padded shortcuts have none) and the classifier
    assert net.macs == pytest.approx(41e6, rel=0.05)  # He et al.'s 41M for ResNet-20


def test_dataset_sizes_are_read_without_the_images(easy):
    assert cost.dataset_splits(easy) == (256, 64)
    assert cost.dataset_splits("cifar10", "/nonexistent") == (50_000, 10_000)  # known, not downloaded
    assert cost.dataset_splits("imagenet2012", "/nonexistent") == (1_281_167, 50_000)  # not CIFAR-10's


def test_a_size_the_suite_does_not_know_is_assumed_saying_so(tmp_path):
    with pytest.warns(UserWarning, match="'food101' is not prepared here .* assumes CIFAR-10's 50,000 training"):
        assert cost.dataset_splits("food101", str(tmp_path)) == (50_000, 10_000)


def test_a_dry_run_refuses_a_dataset_the_run_would_refuse(tmp_path, capsys):
    # It used to price CIFAR-10 and exit 0; the real command failed at its first run.
    assert study_main(TINY, ["--dataset", "nosuchdataset", "--results-dir", str(tmp_path), "--dry-run", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "dataset 'nosuchdataset' is not a tensorflow-datasets name" in captured.err


def test_the_profile_is_measured_once_per_machine_and_then_read(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATION_CACHE", str(tmp_path))
    measured = []

    def measure(machine):
        measured.append(machine)
        return dataclasses.replace(PROFILE, machine=machine)

    monkeypatch.setattr(cost, "measure_profile", measure)
    lines = []
    first, second = cost.machine_profile(lines.append), cost.machine_profile(lines.append)
    assert first == second and len(measured) == 1 and len(lines) == 1 and "measuring this machine once" in lines[0]
    assert first.machine == cost.machine_name() and len(list(tmp_path.glob("profile-*.json"))) == 1
    # Another machine (or TensorFlow) is measured again.
    monkeypatch.setattr(cost, "machine_name", lambda: "another machine")
    assert cost.machine_profile(lines.append).machine == "another machine" and len(measured) == 2


@pytest.mark.long  # about 40 s: two nets trained, a process started, a report written
def test_the_profile_measures_this_machine_for_real():
    profile = cost.measure_profile("here")
    assert profile.startup_per_layer > 0 and all(rate > 1e9 for _, rate in profile.rates)
    assert profile.study_overhead > 1  # a process that imports TensorFlow, and a report's plots and pages
    assert profile.startup_seconds(cost.Net(macs=1e8, layers=110)) > profile.startup_seconds(cost.Net(1e8, 20))


@pytest.mark.slow
def test_dry_run_json_gives_the_cost_of_every_run_and_the_total(easy, tmp_path, capsys):
    code = main(["sweep", "--model", "wrn-10-1", "--vary", "dropout_rate=0,0.3", "--seeds", "42,43",
                 "--protocol", "smoke", "--dataset", easy, "--results-dir", str(tmp_path / "s"), "--dry-run", "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs_to_train"] == len(plan["runs"]) == 4 and not (tmp_path / "s").exists()
    assert isinstance(plan["estimated_seconds"], float) and plan["estimated_seconds"] > 0
    assert set(plan["gpu_hours"]) >= {"A100", "H100"}
    # The runs, and the study's process start and tables at the end.
    overhead = cost.machine_profile().study_overhead
    assert overhead > 0
    assert plan["estimated_seconds"] == pytest.approx(overhead + sum(run["estimated_seconds"] for run in plan["runs"]))
    assert plan["training_flops"] == pytest.approx(sum(run["training_flops"] for run in plan["runs"]))
    # 2 FLOPs per MAC, 3 passes per training image: the smoke protocol's 3 epochs of one batch of 128
    # (230 training images), 26 validation images per epoch and 64 test images, at WRN-10-1's MACs.
    run = plan["runs"][0]
    macs = cost.net_of(RunConfig(model="wrn-10-1", dataset=easy).resolve()).macs
    assert run["training_flops"] == pytest.approx(2 * macs * (3 * 3 * 128 + 3 * 26 + 64))


def test_the_plain_dry_run_prints_a_cost_line(easy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost, "machine_profile", lambda log=print: PROFILE)
    assert study_main(TINY, ["--protocol", "smoke", "--dataset", easy, "--results-dir", str(tmp_path), "--dry-run"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cost: "))
    assert "4 of 4 runs to train" in line and "on this machine" in line
    assert "A100 GPU-hours" in line and "H100 GPU-hours" in line


@pytest.mark.slow
def test_a_study_counts_down_what_is_left_and_the_last_run_has_nothing_after_it(easy, tmp_path):
    from ablation.study import Options
    from ablation.study.runner import run_study

    lines = []
    assert run_study(TINY, Options(protocol="smoke", dataset=easy, seeds=(1,), epochs=1), results_dir=tmp_path,
                     log=lines.append) == 0
    lefts = [int(line.split(" for the ")[1].split()[0]) for line in lines if "left (cost model)" in line]
    assert lefts == [2, 1]
    epochs = [line for line in lines if ": epoch 1/1:" in line]
    assert "left in the study" in epochs[0] and "left in the study" not in epochs[-1], epochs
