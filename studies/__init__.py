"""One short declarative module per study; run one with `python -m studies.NAME --help`.

    depth_vs_width     ResNet-110 against WRN-28-2, with and without dropout (the baseline trio)
    block_types        which convolutions inside a block: B(3,3), B(3,1,3), B(1,3,1), ...
    deepening_factor   how many convolutions per block, at a fixed 40 conv layers
    widening           width against depth, WRN-40-1 ... WRN-28-12
    dropout            dropout between the convolutions of a block, on and off
    resnet_depth       He et al.'s CIFAR ResNet-20 ... ResNet-110
    plain_vs_residual  ResNet-34/50 against Plain-34/50 on cats_vs_dogs, with SGD and Adam
    bag_of_tricks      He et al. 2019's tricks added one at a time to ImageNet ResNet-50 (cumulative)
    bag_of_tricks_cifar the same chain on ResNet-56 and CIFAR-10
    regularization     dropout, stochastic depth, Cutout, mixup, label smoothing on WRN-28-10
    tune_dropout       a keras-tuner search over the dropout rate of WRN-28-2

Importing a study module imports no TensorFlow: it only declares. `main` is what its
`if __name__ == "__main__":` block calls.
"""

import sys

from ablation.core.console import prepare_console
from ablation.study import SearchDefaults, Study


def main(declaration: Study | SearchDefaults, *, name: str | None = None):
    """Run a study (or a search, named `name`) from the command line, and exit with its status."""
    prepare_console()
    # Imported here, after the console is prepared: the command line imports TensorFlow, which must come
    # in quietly, and importing a study module must not import it at all.
    from ablation import cli

    if isinstance(declaration, Study):
        sys.exit(cli.study_main(declaration, relaunch=_this_command()))
    sys.exit(cli.search_main(name, declaration))


def _this_command() -> list[str]:
    """The command that started this process, without its arguments: `python -m studies.NAME`
    (or the script's path), so that `--parallel` can start the same study again."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return [sys.executable, "-m", spec.name] if spec else [sys.executable, sys.argv[0]]
