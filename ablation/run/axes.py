"""Every knob a run can turn, declared once: the ablation axes.

An axis is a name, what it acts on (the `model`, the `recipe` or the `data`), the values it takes,
its default (the reference's: every run that leaves it there keeps its run id and its numbers), the
paper and code it follows, and one line on what it does. Everything else reads this table: the
validation of a run (`Recipe`'s fields are the recipe and data axes, checked here), `ablation sweep
--vary`, `ablation train --set`, run ids (`name=value` for each axis off its default), config.json,
results.csv and HParams (a study's `varies` are axis names), the runs table, `--dry-run` and
`python -m ablation axes`, which prints it.

    axis("label_smoothing").parse("0.1")  -> 0.1
    axis("label_smoothing").word(0.1)      -> "label_smoothing=0.1"   (in a run id)

A new axis is an entry here and its implementation: a builder argument (model), or where
`ablation.run.recipes` (recipe) or `ablation.run.augment` (data) reads the Recipe's field.
Model axes are builder arguments: their default is each preset's, and the builder checks what is
particular to its family (a WRN's depth is 6N+4).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from types import MappingProxyType

from ablation.core.choices import one_of
from ablation.core.errors import ConfigError
from ablation.run.randaugment import MAGNITUDE_BINS
from builders.imagenet_resnet import STEMS
from builders.layers import ACTIVATIONS, BN_GAMMAS, BOTTLENECK_STRIDES, NORMS, PADDINGS, SHORTCUTS
from builders.wide_resnet import DROPOUT_POSITIONS, format_block_type, parse_block_type

MODEL, RECIPE, DATA = "model", "recipe", "data"  # what an axis acts on
ACTS_ON = (MODEL, RECIPE, DATA)


# ----------------------------------------------------------------------------------------------
# What an axis takes: each kind parses the text of --vary and --set, checks a value, says what is valid


@dataclasses.dataclass(frozen=True)
class Number:
    """A number in a range; `integer` ones refuse 2.5 (and True, which Python counts as 1)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    @property
    def type(self):
        return int if self.integer else float

    def parse(self, text: str):
        # As typed: "1" stays 1 and "1.0" 1.0, so a value keeps the spelling a run id had before.
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                pass
        return text  # refused by check, which names it

    def valid(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def describe(self) -> str:
        if self.low == 0 and self.high is None:
            if self.low_open:
                return "a positive integer" if self.integer else "a finite positive number"
            return "an integer >= 0" if self.integer else "a finite number >= 0"
        kind = "an integer" if self.integer else "a number"
        if self.high is None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


class _Text:
    """A kind whose values are the text as typed, checked by `valid`."""

    type = str

    def parse(self, text: str):
        return text


@dataclasses.dataclass(frozen=True)
class Choice(_Text):
    options: tuple

    def valid(self, value) -> bool:
        return value in self.options

    def describe(self) -> str:
        return f"one of {one_of(self.options)}"


@dataclasses.dataclass(frozen=True)
class Flag:
    type = bool

    def parse(self, text: str):
        return {"true": True, "false": False}.get(text.lower(), text)

    def valid(self, value) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Fractions:
    """Increasing fractions of the run, written (0.5,0.75), 0.5 for one, or 0.5x0.75 as a run id spells them."""

    type = tuple

    def parse(self, text: str):
        inner = text.strip().strip("()[]").strip()
        try:
            return tuple(float(part) for part in re.split(r"[x,]", inner)) if inner else ()
        except ValueError:
            return text

    def valid(self, value) -> bool:
        return (isinstance(value, (tuple, list)) and all(isinstance(m, (int, float)) and not isinstance(m, bool)
                                                         and 0 < m < 1 for m in value)
                and list(value) == sorted(value))

    def describe(self) -> str:
        return "increasing fractions of the run in (0, 1), e.g. (0.5,0.75)"


@dataclasses.dataclass(frozen=True)
class BlockType(_Text):
    """The WRN paper's notation, B(3,1,3): the kernel sizes of a block's convolutions."""

    def valid(self, value) -> bool:
        try:
            parse_block_type(value)
        except ValueError:
            return False
        return True

    def describe(self) -> str:
        return "the paper's notation, B(k,...) with odd kernel sizes, e.g. B(3,3), B(3,1,3)"


@dataclasses.dataclass(frozen=True)
class Shape:
    """An input shape, written 64x64x3 or (64,64,3)."""

    type = tuple

    def parse(self, text: str):
        parts = [part for part in re.split(r"[x,]", text.strip().strip("()[]")) if part.strip()]
        try:
            return tuple(int(part) for part in parts)
        except ValueError:
            return text

    def valid(self, value) -> bool:
        return (isinstance(value, (tuple, list)) and len(value) == 3
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in value))

    def describe(self) -> str:
        return "(height, width, channels), e.g. 64x64x3"


