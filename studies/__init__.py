"""One short declarative module per study; run one with `python -m studies.NAME --help`.

    depth_vs_width     ResNet-110 against WRN-28-2, with and without dropout (the baseline trio)
    block_types        which convolutions inside a block: B(3,3), B(3,1,3), B(1,3,1), ...
    deepening_factor   how many convolutions per block, at a fixed 40 conv layers
    widening           width against depth, WRN-40-1 ... WRN-28-12
    dropout            dropout between the convolutions of a block, on and off
    resnet_depth       He et al.'s CIFAR ResNet-20 ... ResNet-110
    plain_vs_residual  ResNet-34/50 against Plain-34/50 on cats_vs_dogs, with SGD and Adam
"""
