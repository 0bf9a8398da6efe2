"""Dropout in residual blocks (Zagoruyko & Komodakis 2016, Table 6).

WRN-16-4, WRN-28-10 and WRN-52-1 without and with dropout 0.3 between the convolutions of
each block.

    python -m studies.dropout                        # WRN recipe, 200 epochs, 5 seeds
    python -m studies.dropout --protocol smoke
    python -m studies.dropout --dry-run

Cost of the paper protocol: 30 runs x 200 epochs, most of it in WRN-28-10.
"""

from ablation.study import Configuration, Study
from studies import main

# (depth, widen factor, published CIFAR-10 error % without and with dropout)
NETS = [(16, 4, 5.02, 5.24), (28, 10, 4.00, 3.89), (52, 1, 6.43, 6.28)]

STUDY = Study(
    name="dropout",
    question="Does dropout 0.3 between the convolutions of a block lower the CIFAR-10 test error?",
    varies=("depth", "widen_factor", "dropout_rate"),
    recipe="wrn",
    seeds=(42, 43, 44, 45, 46),
    configurations=[
        configuration
        for d, k, without, with_dropout in NETS
        for configuration in (Configuration(f"WRN-{d}-{k}", f"wrn-{d}-{k}", published_error=without),
                              Configuration(f"WRN-{d}-{k}-dropout", f"wrn-{d}-{k}-dropout",
                                            published_error=with_dropout))
    ],
    published_protocol="Zagoruyko & Komodakis 2016, Table 6: CIFAR-10, median of 5 runs.",
)

if __name__ == "__main__":
    main(STUDY)