# ----------------------------------------------------------------------------------------------
# The axis


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    acts_on: str  # one of ACTS_ON
    values: Number | Choice | Flag | Fractions | BlockType | Shape
    # The reference's value. A run at it is the reference run (its run id does not name the axis).
    # Model axes: None, each preset's own (a builder argument); recipe axes that the named recipes
    # set (learning_rate, epochs, ...): the bare Recipe's, each recipe's own in effect.
    default: object
    reference: str  # the paper, and the code whose behaviour this follows
    summary: str  # what it does, in one line
    example: object  # a value off the default: `ablation axes` shows it as a run id spells it; the tests use it
    # An axis without which this one changes nothing: while that one is at its default, so is this one
    # (a run is the reference run whatever it says), and `--set` of this one alone is refused.
    needs: str | None = None

    def __post_init__(self):
        if self.acts_on not in ACTS_ON:
            raise ValueError(f"acts_on={self.acts_on!r} is not valid; expected one of {one_of(ACTS_ON)}.")

    def parse(self, text: str):
        """A value as typed on a command line (`--vary NAME=...`, `--set NAME=...`), checked."""
        return self.check(self.values.parse(text.strip()))

    def check(self, value):
        """`value`, if the axis takes it; else the one-line error naming it and what would be valid."""
        if not self.values.valid(value):
            raise ConfigError(f"{self.name}={value!r} is not valid; expected {self.values.describe()}.")
        return tuple(value) if isinstance(value, list) else value

    def word(self, value) -> str:
        """How the axis at `value` shows in a run id: "label_smoothing=0.1", "block_type=B313"."""
        return f"{self.name}={folder_word(value)}"

    def canonical(self, value):
        """One spelling per value where the notation has several: "B(1, 3,1)" is "B(1,3,1)"."""
        if isinstance(self.values, BlockType):
            return format_block_type(parse_block_type(value))
        return value


def folder_word(value) -> str:
    """A value as a folder name takes it: B(3,1,3) -> B313, (64, 64, 3) -> 64x64x3, False -> false."""
    return re.sub(r"[^A-Za-z0-9._+-]", "", plain(value).lower() if isinstance(value, bool) else plain(value))


def typed(value) -> str:
    """A value as a command line takes it (`--vary`, `--set`): (0.5, 0.75) -> (0.5,0.75), True -> true."""
    if isinstance(value, tuple):
        return "(" + ",".join(map(str, value)) + ")"
    return str(value).lower() if isinstance(value, bool) else str(value)


def plain(value) -> str:
    """A value as people read it: (64, 64, 3) -> 64x64x3."""
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# ----------------------------------------------------------------------------------------------
# The table, in the order people read it: the net, the recipe, the data

WRN = "Zagoruyko & Komodakis 2016 (arXiv 1605.07146); szagoruyko/wide-residual-networks"
HE = "He et al. 2016 (arXiv 1512.03385)"
BOT = "He et al. 2019, Bag of Tricks (arXiv 1812.01187)"
_POSITIVE = Number(0, low_open=True)
_POSITIVE_INT = Number(0, low_open=True, integer=True)
_RATE = Number(0, 1, high_open=True)

