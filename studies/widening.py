"""Widening: width against depth (Zagoruyko & Komodakis 2016, Table 4).

WRN-40-1/2/4/8, WRN-16-8/10, WRN-22-8/10, WRN-28-10/12 on CIFAR-10: does a wider net beat a
deeper one, and where does widening stop paying? Writes a depth x width heatmap.

    python -m studies.widening                       # WRN recipe, 200 epochs, 5 seeds
    python -m studies.widening --protocol smoke        # nets above 400M MACs narrowed, and labelled
    python -m studies.widening --dry-run

Cost of the paper protocol: 50 runs x 200 epochs, most of it in the 5-7.5 GMAC nets.
"""

from ablation.study import Configuration, Study
from studies import main

# (depth, widen factor, published CIFAR-10 error %)
NETS = [(40, 1, 6.85), (40, 2, 5.33), (40, 4, 4.97), (40, 8, 4.66), (16, 8, 4.81), (16, 10, 4.56),
        (22, 8, 4.38), (22, 10, 4.44), (28, 10, 4.17), (28, 12, 4.33)]

STUDY = Study(
    name="widening",
    question="For Wide ResNets on CIFAR-10, how does test error change with width k against depth n?",
    varies=("depth", "widen_factor"),
    recipe="wrn",
    seeds=(42, 43, 44, 45, 46),
    configurations=[Configuration(f"WRN-{d}-{k}", f"wrn-{d}-{k}", published_error=e) for d, k, e in NETS],
    heatmap=("depth", "widen_factor"),
    published_protocol="Zagoruyko & Komodakis 2016, Table 4: CIFAR-10 with ZCA whitening (we normalise per "
                       "channel, as their final results do), median of 5 runs.",
)

if __name__ == "__main__":
    main(STUDY)
