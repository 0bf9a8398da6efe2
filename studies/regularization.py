"""Regularisers of a Wide ResNet: which of the 2016-2019 literature's lowers WRN-28-10's CIFAR-10 error?

WRN-28-10 with the WRN recipe and, one at a time, dropout 0.3 between the convolutions (Zagoruyko &
Komodakis 2016), stochastic depth (Huang et al. 2016, linear to 0.5 at the last block), Cutout 16
(DeVries & Taylor 2017), mixup with alpha 1 (Zhang et al. 2018) and label smoothing 0.1 (Szegedy et al.
2016); each against the plain WRN-28-10. And stochastic depth where its paper measured it: ResNet-110,
trained as Huang et al. train it (500 epochs, lr 0.1 /10 at 50% and 75%, Nesterov momentum, weight
decay 1e-4), against ResNet-110 without it.

    python -m studies.regularization                    # 200 epochs (ResNet-110: 500), 5 seeds
    python -m studies.regularization --protocol smoke
    python -m studies.regularization --dry-run

Each published value is its own paper's, over that paper's own baseline (WRN-28-10: the WRN paper
4.00, Cutout's 3.87, mixup's 3.8), and the papers' recipes differ from the WRN recipe held fixed here
(mixup's: weight decay 1e-4, lr /10 at epochs 100 and 150); our ResNet-110 keeps He et al.'s warm-up
of 400 steps at lr 0.01, which the stochastic-depth code does not have.

Cost of the paper protocol: 30 runs x 200 epochs of WRN-28-10 (5.2 GMACs) and 10 x 500 of ResNet-110.
"""

from ablation.study import Configuration, Study
from studies import main

WRN = "wrn-28-10"
RESNET_110 = {"recipe": "he", "recipe_overrides": {"epochs": 500, "nesterov": True}}

STUDY = Study(
    name="regularization",
    question="Which regulariser lowers WRN-28-10's CIFAR-10 test error most: dropout, stochastic depth, Cutout, "
             "mixup or label smoothing? And does stochastic depth help ResNet-110?",
    varies=("depth", "widen_factor", "dropout_rate", "drop_path_rate", "cutout", "mixup_alpha", "label_smoothing"),
    recipe="wrn",
    seeds=(42, 43, 44, 45, 46),
    configurations=[
        Configuration("WRN-28-10", WRN, published_error=4.00),  # WRN paper, Table 6 (median of 5)
        Configuration("+ dropout 0.3", "wrn-28-10-dropout", published_error=3.89),  # WRN paper, Table 6
        Configuration("+ stochastic depth", WRN, {"drop_path_rate": 0.5}),  # not published on WRN-28-10
        Configuration("+ Cutout 16", WRN, recipe_overrides={"cutout": 16}, published_error=3.08),  # Cutout, Table 1
        Configuration("+ mixup", WRN, recipe_overrides={"mixup_alpha": 1}, published_error=2.7),  # mixup, Figure 3
        Configuration("+ label smoothing", WRN, recipe_overrides={"label_smoothing": 0.1}),  # not published here
        # Huang et al. 2016, Table 1 (CIFAR-10+, 110 layers): constant depth 6.41, stochastic depth 5.25.
        Configuration("ResNet-110", "resnet-110", published_error=6.41, **RESNET_110),
        Configuration("ResNet-110 + stochastic depth", "resnet-110", {"drop_path_rate": 0.5}, published_error=5.25,
                      versus="ResNet-110", **RESNET_110),
    ],
    published_protocol="WRN-28-10: each regulariser's own paper, over its own baseline (Zagoruyko & Komodakis "
                       "2016 Table 6, median of 5; DeVries & Taylor 2017 Table 1, mean of 5; Zhang et al. 2018 "
                       "Figure 3); ResNet-110: Huang et al. 2016 Table 1.",
)

if __name__ == "__main__":
    main(STUDY)
