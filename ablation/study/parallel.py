"""`--parallel N`: a study as N worker processes of itself, filling this machine.

Thin nets do not fill a GPU or a many-core CPU from one process. The parent starts N copies of
the study's own command (workers: each claims the next run that is neither done nor held, most
expensive first, and locks it while it trains: every run trained exactly once), gives each its
share of the machine, prints their lines as one view, and rebuilds the tables and plots once
when all have ended. Its exit status is the
worst of theirs. Killed or interrupted, it stops its children first; killed outright (SIGKILL),
the kernel stops them (PR_SET_PDEATHSIG). A stopped run resumes from its last epoch next time.

The shares: on GPUs, each child sees one GPU, round-robin over the visible ones (several
children per GPU when N exceeds them; TensorFlow grows GPU memory on demand, so they fit). On
CPUs, each child gets its own cores (N <= cores) or one core shared round-robin, and TensorFlow
that many intra-op threads.
"""

from __future__ import annotations

import ctypes
import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import tensorflow as tf

from ablation.core import layout, records, run_folder
from ablation.study import seeding

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
RUNNER_LINE = re.compile(rb"\[\d+/\d+\] ")  # the runner's prefix of a run's lines
STOP_SECONDS = 30  # after SIGTERM, before SIGKILL: a child may be saving an epoch's checkpoint


def child_environment(index: int, count: int, *, gpus: Sequence[str], cpus: Sequence[int],
                      base: dict) -> tuple[dict, list[int]]:
    """The environment and the CPU affinity of child `index` of `count` (pure; tested)."""
    env = dict(base)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        return env, list(cpus)
    per_child = max(1, len(cpus) // count)
    start = (index * per_child) % len(cpus)
    mine = list(cpus[start:start + per_child])
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        env[name] = str(len(mine))
    return env, mine


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES values for the children."""
    count = len(tf.config.list_physical_devices("GPU"))
    given = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return given[:count] if given else [str(i) for i in range(count)]


def machine_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _start(command, env, cpus):
    def in_child():  # between fork and exec: no Python state beyond the calls (Linux only)
        if sys.platform == "linux":
            os.sched_setaffinity(0, cpus)
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=in_child, bufsize=0)


def exit_status(returncode: int) -> int:
    """A child's exit status as a shell reports it (128 + signal for a killed one)."""
    return returncode if returncode >= 0 else 128 - returncode


def run_parallel(command: Sequence[str], count: int, results_dir: Path, run_ids: Sequence[str],
                 log: Callable[[str], None] = print) -> int:
    """Run `count` copies of `command` at once (workers that claim runs) and wait; the worst exit status."""
    gpus, cpus = visible_gpus(), machine_cpus()
    children = []

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for index in range(count):
            env, mine = child_environment(index, count, gpus=gpus, cpus=cpus, base=os.environ)
            children.append(_start(list(command), env, mine))
            share = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else f"CPU {','.join(map(str, mine))}"
            log(f"[worker {index}/{count}] pid {children[-1].pid} on {share}")
        _follow(children, count, results_dir, run_ids, log)
    finally:
        _stop(children, log)
        for s, handler in previous.items():
            signal.signal(s, handler)
    statuses = [exit_status(child.returncode) for child in children]
    seeding.write_report(results_dir)
    log(f"all {count} workers ended (exit {', '.join(map(str, statuses))}); tables and plots in {results_dir}, "
        f"to browse: {results_dir / layout.INDEX_PAGE}")
    return max(statuses)


def _follow(children, count, results_dir, run_ids, log):
    """Print every child's lines as they come, each with its worker, and a tally after a run ends."""
    selector = selectors.DefaultSelector()
    for index, child in enumerate(children):
        selector.register(child.stdout, selectors.EVENT_READ, [index, b""])
    open_pipes, tally = len(children), None
    while open_pipes:
        for key, _ in selector.select():
            chunk = os.read(key.fileobj.fileno(), 65536)
            index, pending = key.data
            if not chunk:
                selector.unregister(key.fileobj)
                open_pipes -= 1
                lines, key.data[1] = ([pending] if pending else []), b""
            else:
                *lines, key.data[1] = (pending + chunk).split(b"\n")
            for line in lines:
                log(f"[worker {index}/{count}] {line.decode(errors='replace').rstrip()}")
            # A run's status changes only around the runner's own lines ("[2/6] run-id: ..."): the run
            # folders are read then, not after every warning a child prints.
            if any(RUNNER_LINE.match(line) for line in lines):
                now = _tally(results_dir, run_ids)
                if now != tally:
                    tally = now
                    log(f"[all workers] {now}")
    for child in children:
        child.wait()


def _tally(results_dir, run_ids) -> str:
    statuses = [run_folder.status(records.run_dir_of(results_dir, run_id)) for run_id in run_ids]
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    return f"{len(run_ids)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())


def _stop(children, log):
    running = [c for c in children if c.poll() is None]
    if not running:
        return
    log(f"stopping {len(running)} worker process(es); their finished epochs are kept")
    for child in running:
        child.terminate()
    for child in running:
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
