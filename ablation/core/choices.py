"""The valid values of every setting that takes one of a few names, written once.

Validators, argparse `choices` and error messages all read them from here.
"""

# tf.distribute strategies (ablation.run.distribute). multi_worker is named so that it can be refused
# with the reason (see distribute.MULTI_WORKER_UNSUPPORTED); it is not offered.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
OFFERED_STRATEGIES = STRATEGIES[:3]
# Keras dtype policies.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# XLA for the train step, and what each mode hands Keras's `jit_compile`: "auto" lets Keras decide
# (XLA on one GPU; off on CPU and under tf.distribute).
JIT_MODES = {"auto": "auto", "on": True, "off": False}
# How a study or a search is run: `paper`, the published protocol; `smoke`, the whole of it in
# minutes on a CPU, downsized and labelled as such.
PROTOCOLS = ("paper", "smoke")


def one_of(values) -> str:
    return ", ".join(values)
