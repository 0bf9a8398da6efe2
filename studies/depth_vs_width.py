"""Depth vs width: is a deep thin ResNet or a shallow wide one better at the same parameter budget?

The baseline trio of the depth-vs-width write-up, on CIFAR-10 with the WRN recipe and seed 42:
ResNet-110 (deep and thin, 1x1 projection shortcuts, 1,730,522 params), WRN-28-2 (wide and shallow,
1,467,610) and WRN-28-2 with dropout 0.3 between the convolutions (1,467,610). ResNet-110 warms up
at lr 0.01 for 400 iterations, as He et al. prescribe for it (at 0.1 from the first step its loss explodes,
in PyTorch as in Keras).

    python -m studies.depth_vs_width                   # the published protocol: 200 epochs each
    python -m studies.depth_vs_width --protocol smoke    # end to end in a few minutes on a CPU
    python -m studies.depth_vs_width --dry-run         # the runs, their params, MACs and status

Cost of the paper protocol: 3 runs x 200 epochs; about 3 GPU-hours on one A100 (see docs/benchmarks.md).
"""

from ablation.study import Configuration, Study
from studies import main

STUDY = Study(
    name="depth_vs_width",
    question="At about 1.5M parameters, does depth (ResNet-110) or width (WRN-28-2) give the lower "
             "CIFAR-10 test error, and does dropout inside the wide blocks help?",
    varies=("depth", "widen_factor", "dropout_rate"),
    recipe="wrn",
    seeds=(42,),
    configurations=[
        # Published: the write-up's test accuracies 94.29 / 94.62 / 94.75 %, as errors.
        Configuration("ResNet-110", "resnet-110-projection", published_error=5.71),
        Configuration("WRN-28-2", "wrn-28-2", published_error=5.38),
        Configuration("WRN-28-2-dropout", "wrn-28-2-dropout", published_error=5.25),
    ],
    published_protocol="the depth-vs-width write-up (PyTorch): one run each with seed 42, WRN recipe, "
                       "200 epochs, test accuracy of the final model.",
)

if __name__ == "__main__":
    main(STUDY)
