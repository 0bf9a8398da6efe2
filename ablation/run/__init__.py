"""One training run, the way the papers did it:

    from ablation.run import RunConfig, train
    train(RunConfig(model="wrn-16-2", dataset="npz:cifar10.npz"), "results/wrn-16-2")

Where this package sits among the others: the map in `ablation/__init__.py`.
"""

from ablation.run.config import RunConfig
from ablation.run.training import train

__all__ = ["RunConfig", "train"]
