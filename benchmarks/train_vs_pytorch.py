"""He et al.'s CIFAR ResNet trained by us and by an independent PyTorch run, from the reference's start.

    python benchmarks/train_vs_pytorch.py                                  # ResNet-56, 10 epochs, seeds 42,43
    python benchmarks/train_vs_pytorch.py --model resnet-20 --epochs 10 --seeds 42 --json

PyTorch's side is written here from fb.resnet.torch (models/resnet.lua, the code behind He et al.'s
CIFAR table): conv-BN-ReLU basic blocks, option A's strided zero-padded identity where the shape
changes, and its initialisation, `ConvInit` (every conv normal(0, sqrt(2 / (k * k * out)))),
`BNInit` (gamma 1, beta 0) and the classifier's bias zeroed (its weight nn.Linear's U(+-1/sqrt(in))).
It trains with the `he` recipe as PyTorch users write it: SGD 0.1, momentum 0.9, weight decay 1e-4
(PyTorch's, coupled), the lr /10 after 50% and 75% of the epochs (MultiStepLR), batch 128 with the
last partial batch dropped, 4-pixel reflect padding, a random 32x32 crop and a horizontal flip per
image; BN momentum 0.1, epsilon 1e-5. It holds out the same 10% of the training split for validation
as our run of that seed (the same NumPy permutation), normalises with the same per-channel statistics,
and tests the final epoch's weights on the test split once. Our side is `python -m ablation train`
in a child process. Seeds alternate PyTorch and ours.

The same seed draws other numbers in the two frameworks: compare the spread over seeds, not a seed.
PyTorch is not a requirement of the suite: where it is not installed this says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: this folder's shared helpers, as a package
from benchmarks.common import cpu_model, require_torch  # noqa: E402

WIDTHS = (16, 32, 64)


def cifar_resnet(depth: int, num_classes: int = 10):
    """fb.resnet.torch's CIFAR ResNet-depth (6n+2), option A shortcuts, initialised as it does."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            y = self.bn2(self.conv2(nn.functional.relu(self.bn1(self.conv1(x)))))
            shortcut = x[:, :, ::self.stride, ::self.stride]  # nn.SpatialAveragePooling(1, 1, stride, stride)
            if self.extra:  # nn.Concat with a MulConstant(0) copy: zero channels appended
                shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
            return nn.functional.relu(y + shortcut)

    n = (depth - 2) // 6
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for width, stride in zip(WIDTHS, (1, 2, 2), strict=True):
        for b in range(n):
            layers.append(Block(cin, width, stride if b == 0 else 1))
            cin = width
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):  # ConvInit: n = kW * kH * nOutputPlane
            n_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / n_out))
        elif isinstance(module, nn.BatchNorm2d):  # BNInit
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):  # its weight keeps nn.Linear's reset; the bias is zeroed
            nn.init.zeros_(module.bias)
    return model


def load_split(path: Path, seed: int, validation_fraction: float = 0.1):
    """(train images, train labels, test images, test labels, number of classes), normalised as our
    pipeline does: the same seeded validation split left out, per-channel statistics of the remaining
    training images."""
    with np.load(path) as archive:
        x, y = archive["x_train"], archive["y_train"].reshape(-1).astype(np.int64)
        x_test, y_test = archive["x_test"], archive["y_test"].reshape(-1).astype(np.int64)
        num_classes = len(archive["label_names"]) if "label_names" in archive else int(max(y.max(), y_test.max())) + 1
    num_validation = int(round(len(x) * validation_fraction))
    keep = np.ones(len(x), bool)
    keep[np.random.default_rng(seed).permutation(len(x))[:num_validation]] = False
    x, x_test, y = x[keep].astype(np.float32) / 255.0, x_test.astype(np.float32) / 255.0, y[keep]
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    normalise = lambda images: np.ascontiguousarray(((images - mean) / std).transpose(0, 3, 1, 2))  # NCHW
    return normalise(x), y, normalise(x_test), y_test, num_classes


