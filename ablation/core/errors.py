"""How a command ends badly: bad input (`ConfigError`, `StaleRun`), a run that failed (`RunFailed`), a
record that no longer reads (`DamagedFile`), a run another process trains (`RunLocked`), Ctrl-C.

Validators raise `ConfigError` naming the bad value and what would be valid; command lines show
it as one line and exit with status 2. The builders, which know nothing of this framework, raise
plain ValueError for bad arguments; `ablation.run.config` turns those into ConfigError where it builds
a net from a configuration. Any other exception inside a run (Keras, TensorFlow, a full disk) is a
run failure, `RunFailed`: recorded in the run's failure.json, retried by the next call, exit 1.
"""

from __future__ import annotations

from pathlib import Path

# The exit statuses of every command line (console.run_command), each with its cause below.
EXIT_RUN_FAILED = 1  # RunFailed, DamagedFile: the same command again retries
EXIT_BAD_INPUT = 2  # ConfigError (argparse's own errors exit 2 too)
EXIT_LOCKED = 75  # RunLocked: sysexits' EX_TEMPFAIL, "try again later"
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
EXIT_BROKEN_PIPE = 141  # the output's reader went away (`| head`): 128 + SIGPIPE, as for any Unix tool


class ConfigError(ValueError):
    """A value that is not valid, named together with what would be."""


class RunLocked(Exception):
    """A run folder that another process is training. Not bad input (the same command is right, a
    moment later): a study skips the run, a command line says so and exits with EXIT_LOCKED."""

    def __init__(self, out: Path, holder: str):
        super().__init__(f"{out} is being trained by another process ({holder or 'unknown'}); wait for it to "
                         f"finish, or choose another --out or --results-dir.")
        self.out = Path(out)


# Why a run is stale, in every message that says so (run_folder.stale).
TIED_INITIAL_WEIGHTS = ("started from tied initial weights (a version before 2026-12-02 began every conv of one "
                        "shape from the same kernel)")


class StaleRun(ConfigError):
    """A run folder whose epochs started from tied initial weights: another experiment than today's
    net, so it is neither resumed nor counted. `--retrain-stale` keeps it aside and trains the run anew."""

    def __init__(self, out: Path, what: str = "a run", option: str = "--out"):
        super().__init__(f"{out} holds {what} {TIED_INITIAL_WEIGHTS}, another experiment than today's net; pass "
                         f"--retrain-stale to keep it as {Path(out).name}.stale and train anew, or choose another "
                         f"{option}.")
        self.out = Path(out)


class DamagedFile(RuntimeError):
    """A record the suite wrote that no longer parses (a truncated copy, a disk error), named with
    what to do. Not bad input: a study marks that run failed and goes on with the others."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path} is damaged ({detail}); remove it, or its run's folder to train that run again.")
        self.path = Path(path)


class RunFailed(RuntimeError):
    """A run stopped by an error inside it, recorded in `record` (its failure.json) with the traceback.

    Not bad input (that is a ConfigError): the configuration may be fine, and the next call
    retries the run from its last finished epoch.
    """

    def __init__(self, out: Path, record: Path, error: BaseException):
        lines = str(error).strip().splitlines()
        super().__init__(f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": "))
        self.out, self.record = Path(out), Path(record)
