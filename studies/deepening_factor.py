"""Deepening factor: how many 3x3 convolutions per block? (Zagoruyko & Komodakis 2016, Table 3)

WRN-40-2 with l = 1, 2, 3, 4 convolutions per block, B(3) ... B(3,3,3,3), holding 40 conv layers
and 2.2M parameters fixed: N = 12, 6, 4, 3 blocks per group.

    python -m studies.deepening_factor               # WRN recipe, 200 epochs, 5 seeds
    python -m studies.deepening_factor --protocol smoke
    python -m studies.deepening_factor --dry-run     # every net has the same 2.2M params

Cost of the paper protocol: 20 runs x 200 epochs.
"""

from ablation.study import Configuration, Study
from studies import main

STUDY = Study(
    name="deepening_factor",
    question="At 40 conv layers and 2.2M parameters, how many convolutions per block (l) are best?",
    varies=("block_type", "blocks_per_group"),
    recipe="wrn",
    seeds=(42, 43, 44, 45, 46),
    configurations=[
        Configuration(f"l={l}", "wrn-40-2", {"block_type": "B(" + ",".join("3" * l) + ")", "blocks_per_group": n},
                      published_error=error)
        for l, n, error in [(1, 12, 6.69), (2, 6, 5.43), (3, 4, 5.65), (4, 3, 5.93)]
    ],
    published_protocol="Zagoruyko & Komodakis 2016, Table 3: WRN-40-2, CIFAR-10, median of 5 runs.",
)

if __name__ == "__main__":
    main(STUDY)