def train_pytorch(path: Path, depth: int, epochs: int, seed: int, log) -> dict:
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    *arrays, num_classes = load_split(path, seed)
    x, y, x_test, y_test = (torch.from_numpy(a) for a in arrays)
    model = cifar_resnet(depth, num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    milestones = [round(0.5 * epochs), round(0.75 * epochs)]  # the he recipe's 50% and 75%, as ours rounds them
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, 0.1)
    batch, first_epoch_loss, start = 128, None, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order, losses = torch.randperm(len(x)), []
        for i in range(len(x) // batch):  # the last partial batch dropped
            index = order[i * batch:(i + 1) * batch]
            images = F.pad(x[index], (4, 4, 4, 4), mode="reflect")
            crops = torch.stack([image[:, r:r + 32, c:c + 32] for image, (r, c) in
                                 zip(images, torch.randint(0, 9, (len(index), 2)).tolist(), strict=True)])
            flips = torch.rand(len(index)) < 0.5
            crops[flips] = crops[flips].flip(-1)
            loss = F.cross_entropy(model(crops), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        schedule.step()
        first_epoch_loss = first_epoch_loss if first_epoch_loss is not None else float(np.mean(losses))
        log(f"  PyTorch seed {seed} epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}")
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x_test[i:i + 256]) for i in range(0, len(x_test), 256)])
    return {"test_accuracy": float((logits.argmax(1) == y_test).float().mean()),
            "test_loss": float(F.cross_entropy(logits, y_test)), "first_epoch_loss": first_epoch_loss,
            "seconds": time.perf_counter() - start}


def train_ours(dataset: str, model: str, epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "ablation", "train", "--model", model, "--dataset", dataset, "--epochs",
                   str(epochs), "--seed", str(seed), "--out", str(Path(out) / "run")]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"train_vs_pytorch: our run failed ({' '.join(command[1:])}):\n{done.stderr[-2000:]}")
        metrics = json.loads((Path(out) / "run" / "metrics.json").read_text())
        first = float(next(line.split(",")[1] for line in (Path(out) / "run" / "history.csv").read_text().splitlines()
                           if line.startswith("1,")))
    return {"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"], "first_epoch_loss": first,
            "seconds": time.perf_counter() - start}


def table(rows) -> str:
    lines = ["| seed | PyTorch: test accuracy / loss | ours: test accuracy / loss | first-epoch loss, PyTorch / ours |",
             "| ---: | ---: | ---: | ---: |"]
    for row in rows:
        theirs, ours = row["pytorch"], row["ours"]
        lines.append(f"| {row['seed']} | {100 * theirs['test_accuracy']:.1f}% / {theirs['test_loss']:.2f} | "
                     f"{100 * ours['test_accuracy']:.1f}% / {ours['test_loss']:.2f} | "
                     f"{theirs['first_epoch_loss']:.2f} / {ours['first_epoch_loss']:.2f} |")
    return "\n".join(lines)


def option_a_resnets() -> dict:
    """Our presets of He et al.'s CIFAR ResNets with option A shortcuts, the net written here: name -> depth."""
    # The builders import TensorFlow, whose start-up lines would bury the arguments' error.
    from ablation.core.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    from builders import PRESETS

    return {name: preset.kwargs["depth"] for name, preset in PRESETS.items()
            if preset.family == "cifar_resnet" and preset.kwargs.get("shortcut", "zero_pad") == "zero_pad"}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet-56", help="a CIFAR ResNet preset, resnet-DEPTH (default resnet-56)")
    parser.add_argument("--dataset", default=f"npz:{ROOT.parent / 'shared' / 'data' / 'cifar10-subset.npz'}",
                        help="npz:PATH with keras.datasets keys (default: the shared real CIFAR-10 subset)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="42,43", help="comma-separated (default 42,43)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    valid = option_a_resnets()
    if args.model not in valid:
        parser.error(f"--model {args.model!r} is not valid; expected one of {', '.join(valid)}")
    args.depth = valid[args.model]
    if not args.dataset.startswith("npz:") or not Path(args.dataset[4:]).is_file():
        parser.error(f"--dataset {args.dataset!r} is not valid; expected npz:PATH of an existing archive")
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs} is not valid; expected a positive integer")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r} is not valid; expected comma-separated integers, e.g. 42,43")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch = require_torch("train_vs_pytorch")
    if torch is None:
        return 1
    log = lambda line: print(line, file=sys.stderr, flush=True)
    rows = []
    for seed in args.seeds:
        theirs = train_pytorch(Path(args.dataset[4:]), args.depth, args.epochs, seed, log)
        log(f"seed {seed}: PyTorch test accuracy {theirs['test_accuracy']:.4f} ({theirs['seconds']:.0f} s)")
        ours = train_ours(args.dataset, args.model, args.epochs, seed)
        log(f"seed {seed}: ours test accuracy {ours['test_accuracy']:.4f} ({ours['seconds']:.0f} s)")
        rows.append({"model": args.model, "epochs": args.epochs, "seed": seed, "pytorch": theirs, "ours": ours,
                     "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
                     "cpu": cpu_model()})
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
