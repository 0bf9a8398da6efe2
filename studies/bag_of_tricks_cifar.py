"""Bag of Tricks' chain on CIFAR-10, for users without ImageNet: ResNet-56 with each trick added in turn.

The tricks of `studies.bag_of_tricks` that a CIFAR ResNet has: warm-up, zero-gamma, no bias decay,
ResNet-D's average-pool shortcuts (in place of option A's zero padding: ResNet-56 has no projection to
pool before, so here D adds the 1x1 convs too), cosine decay, label smoothing, mixup (alpha 1, the
mixup paper's CIFAR value). ResNet-B and -C change a bottleneck and a 7x7 stem, which ResNet-56 has
not. He et al.'s CIFAR recipe (lr 0.1 /10 at 50% and 75% of 182 epochs, weight decay 1e-4, batch 128).
Published: ResNet-56's 6.97 (He et al. 2016, Table 6); no paper publishes the chain on CIFAR.

    python -m studies.bag_of_tricks_cifar                    # 182 epochs, 3 seeds
    python -m studies.bag_of_tricks_cifar --protocol smoke
    python -m studies.bag_of_tricks_cifar --dry-run

Cost of the paper protocol: 24 runs x 182 epochs at 127M MACs each.
"""

from ablation.study import Study
from studies import main
from studies.bag_of_tricks import cumulative

TRICKS = [
    ("ResNet-56", {}, 100 - 6.97, "He et al. 2016, Table 6"),
    ("+ warm-up", {"warmup_epochs": 5}, None, ""),
    ("+ zero gamma", {"zero_init_residual": True}, None, ""),
    ("+ no bias decay", {"no_bias_decay": True}, None, ""),
    ("+ ResNet-D", {"shortcut": "avg_down"}, None, ""),
    ("+ cosine", {"lr_schedule": "cosine"}, None, ""),
    ("+ label smoothing", {"label_smoothing": 0.1}, None, ""),
    ("+ mixup", {"mixup_alpha": 1}, None, ""),
]

STUDY = Study(
    name="bag_of_tricks_cifar",
    question="On CIFAR-10, how much does each of Bag of Tricks' refinements lower ResNet-56's test error, "
             "added one at a time?",
    varies=("warmup_epochs", "zero_init_residual", "no_bias_decay", "shortcut", "lr_schedule", "label_smoothing",
            "mixup_alpha"),
    recipe="he",
    seeds=(42, 43, 44),
    cumulative=True,
    configurations=cumulative("resnet-56", TRICKS),
    published_protocol="He et al. 2016, Table 6: ResNet-56 on CIFAR-10 (45k/5k split), best of several runs; the "
                       "other rows have no published value.",
)

if __name__ == "__main__":
    main(STUDY)
