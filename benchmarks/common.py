"""What the benchmark scripts share: PyTorch, which the suite does not require, and the CPU they ran on."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def require_torch(script: str):
    """The torch module, or None after one line saying that there is nothing to compare against."""
    try:
        import torch
    except ImportError:
        print(f"{script}: PyTorch is not installed in this environment, so there is nothing to compare against "
              f"(pip install torch, or the suite's `make test` from a local wheel).", file=sys.stderr)
        return None
    return torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine
