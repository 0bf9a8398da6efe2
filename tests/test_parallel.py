"""`--parallel N`: N worker processes of a study on one machine, each with its share, one view, the
tables once, the worst exit status, and no child left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from ablation.cli import study_main
from ablation.core.run_folder import status
from ablation.study import Options
from ablation.study.parallel import child_environment, exit_status
from ablation.study.planning import plan
from tests.helpers import ROOT
from tests.tiny_study import STUDY as TINY


def test_each_child_gets_a_gpu_round_robin_with_memory_growth():
    shares = [child_environment(i, 5, gpus=["2", "3"], cpus=[0, 1, 2, 3], base={"PATH": "/bin"}) for i in range(5)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env, _ in shares] == ["2", "3", "2", "3", "2"]
    assert all(env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["PATH"] == "/bin" for env, _ in shares)


def test_on_cpus_each_child_gets_its_own_cores_and_as_many_threads():
    shares = [child_environment(i, 2, gpus=[], cpus=list(range(8)), base={}) for i in range(2)]
    assert [cpus for _, cpus in shares] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "4" for env, _ in shares)
    # More children than cores: one core each, shared round-robin.
    shares = [child_environment(i, 3, gpus=[], cpus=[0, 1], base={}) for i in range(3)]
    assert [cpus for _, cpus in shares] == [[0], [1], [0]]
    assert {env["TF_NUM_INTRAOP_THREADS"] for env, _ in shares} == {"1"}


def test_a_killed_child_counts_as_the_shell_reports_it():
    assert [exit_status(code) for code in (0, 1, 2, -signal.SIGTERM)] == [0, 1, 2, 143]


def tiny_command(easy, results, *extra):
    return [sys.executable, "-m", "tests.tiny_study", "--protocol", "smoke", "--dataset", easy,
            "--results-dir", str(results), *extra]


def worker_of_each_run(output):
    """run id -> the workers that trained it, from the children's prefixed epoch lines."""
    trained = {}
    for match in re.finditer(r"^\[worker (\d)/2\] \[\d+/\d+\] (\S+): epoch", output, re.MULTILINE):
        trained.setdefault(match.group(2), set()).add(match.group(1))
    return trained


@pytest.mark.slow
def test_two_processes_train_every_run_once_and_build_the_tables_once(easy, tmp_path):
    results = tmp_path / "parallel"
    done = subprocess.run(tiny_command(easy, results, "--parallel", "2"), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run_ids = [run.run_id for run in plan(TINY, Options(protocol="smoke", dataset=easy))]
    trained = worker_of_each_run(done.stdout)
    assert set(trained) == set(run_ids) and all(len(workers) == 1 for workers in trained.values())
    assert {worker for workers in trained.values() for worker in workers} == {"0", "1"}
    for run_id in run_ids:  # exactly once: one history row per epoch
        assert status(results / "runs" / run_id) == "done"
        assert list(pd.read_csv(results / "runs" / run_id / "history.csv")["epoch"]) == [1, 2]
    # The tables: written by the parent alone, once, after both workers ended.
    assert done.stdout.count("tables and plots in") == 1
    assert done.stdout.strip().splitlines()[-1].startswith("all 2 workers ended (exit 0, 0)")
    assert set(pd.read_csv(results / "results.csv")["run_id"]) == set(run_ids)
    assert f"[all workers] {len(run_ids)} runs: {len(run_ids)} done" in done.stdout
    shares = re.findall(r"^\[worker \d/2\] pid \d+ on CPU (\S+)$", done.stdout, re.MULTILINE)
    if len(os.sched_getaffinity(0)) >= 2:  # each its own cores
        assert len(shares) == 2 and not set(shares[0].split(",")) & set(shares[1].split(","))
    # Nothing left: no worker is started (6 of them took 5 GB and 45 s to train nothing), and it says so.
    again = subprocess.run(tiny_command(easy, results, "--parallel", "6"), cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("--parallel 6: no run is left to train; no worker process is started\n")
    assert "[worker" not in again.stdout and "tables and plots in" in again.stdout


def test_parallel_starts_no_more_workers_than_runs_are_left(easy, tmp_path, capsys):
    assert study_main(TINY, ["--protocol", "smoke", "--dataset", easy, "--results-dir", str(tmp_path), "--dry-run",
                             "--parallel", "1000"]) == 0
    runs = len(plan(TINY, Options(protocol="smoke", dataset=easy)))
    assert capsys.readouterr().out.startswith(f"--parallel 1000: {runs} runs are left to train; {runs} worker "
                                              f"processes would be started\n")


@pytest.mark.slow
def test_parallel_with_a_shard_or_zero_processes_is_refused(easy, tmp_path):
    for extra, message in [(["--parallel", "2", "--shard", "0/2"], "--parallel 2 with --shard 0/2 is not valid"),
                           (["--parallel", "0"], "--parallel 0 is not valid")]:
        done = subprocess.run(tiny_command(easy, tmp_path / "refused", *extra), cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_stopping_the_parent_stops_its_children_and_a_rerun_finishes(easy, tmp_path):
    results = tmp_path / "stopped"
    command = tiny_command(easy, results, "--parallel", "2")
    parent = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids, lines = [], []
    deadline = time.time() + 300
    while not any(": epoch 1/" in line for line in lines):  # both started, one training
        line = parent.stdout.readline()
        assert line and time.time() < deadline, "".join(lines)
        lines.append(line)
        pids += [int(p) for p in re.findall(r"^\[worker \d/2\] pid (\d+) ", line)]
    assert len(pids) == 2
    parent.send_signal(signal.SIGTERM)
    rest = parent.communicate(timeout=120)[0]
    assert parent.returncode == 130, "".join(lines) + rest
    assert "stopping 2 worker process(es)" in rest or "stopping 1 worker process(es)" in rest
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone (the parent reaped them)
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(pd.read_csv(results / "results.csv")["status"]) == {"done"}, again.stdout
