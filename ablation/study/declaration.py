"""Studies as declarations: a question, the configurations that answer it, what is held fixed.

A study module in `studies/` declares one `Study`; `ablation.study.runner` expands it into runs and
runs them, `ablation.cli` is its command line. A study is a question, the configurations that
answer it (what varies), the recipe and data (what is fixed) and the seeds; every study is judged
on test error (lower is better). Importing this module (and so a study module) imports no TensorFlow.

    STUDY = Study(
        name="dropout", question="Does dropout between the convolutions help?",
        configurations=[Configuration("WRN-16-4", "wrn-16-4", published_error=5.02), ...],
        varies=("depth", "widen_factor", "dropout_rate"), seeds=(42, 43, 44, 45, 46))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ablation.core.choices import PROTOCOLS, checked, folder_name, one_of
from ablation.core.errors import ConfigError
from ablation.design import MAX_SEEDS, MIN_SEEDS, MOST_SEEDS_COUNTED


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One setting the study compares, named as in the paper's tables."""

    name: str  # as in the paper's tables; the `configuration` column of results.csv
    model: str  # a preset of builders.PRESETS
    model_overrides: Mapping = dataclasses.field(default_factory=dict)
    recipe: str | None = None  # None: the study's recipe
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)
    published_error: float | None = None  # test error %, where the source has one
    dataset: str | None = None  # None: the study's dataset
    # The configuration this one is compared with, where not the study's baseline (a second net's own
    # baseline: ResNet-110 + stochastic depth against ResNet-110). A configuration others are compared
    # with this way is a baseline of its own, not compared with the study's.
    versus: str | None = None


@dataclasses.dataclass(frozen=True)
class Smoke:
    """The `smoke` protocol: the whole study end to end in minutes on a CPU, never to be quoted."""

    epochs: int = 3
    max_steps_per_epoch: int = 10
    num_seeds: int = 1  # the first num_seeds of the study's seeds
    max_macs: float = 400e6  # nets above this are narrowed (Wide ResNets) or shrunk (ImageNet-style input)
    imagenet_input: tuple = (64, 64, 3)  # nets with a larger input get this one


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    question: str
    configurations: Sequence[Configuration]
    varies: Sequence[str]  # the scientific hyperparameters: results columns
    dataset: str = "cifar10"
    recipe: str | None = None  # None: each model's paper's recipe
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)
    seeds: Sequence[int] = (42,)
    heatmap: tuple[str, str] | None = None  # two varying settings to draw test error over, e.g. depth x width
    published_protocol: str = ""  # how the published numbers were obtained
    smoke: Smoke = Smoke()
    baseline: str | None = None  # the configuration every other is compared with (default: the first)
    # The configurations in order, each adding one change to the one before (He et al. 2019's cumulative
    # table): each is compared with the one before it as well as with the baseline, all one Holm family.
    cumulative: bool = False

    def __post_init__(self):
        folder_name("name", self.name)
        names = [c.name for c in self.configurations]
        if len(set(names)) != len(names):
            raise ConfigError(f"study {self.name!r} repeats a configuration name: {names}")
        if self.baseline is not None and self.baseline not in names:
            raise ConfigError(f"baseline={self.baseline!r} is not valid; expected one of the configurations: "
                              f"{one_of(names)}.")
        for c in self.configurations:
            if c.versus is not None and (c.versus not in names or c.versus == c.name):
                raise ConfigError(f"versus={c.versus!r} of {c.name!r} is not valid; expected another configuration: "
                                  f"{one_of(n for n in names if n != c.name)}.")

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.configurations[0].name


@dataclasses.dataclass(frozen=True)
class Options:
    """How one invocation runs a study (the command line of `python -m studies.NAME`)."""

    protocol: str = "paper"  # one of choices.PROTOCOLS
    dataset: str | None = None
    epochs: int | None = None
    seeds: Sequence[int] | None = None  # None: the study's (smoke: its first Smoke.num_seeds)
    auto_seeds: bool = False  # --seeds auto: seeds added in rounds until every comparison is decided
    max_seeds: int = MAX_SEEDS  # --max-seeds: the budget of auto_seeds per configuration
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: str = "auto"
    data_dir: str | None = None
    deterministic: bool = False

    def __post_init__(self):
        checked("protocol", self.protocol, PROTOCOLS)
        if self.auto_seeds and self.seeds is not None:
            raise ConfigError("--seeds auto with a list of seeds is not valid; expected one or the other.")
        if self.auto_seeds and not MIN_SEEDS <= self.max_seeds <= MOST_SEEDS_COUNTED:
            raise ConfigError(f"--max-seeds {self.max_seeds} is not valid; expected {MIN_SEEDS} (the seeds of the "
                              f"first look) to {MOST_SEEDS_COUNTED} (the most seeds a verdict counts).")


@dataclasses.dataclass(frozen=True)
class SearchDefaults:
    """What a search module declares: the model and data searched, and the size of the search
    under each protocol (`paper`; `smoke`, short epochs on a CPU). Flags override each."""

    model: str = "wrn-28-2"
    dataset: str = "cifar10"
    max_trials: int = 10
    executions_per_trial: int = 1
    smoke_epochs: int = 2
    smoke_max_steps_per_epoch: int = 5
    smoke_max_trials: int = 3
    smoke_executions_per_trial: int = 2
