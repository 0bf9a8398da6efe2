"""Our training step against PyTorch's on this machine: the same WRN, batch and recipe, alternated.

    python benchmarks/vs_pytorch.py                      # WRN-28-2, batch 128, float32 and bf16
    python benchmarks/vs_pytorch.py --model wrn-16-2 --rounds 3 --json

PyTorch's side is an independent WRN written here from the paper (pre-activation basic blocks,
a 1x1 projection where the width changes; the parameter count is checked against our builder's
in the tests), trained as people train it on a CPU: channels_last memory, SGD 0.1 with Nesterov
momentum 0.9 and weight decay 5e-4, cross-entropy, bfloat16 by `torch.autocast`. It times the
step alone on one fixed batch. Our side is `python -m ablation bench` in a child process (the
run's real step: its optimizer, L2 penalty, metrics and input pipeline), so the two frameworks
never share a process's thread pools. Rounds alternate PyTorch and ours, so that drift of a
shared machine hits both; the table gives medians over rounds.

PyTorch is not a requirement of the suite: where it is not installed this says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: this folder's shared helpers, as a package
from benchmarks.common import cpu_model, require_torch  # noqa: E402

# Our precision names and what PyTorch does for each.
AUTOCAST = {"float32": None, "mixed_bfloat16": "bfloat16"}
WRN_NAME = re.compile(r"wrn-(\d+)-(\d+)")


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10):
    """WRN-depth-k (Zagoruyko & Komodakis), B(3,3) blocks, as an `nn.Module`."""
    from torch import nn

    n = (depth - 4) // 6

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout else None

        def forward(self, x):
            o = nn.functional.relu(self.bn1(x))
            y = self.conv2(nn.functional.relu(self.bn2(self.conv1(o))))
            # The projection takes the pre-activated input, as the reference code does.
            return y + (self.shortcut(o) if self.shortcut is not None else x)

    widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for width, stride in zip(widths, (1, 2, 2), strict=True):
        for b in range(n):
            layers.append(Block(cin, width, stride if b == 0 else 1))
            cin = width
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def time_pytorch(depth, widen_factor, batch_size, precision, timed_steps, untimed_steps) -> float:
    """Images/s of PyTorch's training step: the median of `timed_steps` after `untimed_steps`."""
    import torch

    torch.manual_seed(0)
    model = wide_resnet(depth, widen_factor).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    dtype = AUTOCAST[precision]
    times = []
    for step in range(untimed_steps + timed_steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=getattr(torch, dtype or "float32"), enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step >= untimed_steps:
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def time_ours(model, batch_size, precision, timed_steps, untimed_steps) -> dict:
    command = [sys.executable, "-m", "ablation", "bench", "--model", model, "--batch-size", str(batch_size),
               "--precision", precision, "--timed-steps", str(timed_steps), "--untimed-steps", str(untimed_steps),
               "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"vs_pytorch: our bench failed ({' '.join(command[1:])}):\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout[done.stdout.index("{"):])


def compare(args) -> list[dict]:
    import torch

    depth, widen_factor = map(int, WRN_NAME.fullmatch(args.model).groups())
    rows = []
    for precision in args.precision:
        theirs, ours, mfu = [], [], []
        for round_ in range(1, args.rounds + 1):
            theirs.append(time_pytorch(depth, widen_factor, args.batch_size, precision, args.timed_steps,
                                       args.untimed_steps))
            result = time_ours(args.model, args.batch_size, precision, args.timed_steps, args.untimed_steps)
            ours.append(result["images_per_second"])
            mfu.append(result["mfu"])
            print(f"  {precision} round {round_}/{args.rounds}: PyTorch {theirs[-1]:.1f}, ours {ours[-1]:.1f} images/s",
                  file=sys.stderr, flush=True)
        rows.append({
            "model": args.model, "batch_size": args.batch_size, "precision": precision,
            "pytorch": "channels_last" + (f", autocast {AUTOCAST[precision]}" if AUTOCAST[precision] else ""),
            "pytorch_images_per_second": statistics.median(theirs), "pytorch_runs": theirs,
            "ours_images_per_second": statistics.median(ours), "ours_runs": ours,
            "ratio": statistics.median(ours) / statistics.median(theirs), "ours_mfu": statistics.median(mfu),
            "ours_matmul_dtype": result["matmul_dtype"], "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu": cpu_model(),
        })
    return rows


def table(rows) -> str:
    lines = [f"{rows[0]['model'].upper()}, batch {rows[0]['batch_size']}, training step, {rows[0]['cpu']}",
             "", "| | PyTorch (images/s) | ours (images/s) | ratio | our mfu |", "| --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['precision']} | {row['pytorch_images_per_second']:.0f} ({row['pytorch']}) | "
                     f"{row['ours_images_per_second']:.0f} | {row['ratio']:.2f}x | "
                     f"{row['ours_mfu']:.2f} of {row['ours_matmul_dtype']} |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="wrn-28-2", help="a WRN preset, wrn-DEPTH-K (default wrn-28-2)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="float32,mixed_bfloat16",
                        help=f"comma-separated, from {', '.join(AUTOCAST)} (default both)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of PyTorch and ours (default 2)")
    parser.add_argument("--timed-steps", type=int, default=10)
    parser.add_argument("--untimed-steps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    args.precision = args.precision.split(",")
    bad = [p for p in args.precision if p not in AUTOCAST]
    if bad:
        parser.error(f"--precision {','.join(bad)} is not valid; expected {', '.join(AUTOCAST)}")
    match = WRN_NAME.fullmatch(args.model)
    if not match or (int(match.group(1)) - 4) % 6:
        parser.error(f"--model {args.model!r} is not valid; expected a WRN, wrn-DEPTH-K with DEPTH = 6n + 4")
    for name in ("batch_size", "rounds", "timed_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not valid; expected a positive integer")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if require_torch("vs_pytorch") is None:
        return 1
    rows = compare(args)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
