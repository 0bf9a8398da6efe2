"""Plain against residual: do the shortcuts matter, and does the optimizer change the answer?

The Keras ResNet ablation: ImageNet-style ResNet-34 and ResNet-50 against Plain-34 and Plain-50
(the same layers without shortcuts, He et al. 2016 Figure 3) on `cats_vs_dogs` from
tensorflow-datasets at 224x224, each trained with SGD (the `he` recipe) and with Adam (lr 1e-3).

    python -m studies.plain_vs_residual              # 30 epochs, batch 64, 3 seeds
    python -m studies.plain_vs_residual --protocol smoke   # 64x64 inputs, labelled as such
    python -m studies.plain_vs_residual --dry-run

Cost of the paper protocol: 24 runs x 30 epochs of 20,935 images at 3.7-4.1 GMACs each.
"""

from ablation.study import Configuration, Study
from studies import main

STUDY = Study(
    name="plain_vs_residual",
    question="Do shortcut connections lower the test error of 34- and 50-layer nets, with SGD and with Adam?",
    varies=("depth", "residual", "optimizer"),
    dataset="cats_vs_dogs",
    recipe_overrides={"epochs": 30, "batch_size": 64},
    seeds=(42, 43, 44),
    configurations=[
        Configuration(f"{'ResNet' if residual else 'Plain'}-{depth} {name}",
                      f"imagenet-{'resnet' if residual else 'plain'}-{depth}", recipe=recipe)
        for depth in (34, 50) for residual in (True, False) for name, recipe in (("SGD", "he"), ("Adam", "adam"))
    ],
    published_protocol="the Keras ResNet ablation (tf.keras, cats_vs_dogs); no published errors to compare with.",
)

if __name__ == "__main__":
    main(STUDY)
