"""benchmarks/vs_pytorch.py: its PyTorch WRN is the same net as ours, it times both sides, and it
says so where PyTorch is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builders import build, count_params
from tests.helpers import make_npz

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "vs_pytorch.py"


def vs_pytorch(*args, hide_torch=False):
    # Hiding PyTorch: a None entry in sys.modules makes `import torch` raise ImportError.
    prelude = "import sys; sys.modules['torch'] = None; " if hide_torch else ""
    code = f"{prelude}import runpy; sys.argv = ['vs_pytorch.py', *{list(args)!r}]; " \
           f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", "import sys; " + code], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("name", ["wrn-10-1", "wrn-28-2"])
def test_the_pytorch_wrn_has_our_builders_parameter_count(name):
    pytest.importorskip("torch", reason="PyTorch is optional; the benchmark needs it")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from vs_pytorch import wide_resnet
    finally:
        sys.path.remove(str(SCRIPT.parent))
    depth, widen_factor = map(int, name.split("-")[1:])
    theirs = sum(p.numel() for p in wide_resnet(depth, widen_factor).parameters())
    assert theirs == count_params(build(name))["trainable_params"]


@pytest.mark.long  # the benchmark end to end, on both sides
def test_times_pytorch_and_our_bench_for_each_precision():
    pytest.importorskip("torch", reason="PyTorch is optional; the benchmark needs it")
    done = vs_pytorch("--model", "wrn-10-1", "--batch-size", "8", "--timed-steps", "2", "--untimed-steps", "1",
                      "--rounds", "1", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["precision"] for row in rows] == ["float32", "mixed_bfloat16"]
    for row in rows:
        assert row["pytorch_images_per_second"] > 0 and row["ours_images_per_second"] > 0
        assert row["ratio"] == pytest.approx(row["ours_images_per_second"] / row["pytorch_images_per_second"])
    assert rows[1]["ours_matmul_dtype"] == "bfloat16" and "autocast bfloat16" in rows[1]["pytorch"]


@pytest.mark.slow
def test_says_so_where_pytorch_is_not_installed():
    done = vs_pytorch("--model", "wrn-10-1", hide_torch=True)
    assert done.returncode == 1 and "PyTorch is not installed" in done.stderr and not done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [(["--model", "resnet-110"], "--model 'resnet-110' is not valid"),
                                          (["--precision", "float64"], "--precision float64 is not valid"),
                                          (["--rounds", "0"], "--rounds 0 is not valid")])
def test_bad_arguments_are_one_line_errors(args, message):
    done = vs_pytorch(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------------------------
# benchmarks/train_vs_pytorch.py: ResNet training against an independent PyTorch run

TRAIN_SCRIPT = ROOT / "benchmarks" / "train_vs_pytorch.py"


def train_script():
    sys.path.insert(0, str(TRAIN_SCRIPT.parent))
    try:
        import train_vs_pytorch
    finally:
        sys.path.remove(str(TRAIN_SCRIPT.parent))
    return train_vs_pytorch


@pytest.mark.parametrize("name", ["resnet-20", "resnet-56"])
def test_the_pytorch_cifar_resnet_is_ours_and_starts_as_fb_resnet_torch(name):
    torch = pytest.importorskip("torch", reason="PyTorch is optional; the benchmark needs it")
    torch.manual_seed(0)
    theirs = train_script().cifar_resnet(int(name.split("-")[1]))
    assert sum(p.numel() for p in theirs.parameters()) == count_params(build(name))["trainable_params"]
    for module in theirs.modules():
        if isinstance(module, torch.nn.Conv2d):  # ConvInit: normal(0, sqrt(2 / (k * k * out)))
            expected = (2.0 / (module.kernel_size[0] * module.kernel_size[1] * module.out_channels)) ** 0.5
            assert module.weight.std().item() == pytest.approx(expected, rel=0.2)
        elif isinstance(module, torch.nn.BatchNorm2d):
            assert (module.weight == 1).all() and (module.bias == 0).all()
        elif isinstance(module, torch.nn.Linear):
            assert (module.bias == 0).all()


@pytest.mark.long  # the benchmark end to end, on both sides
def test_trains_both_sides_from_the_same_split_and_reports_every_seed(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is optional; the benchmark needs it")
    dataset = make_npz(tmp_path / "easy.npz", n_train=1024, n_test=128)
    done = subprocess.run([sys.executable, str(TRAIN_SCRIPT), "--model", "resnet-20", "--dataset", dataset,
                           "--epochs", "2", "--seeds", "3", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert (row["model"], row["epochs"], row["seed"]) == ("resnet-20", 2, 3)
    for side in ("pytorch", "ours"):  # 14 steps learn the easy 4-class problem (chance: 0.25) on both sides
        assert row[side]["test_accuracy"] > 0.5, row
    # The same 10% held out of the same 1,024 images: both train on 921, in 7 batches of 128 an epoch.
    x, y, *_ = train_script().load_split(tmp_path / "easy.npz", 3)
    assert len(x) == len(y) == 1024 - 102
