"""Block types: which convolutions should a residual block hold? (Zagoruyko & Komodakis 2016, Table 2)

Six block types at widening factor 2, at the depths of the paper's table, which keep the
parameter counts close (1.1M-1.5M): B(1,3,1), B(3,1), B(1,3) and B(3,1,1) at depth 40, B(3,3)
at depth 28 and B(3,1,3) at depth 22 (N = (depth - 4) / 6 blocks per group for every type).

    python -m studies.block_types                    # WRN recipe, 200 epochs, 5 seeds (median, as the paper)
    python -m studies.block_types --protocol smoke
    python -m studies.block_types --dry-run          # params match the paper's table to 0.1M

Cost of the paper protocol: 30 runs x 200 epochs.
"""

from ablation.study import Configuration, Study
from studies import main

STUDY = Study(
    name="block_types",
    question="Which block type gives the lowest CIFAR-10 test error at a similar parameter count?",
    varies=("block_type", "depth"),
    recipe="wrn",
    seeds=(42, 43, 44, 45, 46),
    configurations=[
        Configuration("B(1,3,1)", "wrn-40-2", {"block_type": "B(1,3,1)"}, published_error=6.06),
        Configuration("B(3,1)", "wrn-40-2", {"block_type": "B(3,1)"}, published_error=5.78),
        Configuration("B(1,3)", "wrn-40-2", {"block_type": "B(1,3)"}, published_error=6.42),
        Configuration("B(3,1,1)", "wrn-40-2", {"block_type": "B(3,1,1)"}, published_error=5.86),
        Configuration("B(3,3)", "wrn-28-2", published_error=5.73),
        Configuration("B(3,1,3)", "wrn-28-2", {"depth": 22, "block_type": "B(3,1,3)"}, published_error=5.78),
    ],
    published_protocol="Zagoruyko & Komodakis 2016, Table 2: WRN-n-2, CIFAR-10, median of 5 runs.",
)

if __name__ == "__main__":
    main(STUDY)