_AXES = [
    # The net: builder arguments (builders/); each preset sets its own, each builder checks its family's rules.
    Axis("depth", MODEL, _POSITIVE_INT, None, f"{WRN} (6N+4); {HE} (CIFAR 6n+2, ImageNet 18..152); He et al. 2016b "
         "(pre-activation 9n+2)", "the net's depth, by its family's rule", 16),
    Axis("widen_factor", MODEL, _POSITIVE_INT, None, f"{WRN}, k", "width multiplier of a Wide ResNet's groups", 4),
    Axis("block_type", MODEL, BlockType(), None, f"{WRN}, Table 2: B(M)", "the kernel sizes of a block's convs", "B(3,1,3)"),
    Axis("blocks_per_group", MODEL, _POSITIVE_INT, None, f"{WRN}, Table 3 (the deepening factor)",
         "blocks per group, instead of (depth - 4) / 6", 2),
    Axis("dropout_rate", MODEL, _RATE, None, f"{WRN}, section 2.4: dropout between the convs of a block",
         "dropout between the convolutions of a block", 0.3),
    Axis("dropout_position", MODEL, Choice(DROPOUT_POSITIONS), None,
         f"{WRN}: before_conv (BN-ReLU-dropout-conv); after_conv: many Keras ports", "where the block's dropout sits",
         "after_conv", needs="dropout_rate"),
    Axis("bn_momentum", MODEL, _RATE, None, "torch.nn.BatchNorm2d(momentum=0.1) is Keras's 0.9",
         "batch norm's moving-average momentum (Keras's convention)", 0.99),
    Axis("bn_epsilon", MODEL, _POSITIVE, None, "torch.nn.BatchNorm2d(eps=1e-5)", "batch norm's epsilon", 1e-3),
    Axis("bn_gamma", MODEL, Choice(BN_GAMMAS), None, "the family's reference code: Torch7 U(0, 1) (WRN Lua), 1 "
         "(fb.resnet.torch, torchvision)", "batch norm's initial gamma (None: the family's reference's)", "ones"),
    Axis("padding", MODEL, Choice(PADDINGS), None, "symmetric: PyTorch's Conv2d(padding=1); same: TensorFlow's",
         "how strided convs pad", "same"),
    Axis("shortcut", MODEL, Choice(SHORTCUTS), None, f"{HE}, option A (zero_pad) or B (projection); {BOT}, ResNet-D "
         "(avg_down: timm's downsample_avg, a 2x2 average pool before a stride-1 1x1 conv)",
         "the shortcut where the shape changes (each family takes its own)", "avg_down"),
    Axis("residual", MODEL, Flag(), None, f"{HE}, Figure 3: ResNet or its Plain twin", "shortcuts on or off", False),
    # The modern ResNet's tweaks (field guide, section 7); off in every preset.
    Axis("stem", MODEL, Choice(STEMS), None, f"{BOT}, ResNet-C; timm stem_type='deep' (3x3 convs 32/2, 32, 64)",
         "the ImageNet-style net's stem: the 7x7 conv or three 3x3 convs", "deep"),
    Axis("bottleneck_stride", MODEL, Choice(BOTTLENECK_STRIDES), None, f"{HE} strides the first 1x1 conv; {BOT}, "
         "ResNet-B (torchvision's v1.5) its 3x3 conv", "which conv of a bottleneck strides", "1x1"),
    Axis("drop_path_rate", MODEL, _RATE, None, "Huang et al. 2016 (arXiv 1603.09382), block l of L dropped with "
         "probability r l / L; per sample and the identity at inference as timm's drop_path",
         "stochastic depth's rate at the last block (0.5 in the paper)", 0.5),
    Axis("zero_init_residual", MODEL, Flag(), None, "Goyal et al. 2017 (arXiv 1706.02677); torchvision's "
         "zero_init_residual; timm's zero_init_last (the last conv of a pre-activation branch)",
         "every residual branch's last norm gamma (pre-activation: last conv) starts at 0", True),
    Axis("se_reduction", MODEL, Number(0, integer=True), None, "Hu et al. 2018 (arXiv 1709.01507), r = 16; on the "
         "branch before the addition, as timm's SEModule", "squeeze-and-excitation's reduction r (0: off)", 16),
    Axis("activation", MODEL, Choice(ACTIVATIONS), None, "relu: the papers'; silu, gelu (exact, torch's nn.GELU): "
         "timm's act_layer", "every activation of the net", "silu"),
    Axis("norm", MODEL, Choice(NORMS), None, "Wu & He 2018 (arXiv 1803.08494), GroupNorm with 32 groups",
         "batch norm or group norm, every norm of the net", "group"),
    Axis("input_shape", MODEL, Shape(), None, "the data's", "the net's input (images are resized to it)", (64, 64, 3)),
    # The recipe: how the net is trained (ablation.run.recipes).
    Axis("optimizer", RECIPE, Choice(("sgd", "adam")), "sgd", "torch.optim.SGD / torch.optim.Adam, coupled decay",
         "the optimizer", "adam"),
    Axis("learning_rate", RECIPE, _POSITIVE, 0.1, f"{WRN}; {HE}", "the peak learning rate", 0.05),
    Axis("momentum", RECIPE, Number(0, 1, high_open=True), 0.9, "torch.optim.SGD(momentum=0.9)", "SGD's momentum", 0.95),
    Axis("nesterov", RECIPE, Flag(), False, f"{WRN}: Nesterov momentum", "Nesterov momentum (SGD)", True),
    Axis("weight_decay", RECIPE, Number(0), 0.0, "torch.optim.SGD(weight_decay=): added to the gradient before "
         "momentum (coupled)", "L2 weight decay, coupled as PyTorch's SGD", 5e-4),
    Axis("lr_schedule", RECIPE, Choice(("step", "cosine")), "step", "step: torch MultiStepLR at lr_milestones; "
         "cosine: Loshchilov & Hutter 2017 without restarts, torch CosineAnnealingLR(T_max=the run's steps, "
         "eta_min=0) stepped per batch", "the learning-rate schedule", "cosine"),
    Axis("lr_milestones", RECIPE, Fractions(), (), f"{WRN} (30/60/80%); {HE} (50/75%)",
         "fractions of the run where the step schedule multiplies the lr by lr_decay", (0.5, 0.75)),
    Axis("lr_decay", RECIPE, _POSITIVE, 0.1, f"{WRN} (0.2); {HE} (0.1)", "the step schedule's factor", 0.2),
    Axis("warmup_epochs", RECIPE, Number(0, integer=True), 0, "Goyal et al. 2017 (arXiv 1706.02677), linear from 0 "
         "per step, overlaid on the schedule as timm's CosineLRScheduler (warmup_prefix=False, warmup_lr_init=0)",
         "a linear warm-up from 0 to the peak lr over this many epochs", 5),
    Axis("warmup_steps", RECIPE, Number(0, integer=True), 0, f"{HE}, section 4.2: ResNet-110 at 0.01 for ~400 "
         "iterations", "steps at warmup_learning_rate before the schedule (a constant warm-up)", 400),
    Axis("warmup_learning_rate", RECIPE, _POSITIVE, 0.01, f"{HE}, section 4.2", "the constant warm-up's lr", 0.02,
         needs="warmup_steps"),
    Axis("label_smoothing", RECIPE, _RATE, 0.0, "Szegedy et al. 2016; torch.nn.CrossEntropyLoss(label_smoothing=e):"
         " target (1 - e) y + e / K", "the training loss's target smoothing (validation and test: plain "
         "cross-entropy)", 0.1),
    Axis("no_bias_decay", RECIPE, Flag(), False, f"{BOT}, section 3.1; timm param_groups_weight_decay (ndim <= 1)",
         "no weight decay on biases and batch norm's gamma and beta", True),
    Axis("ema_decay", RECIPE, _RATE, 0.0, "timm ModelEmaV2 (timm/utils/model_ema.py): e = d e + (1 - d) w after "
         "every step, batch norm statistics included", "an exponential moving average of the weights, used for "
         "validation, the test and the saved nets (0: off)", 0.999),
    Axis("batch_size", RECIPE, _POSITIVE_INT, 128, f"{WRN}; {HE}", "the global batch, split across replicas", 64),
    Axis("epochs", RECIPE, _POSITIVE_INT, 200, f"{WRN} (200); {HE} (182 = 64k iterations)", "epochs of the run", 100),
    # The data: augmentation on whole batches, on the training device (ablation.run.augment).
    Axis("mixup_alpha", DATA, Number(0), 0.0, "Zhang et al. 2018; facebookresearch/mixup-cifar10 train.py: one "
         "lambda ~ Beta(a, a) per batch, a permuted partner", "mixup's alpha (0: off; 1 on CIFAR)", 1),
    Axis("cutmix_alpha", DATA, Number(0), 0.0, "Yun et al. 2019; clovaai/CutMix-PyTorch train.py (rand_bbox)",
         "CutMix's beta (0: off; 1 on CIFAR)", 1),
    Axis("cutmix_prob", DATA, Number(0, 1, low_open=True), 0.5, "clovaai/CutMix-PyTorch (0.5 on CIFAR)",
         "the chance a batch is cut and mixed", 1, needs="cutmix_alpha"),
    Axis("cutout", DATA, Number(0, integer=True), 0, "DeVries & Taylor 2017; uoguelph-mlrg/Cutout util/cutout.py",
         "the side of the square cut out of every image, in pixels (0: off; 16 for CIFAR-10, 8 for CIFAR-100)", 16),
    Axis("randaugment_ops", DATA, Number(0, integer=True), 0, "Cubuk et al. 2020 (arXiv 1909.13719); "
         "torchvision.transforms.RandAugment (14 ops, 31 magnitude bins)", "RandAugment's N: ops per image (0: off)", 2),
    Axis("randaugment_magnitude", DATA, Number(0, MAGNITUDE_BINS - 1, integer=True), 9, "Cubuk et al. 2020; torchvision's "
         "default 9", "RandAugment's M, of 30", 14, needs="randaugment_ops"),
]
AXES: Mapping[str, Axis] = MappingProxyType({a.name: a for a in _AXES})
# The Recipe's fields: what trains the net, and what it sees.
RECIPE_AXES = tuple(a for a in _AXES if a.acts_on != MODEL)
MODEL_AXES = tuple(a for a in _AXES if a.acts_on == MODEL)


def axis(name: str) -> Axis:
    """The axis `name`, or the one-line error listing every axis."""
    try:
        return AXES[name]
    except KeyError:
        raise ConfigError(f"{name!r} is not an axis; expected one of {one_of(AXES)} (python -m ablation axes "
                          f"describes them).") from None


def is_on(name: str, value) -> bool:
    """Whether a recipe or data axis departs from its default, the reference run."""
    return value != AXES[name].default


def needs_error(off: Axis, value) -> str:
    """The one line for `off` set to `value` while the axis it needs is at its default."""
    return (f"{off.name}={value!r} without {off.needs} is not valid; expected {off.needs} set as well ({off.name} "
            f"changes nothing without it).")


def parse_setting(text: str, option: str) -> tuple[str, str]:
    """`NAME=VALUE` -> (NAME, VALUE text), for `--set` (the value is parsed by its axis)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"{option} {text!r} is not valid; expected NAME=VALUE, e.g. label_smoothing=0.1.")
    return name.strip(), value
