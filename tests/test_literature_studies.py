"""The studies of the 2016-2021 literature (bag_of_tricks, bag_of_tricks_cifar, regularization) as
declared: each cumulative configuration adds exactly one change to the one before, every varied
axis is declared, every published value is the paper's, and each plans runs that resolve (the smoke
protocol end to end is tests/test_studies.py's, in make test-long)."""

from __future__ import annotations

import numpy as np
import pytest

from ablation.core.errors import ConfigError
from ablation.run.axes import AXES
from ablation.statistics import compare_all, comparison_pairs
from ablation.study.declaration import Configuration, Options, Study
from ablation.study.planning import plan
from studies import bag_of_tricks, bag_of_tricks_cifar, regularization


def settings(configuration) -> dict:
    return {**configuration.model_overrides, **configuration.recipe_overrides}


@pytest.mark.parametrize("module", [bag_of_tricks, bag_of_tricks_cifar])
def test_each_trick_adds_one_change_to_the_configuration_before(module):
    study = module.STUDY
    assert study.cumulative and study.baseline_name == study.configurations[0].name
    for before, after in zip(study.configurations, study.configurations[1:], strict=False):
        old, new = settings(before), settings(after)
        changed = {k for k in new if old.get(k) != new[k]}
        assert len(changed) == 1 and set(old) <= set(new), (after.name, changed)
        (axis,) = changed
        assert axis in study.varies and axis in AXES, axis
        assert before.model == after.model


def test_bag_of_tricks_publishes_the_papers_top1_as_error():
    # Tables 3-6 of He et al. 2019: 75.87 (baseline) ... 79.15 (+ mixup without distillation).
    errors = [c.published_error for c in bag_of_tricks.STUDY.configurations]
    assert errors == [24.13, 23.97, 23.81, 23.84, 23.34, 23.13, 22.84, 22.09, 21.69, 20.85]
    last = settings(bag_of_tricks.STUDY.configurations[-1])
    assert last == {"bottleneck_stride": "3x3", "warmup_epochs": 5, "zero_init_residual": True, "no_bias_decay": True,
                    "stem": "deep", "shortcut": "avg_down", "lr_schedule": "cosine", "label_smoothing": 0.1,
                    "mixup_alpha": 0.2}  # ResNet-50-D with every refinement


@pytest.mark.parametrize("module", [bag_of_tricks, bag_of_tricks_cifar, regularization])
def test_every_configuration_plans_a_run_that_resolves(module):
    runs = plan(module.STUDY, Options(protocol="smoke"))
    assert len(runs) == len(module.STUDY.configurations)
    assert len({run.run_id for run in runs}) == len(runs)  # each configuration a run of its own
    for run in runs:  # validated: every axis value checked, every model axis one its net takes
        assert run.resolved.model == run.configuration.model


def test_stochastic_depth_on_resnet_110_is_compared_with_resnet_110_not_the_wide_resnet():
    study = regularization.STUDY
    versus = {c.name: c.versus for c in study.configurations if c.versus}
    pairs = comparison_pairs([c.name for c in study.configurations], study.baseline_name, versus=versus)
    assert pairs == [(name, "WRN-28-10") for name in ("+ dropout 0.3", "+ stochastic depth", "+ Cutout 16", "+ mixup",
                                                      "+ label smoothing")] + [("ResNet-110 + stochastic depth",
                                                                                "ResNet-110")]
    # One family: with a real gap only in ResNet-110's pair, that pair alone is decided.
    rng = np.random.default_rng(0)
    errors = {c.name: {s: 4.0 + rng.normal(0, 0.05) for s in range(42, 47)} for c in study.configurations}
    errors["ResNet-110 + stochastic depth"] = {s: errors["ResNet-110"][s] - 1.0 + rng.normal(0, 0.05)
                                               for s in range(42, 47)}
    results = compare_all(errors, study.baseline_name, versus=versus)
    decided = [(r.configuration, r.reference) for r in results if r.decided]
    assert decided == [("ResNet-110 + stochastic depth", "ResNet-110")]


def test_a_versus_that_names_no_other_configuration_is_one_line():
    with pytest.raises(ConfigError, match=r"^versus='nope' of 'b' is not valid; expected another configuration: a"):
        Study(name="s", question="?", varies=("depth",),
              configurations=[Configuration("a", "wrn-10-1"), Configuration("b", "wrn-10-1", versus="nope")])


def test_the_imagenet_study_is_tested_on_imagenets_validation_set():
    # tfds's imagenet2012 (5.1.0) has an unlabelled "test" split; every paper reports the validation set.
    from ablation.run.data import tfds_splits

    assert bag_of_tricks.STUDY.dataset == "imagenet2012"
    assert tfds_splits("imagenet2012", {"train", "validation", "test"}) == ("train", "validation")
    assert tfds_splits("imagenet2012:5.1.0", {"train", "validation", "test"}) == ("train", "validation")
    assert tfds_splits("cifar10", {"train", "test"}) == ("train", "test")
    assert tfds_splits("cats_vs_dogs", {"train"}) == ("train[:90%]", "train[90%:]")
