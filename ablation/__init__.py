"""The ablation framework: data, recipes, distribution, single runs, studies, exports, tuning.

Command line: `python -m ablation {train,report,models,bench} --help`.
"""

import os


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr muted: its C++ start-up lines (oneDNN, no CUDA driver) are
    printed before TF_CPP_MIN_LOG_LEVEL takes effect and bury our progress. Python errors still
    show; ABLATION_DEBUG=1 shows everything.

    ABLATION_LOGICAL_CPUS=N splits the CPU into N logical devices before TensorFlow initialises
    them, so that MirroredStrategy runs N replicas on a machine without GPUs (tests, CI). GPUs
    get memory growth, so that several runs can share one.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    debug = bool(os.environ.get("ABLATION_DEBUG"))
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    if not debug:
        os.dup2(devnull, 2)
    try:
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


def prepare_console() -> None:
    """For the command lines: TensorFlow imported quietly, its Python logger limited to errors
    (retracing notices and deprecations are not the user's business), our warnings on one line."""
    import logging
    import warnings

    import_tensorflow_quietly()
    if not os.environ.get("ABLATION_DEBUG"):
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.formatwarning = lambda message, category, *_, **__: f"warning: {message}\n"
        # Keras's notices about its own internals (e.g. ignored `shuffle` for a tf.data input).
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
