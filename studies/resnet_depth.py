"""He et al.'s CIFAR ResNets: does going deeper keep helping? (He et al. 2016, Table 6)

ResNet-20/32/44/56/110 (6n+2 layers, n = 3, 5, 7, 9, 18, option A shortcuts) with the `he`
recipe: SGD 0.9, lr 0.1 divided by 10 at 32k and 48k of 64k iterations, weight decay 1e-4,
batch 128, the 0.01 warm-up for ResNet-110, on a 45k/5k train/validation split.

    python -m studies.resnet_depth                   # 182 epochs (64k iterations), 5 seeds
    python -m studies.resnet_depth --protocol smoke
    python -m studies.resnet_depth --dry-run

Cost of the paper protocol: 25 runs x 182 epochs.
"""

from ablation.study import Configuration, Study
from studies import main

STUDY = Study(
    name="resnet_depth",
    question="How does CIFAR-10 test error fall with depth for He et al.'s ResNets, 20 to 110 layers?",
    varies=("depth",),
    seeds=(42, 43, 44, 45, 46),
    configurations=[Configuration(f"ResNet-{d}", f"resnet-{d}", published_error=e)
                    for d, e in [(20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (110, 6.43)]],
    published_protocol="He et al. 2016, Table 6: CIFAR-10, 45k/5k split; ResNet-110 is the best of 5 runs "
                       "(mean 6.61 +- 0.16).",
)

if __name__ == "__main__":
    main(STUDY)
