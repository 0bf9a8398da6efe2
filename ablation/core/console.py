"""What every command line shares: TensorFlow's quiet import, the exit protocol, progress lines (the
options themselves: ablation.cli.options).

Nothing here imports TensorFlow at module level: `import_tensorflow_quietly` does, on purpose,
with stderr muted, and only entry points call it (through `prepare_console`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from ablation.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_RUN_FAILED,
    ConfigError,
    DamagedFile,
    RunFailed,
    RunLocked,
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr muted: its C++ start-up lines (oneDNN, CPU features, no CUDA
    driver) are printed before TF_CPP_MIN_LOG_LEVEL takes effect and bury our progress. No model
    exists yet, so nothing said about one is lost; Python errors still raise; ABLATION_DEBUG=1
    shows everything.

    ABLATION_LOGICAL_CPUS=N splits the CPU into N logical devices before TensorFlow initialises
    them, so that MirroredStrategy runs N replicas on a machine without GPUs (tests, CI). GPUs
    get memory growth, so that several runs can share one.
    """
    # 2: TensorFlow's C++ INFO and WARNING lines are hidden, its C++ errors show; a user's own
    # setting wins. The C++ warnings are the runtime's, not the model's (under MirroredStrategy:
    # "Local rendezvous is aborting with status: CANCELLED" at every epoch's end, "The
    # `assert_cardinality` transformation is currently not handled by the auto-shard rewrite");
    # what Keras and TensorFlow say about a model, a layer or an initializer they say in Python,
    # and all of that shows.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    debug = bool(os.environ.get("ABLATION_DEBUG"))
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    if not debug:
        os.dup2(devnull, 2)
    try:
        # Imported here, not at the top: this function exists to import TensorFlow with stderr muted.
        import keras  # noqa: F401
        import tensorflow as tf

        # TensorFlow takes all of a GPU's memory by default; growing it on demand lets several
        # thin runs (ResNet-110, WRN-28-2) share one GPU, which one of them cannot fill.
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        logical_cpus = int(os.environ.get("ABLATION_LOGICAL_CPUS", "0"))
        if logical_cpus > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
        tf.config.list_logical_devices()  # initialises the devices, which logs too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class KerasRetracingNotice(logging.Filter):
    """Drops one notice of TensorFlow's logger: "N out of the last M calls to <function
    TensorFlowTrainer...> triggered tf.function retracing". TensorFlow counts traces per code
    object, and Keras traces its predict step anew for every model a process builds (and once more
    for a last, smaller batch), so a study's fourth run reads as "excessive retracing". It is about
    our loop over runs, not about the user's model; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "TensorFlowTrainer" in message)


def prepare_console() -> None:
    """For a process started from the command line (entry points only: it changes process-wide
    settings). Everything it sets, and why; nothing hides a Keras or TensorFlow warning about a
    model, an initializer or a layer:

    - TensorFlow imported with stderr muted, and TF_CPP_MIN_LOG_LEVEL=2 unless set: its C++ INFO
      and WARNING lines hidden (the runtime's), its C++ errors shown (`import_tensorflow_quietly`);
    - the "tensorflow" logger keeps its level (WARNING) and gets one filter, `KerasRetracingNotice`;
    - Python warnings print on one line, "warning: MESSAGE", without the source line that repeats
      it (`warnings.formatwarning`); Python's own filters are untouched.

    ABLATION_DEBUG=1 leaves all of it as Python and TensorFlow set it."""
    import_tensorflow_quietly()
    if not os.environ.get("ABLATION_DEBUG"):
        tensorflow_logger = logging.getLogger("tensorflow")
        if not any(isinstance(f, KerasRetracingNotice) for f in tensorflow_logger.filters):
            tensorflow_logger.addFilter(KerasRetracingNotice())
        warnings.formatwarning = lambda message, category, *_, **__: f"warning: {message}\n"


def duration(seconds: float) -> str:
    """A time as progress lines and estimates print it: 1h 05m, 4m 10s, 35s."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def run_command(action, *, kept="finished epochs") -> int:
    """The exit protocol of every command line here: `action()`'s status; bad input (ConfigError)
    as one line on stderr and EXIT_BAD_INPUT; a failed run as one line naming its failure.json and
    EXIT_RUN_FAILED; a run another process trains, EXIT_LOCKED; Ctrl-C as EXIT_INTERRUPTED, saying
    that `kept` survive."""
    try:
        return action() or 0
    except BrokenPipeError:  # the reader went away (`... | head`): quiet, as any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit
        return EXIT_BROKEN_PIPE
    except (ConfigError, RunFailed, DamagedFile, RunLocked, OSError) as error:
        # A run's own OSErrors are RunFailed: the ones left are the paths given (--out, --results-dir).
        if os.environ.get("ABLATION_DEBUG") or (isinstance(error, OSError) and error.filename is None):
            raise
        if isinstance(error, RunFailed):
            message, status = (f"the run in {error.out} failed ({error}); its traceback is in {error.record}; "
                               f"run the same command again to retry it."), EXIT_RUN_FAILED
        elif isinstance(error, OSError):
            message, status = (f"{error.filename}: {error.strerror}; expected a folder that can be created and "
                               f"written (check --out or --results-dir)."), EXIT_BAD_INPUT
        elif isinstance(error, RunLocked):
            message, status = str(error), EXIT_LOCKED
        else:
            message, status = str(error), EXIT_RUN_FAILED if isinstance(error, DamagedFile) else EXIT_BAD_INPUT
        print(f"error: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept} are kept; run the same command again to go on.", file=sys.stderr)
        return EXIT_INTERRUPTED
