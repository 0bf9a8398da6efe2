"""The README's SLURM job array, run by a real single-node SLURM cluster on this machine
(tests/slurm.py): two tasks claim the runs of one study, and a task cancelled mid-run loses nothing."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from ablation.core.run_folder import status
from ablation.study import Options
from ablation.study.planning import plan
from tests import slurm
from tests.helpers import ROOT
from tests.tiny_study import STUDY as TINY

pytestmark = pytest.mark.long

# What the test changes in the README's script: this machine's resources instead of a GPU and 8
# CPUs, and the tiny study on the tests' data instead of the widening study.
README_RESOURCES = "--gres=gpu:1 --cpus-per-task=8 --time=24:00:00"
README_COMMAND = "-m studies.widening --precision mixed_bfloat16"


def readme_job_script() -> str:
    """The job-array script of the README's "Scaling out" section, as it is written there."""
    text = (ROOT / "README.md").read_text()
    scripts = re.findall(r"```sh\n(#!/bin/bash\n#SBATCH .*?)```", text, re.DOTALL)
    assert len(scripts) == 1, "the README shows one SLURM job-array script"
    return scripts[0]


def job_script(folder, dataset, results, *extra) -> str:
    script = readme_job_script()
    assert README_RESOURCES in script and README_COMMAND in script, "the README's script changed: update the test"
    script = script.replace(README_RESOURCES, "--cpus-per-task=1 --time=30:00").replace(
        README_COMMAND, " ".join(["-m tests.tiny_study --protocol smoke --dataset", dataset, "--results-dir",
                                  str(results), *extra]))
    path = folder / "job.sh"
    path.write_text(script)
    return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm.unavailable()
    if reason:
        pytest.skip(reason)
    with slurm.cluster(tmp_path_factory.mktemp("slurm"), cpus=2) as running:
        yield running


def task_logs(folder, prefix: str = "task", tasks=(0, 1)) -> list[str]:
    return [(folder / f"{prefix}{index}.log").read_text() for index in tasks]


def trained_by_task(logs) -> list[set]:
    """The runs each task trained: a worker says what a run costs once it holds the run's lock."""
    return [set(re.findall(r"^\[\d+/\d+\] (\S+): about .* for this run", log, re.MULTILINE)) for log in logs]


def test_the_readme_job_array_trains_every_run_once_across_two_tasks(cluster, easy, tmp_path):
    results = tmp_path / "results"
    script = job_script(tmp_path, easy, results)
    # Tasks 0 and 2, an array with a step: the task ids need not be 0..N-1 (task 2 was refused as
    # "not valid for 2 shards"), since every task claims runs.
    done = cluster.run("sbatch", "--wait", "--array=0-2:2", f"--output={tmp_path}/task%a.log", script,
                       cwd=ROOT, timeout=900)
    logs = task_logs(tmp_path, tasks=(0, 2))
    assert done.returncode == 0, done.stderr + "\n".join(logs)
    run_ids = {run.run_id for run in plan(TINY, Options(protocol="smoke", dataset=easy))}
    first, second = trained_by_task(logs)
    assert first | second == run_ids and not first & second, logs  # every run, each by one task
    assert first and second, logs  # both tasks trained
    for run_id in run_ids:  # exactly once: one history row per epoch
        assert status(results / "runs" / run_id) == "done"
        assert list(pd.read_csv(results / "runs" / run_id / "history.csv")["epoch"]) == [1, 2]
    frame = pd.read_csv(results / "results.csv")  # written by the task that ended last
    assert set(frame["run_id"]) == run_ids and (frame["status"] == "done").all()
    index = (results / "index.html").read_text()
    assert all(run_id in index for run_id in run_ids)


def test_a_task_cancelled_mid_run_loses_nothing_and_its_run_resumes(cluster, easy, tmp_path):
    results = tmp_path / "results"
    epochs = 40  # long enough to catch a run between its epochs
    script = job_script(tmp_path, easy, results, "--epochs", str(epochs))
    submitted = cluster.run("sbatch", "--parsable", "--array=0-1", f"--output={tmp_path}/task%a.log", script,
                            cwd=ROOT, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    # Wait until some run has finished an epoch, and cancel the task that trains it.
    deadline, caught = time.monotonic() + 300, None
    while caught is None and time.monotonic() < deadline:
        for history in sorted(results.glob("runs/*/history.csv")):
            rows = pd.read_csv(history) if history.stat().st_size else pd.DataFrame()
            if 1 <= len(rows) < epochs - 5:
                caught = history.parent
                break
        time.sleep(0.2)
    assert caught is not None, "no run showed an epoch in 5 minutes"
    holder = None
    while holder is None:
        holder = next((index for index, ids in enumerate(trained_by_task(task_logs(tmp_path))) if caught.name in ids),
                      None)
    cancelled = cluster.run("scancel", f"{job}_{holder}")
    assert cancelled.returncode == 0, cancelled.stderr
    before = pd.read_csv(caught / "history.csv")
    while not cluster.job_ended(job):
        time.sleep(1)
    # Submitted again, as a user does after a cancelled or dead task: every run ends done.
    again = cluster.run("sbatch", "--wait", "--array=0-1", f"--output={tmp_path}/again%a.log", script,
                        cwd=ROOT, timeout=900)
    assert again.returncode == 0, again.stderr
    history = pd.read_csv(caught / "history.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1))  # every epoch once: resumed, not restarted
    pd.testing.assert_frame_equal(history.iloc[:len(before) - 1], before.iloc[:len(before) - 1])
    everything = "\n".join(task_logs(tmp_path) + task_logs(tmp_path, "again"))
    assert re.search(rf"{re.escape(caught.name)}: resuming after epoch \d+ of {epochs}", everything), everything
    run_ids = {run.run_id for run in plan(TINY, Options(protocol="smoke", dataset=easy))}
    frame = pd.read_csv(results / "results.csv")
    assert set(frame["run_id"]) == run_ids and (frame["status"] == "done").all()
