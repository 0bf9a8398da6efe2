"""The benchmark's arithmetic from known inputs, and its JSON report."""

from __future__ import annotations

import json

import pytest

from ablation.cli import main
from ablation.run import bench
from builders import build, count_macs
from tests.helpers import run_cli

JSON_KEYS = {"images_per_second", "macs", "achieved_tflops", "matmul_dtype", "matmul_tflops",
             "matmul_float32_tflops", "mfu", "mfu_float32",
             "pipeline_images_per_second", "runner_overhead", "peak_rss_mb", "device", "strategy", "precision",
             "jit_compile"}


def test_training_flops_are_two_flops_per_mac_times_three_passes():
    # WRN-28-2: 215.8M MACs per image (conv, dense, BN and ReLU) -> 2 * 3 * 215.8M = 1.295 GFLOP
    # to train on one image; at 100 images/s that is 129.5 GFLOP/s.
    macs = count_macs(build("wrn-28-2"))
    assert bench.training_flops_per_image(macs) == 6 * macs
    assert bench.achieved_flops(macs, 100.0) == pytest.approx(129.5e9, rel=2e-3)


def test_matmul_rate_mfu_ratios_and_overhead():
    # 2048^3 multiply-adds in 0.1 s: 2 * 8.59e9 / 0.1 = 171.8 GFLOP/s.
    assert bench.matmul_flops(2048, 0.1) == pytest.approx(171.8e9, rel=1e-3)
    assert bench.utilisation(129.5e9, 171.8e9) == pytest.approx(0.7538, rel=1e-3)
    assert bench.overhead(10.5, 10.0) == pytest.approx(0.05)
    assert bench.images_per_second(128, [1.0, 1.2, 0.8, 5.0, 1.0]) == pytest.approx(128.0)  # median step


def test_loop_cost_is_amortised_over_a_real_epoch():
    # 1 s bare steps; our loop adds 2 ms a step and 0.7 s an epoch. Over CIFAR-10's 351 steps:
    # (351 * 0.002 + 0.7) / 351 = 0.4%; over 10 steps the epoch cost weighs 35 times more.
    cost = bench.LoopCost(bare_step=1.0, step_seconds=0.002, fixed_seconds=0.7)
    assert cost.overhead(351) == pytest.approx((351 * 0.002 + 0.7) / 351)
    assert cost.overhead(10) == pytest.approx((10 * 0.002 + 0.7) / 10)
    # The real epoch of the synthetic input: CIFAR-10's 50,000 training images less the 5,000 a run validates on.
    assert bench.CIFAR10_TRAIN == 45_000 and bench.CIFAR10_TRAIN // 128 == 351


@pytest.mark.slow
@pytest.mark.parametrize("precision,dtype", [("float32", "float32"), ("mixed_bfloat16", "bfloat16")])
def test_bench_json_report_measures_mfu_against_the_peak_of_the_precision_that_ran(capsys, precision, dtype):
    code = main(["bench", "--model", "wrn-10-1", "--batch-size", "16", "--timed-steps", "2", "--untimed-steps", "1",
                 "--precision", precision, "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert JSON_KEYS <= set(result) and result["deterministic"] is False
    assert result["macs"] == count_macs(build("wrn-10-1"))
    assert result["achieved_tflops"] == pytest.approx(
        6 * result["macs"] * result["images_per_second"] / 1e12)
    assert result["precision"] == precision and result["matmul_dtype"] == dtype
    assert result["mfu"] == pytest.approx(result["achieved_tflops"] / result["matmul_tflops"])
    assert result["mfu_float32"] == pytest.approx(result["achieved_tflops"] / result["matmul_float32_tflops"])
    assert (result["matmul_tflops"] == result["matmul_float32_tflops"]) == (dtype == "float32")
    assert result["images_per_second"] > 0 and result["pipeline_images_per_second"] > 0
    # The input pipeline with each data axis on (the chain on the device), and its ratio to training.
    assert set(result["augmentation_images_per_second"]) == {"mixup_alpha=1", "cutmix_alpha=1", "cutout=16",
                                                             "randaugment_ops=2"}
    for name, rate in result["augmentation_images_per_second"].items():
        assert rate > 0 and result["augmentation_ratios"][name] == pytest.approx(rate / result["images_per_second"])
    assert result["peak_rss_mb"] > 100
    assert result["jit_compile"] == "off" and result["jit_compile_requested"] == "auto"  # Keras's "auto" on a CPU
    assert result["strategy"] == "_DefaultDistributionStrategy" and result["replicas"] == 1


@pytest.mark.slow
def test_bench_measures_the_deterministic_kernels_in_their_own_process():
    # Deterministic kernels stay on for the rest of a process: measured in a fresh one.
    result = run_cli("ablation", "bench", "--model", "wrn-10-1", "--batch-size", "16", "--timed-steps", "2",
                     "--untimed-steps", "1", "--deterministic", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["deterministic"] is True and report["jit_compile"] == "off" and report["images_per_second"] > 0


def test_bench_rejects_zero_steps(capsys):
    assert main(["bench", "--model", "wrn-10-1", "--timed-steps", "0"]) == 2
    assert capsys.readouterr().err == ("error: timed_steps=0, untimed_steps=3 are not valid; expected timed_steps >= 1, "
                                       "untimed_steps >= 0.\n")


def test_the_old_spellings_of_the_step_counts_still_work_with_a_notice(capsys):
    # Scripts written before the rename (--steps, --warmup) keep working; here they reach the check.
    assert main(["bench", "--model", "wrn-10-1", "--steps", "0", "--warmup", "2"]) == 2
    err = capsys.readouterr().err
    assert "warning: --steps is deprecated; use --timed-steps" in err and "warning: --warmup is deprecated" in err
    assert "timed_steps=0, untimed_steps=2 are not valid" in err
