"""A real single-node SLURM cluster on localhost, for the scale-out test (field guide, section 6).

`make test-long` installs Debian's `slurm-wlm` and `munge` where it runs as root and they are
missing. `cluster(folder)` starts munged (or uses a running one), then slurmctld and slurmd with a
configuration, ports, state and logs of their own in `folder`, waits until the node is idle, and
stops on exit only the daemons it started, by their PIDs. `unavailable()` says why it cannot run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
MUNGE_PID = Path("/run/munge/munged.pid")

CONFIG = """\
ClusterName=ablationtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmctldPort={controller_port}
SlurmdPort={node_port}
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MinJobAge=4
ReturnToService=2
NodeName=localnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclasses.dataclass
class Cluster:
    folder: Path
    env: dict  # SLURM_CONF set: pass to sbatch, squeue, scancel

    def run(self, *command, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True, **kwargs)

    def job_ended(self, job_id: str) -> bool:
        return self.run("squeue", "-h", "-j", job_id).stdout.strip() == ""


def unavailable() -> str | None:
    """Why no cluster can be started here, or None."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): `make test-long` installs slurm-wlm and munge "
                f"when it runs as root; elsewhere `sudo apt-get install slurm-wlm munge`")
    if os.geteuid() != 0:
        return "the single-node SLURM cluster needs root (slurmd runs jobs as their user; SlurmUser=root)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _munge_works() -> bool:
    if not MUNGE_SOCKET.exists():
        return False
    credential = subprocess.run(["munge", "-n"], capture_output=True)
    return credential.returncode == 0 and subprocess.run(["unmunge"], input=credential.stdout,
                                                         capture_output=True).returncode == 0


def _start_munge() -> int | None:
    """The PID of a munged this started, or None if one was running already."""
    if _munge_works():
        return None
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True, capture_output=True)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
    subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=True)
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, capture_output=True)
    _wait(_munge_works, 10, "munged did not answer")
    return int(MUNGE_PID.read_text().split()[0])


def _wait(condition, seconds: float, message: str):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.2)


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _wait_for_pid(path: Path, daemon: str) -> int:
    # A daemon creates its pid file before it writes the pid: CI once read it empty in between.
    _wait(lambda: _pid_in(path) is not None, 10, f"{daemon} did not write its pid to {path}")
    return _pid_in(path)


def _stop(pid: int | None):
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def cluster(folder, cpus: int | None = None):
    """A running single-node cluster whose files are all in `folder` (see the module)."""
    folder = Path(folder)
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(CONFIG.format(folder=folder, controller_port=_free_port(), node_port=_free_port(),
                                  cpus=cpus or os.cpu_count() or 1))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        started.append(_start_munge())
        subprocess.run(["slurmctld"], env=env, check=True, capture_output=True)
        started.append(_wait_for_pid(folder / "slurmctld.pid", "slurmctld"))
        subprocess.run(["slurmd", "-N", "localnode"], env=env, check=True, capture_output=True)
        started.append(_wait_for_pid(folder / "slurmd.pid", "slurmd"))
        state = lambda: subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout  # noqa: E731
        _wait(lambda: state().strip() == "idle", 30, f"the node did not become idle ({folder / 'log'})")
        yield Cluster(folder, env)
    finally:
        for pid in reversed(started):  # slurmd, slurmctld, then munged if this started it
            _stop(pid)
