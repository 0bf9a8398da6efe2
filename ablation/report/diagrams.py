"""Architecture diagrams and summaries of a model, for a run folder.

    architecture.png  keras.utils.plot_model with shapes and the hierarchical layer names
    architecture.svg  the same graph as SVG, each layer's node with its name as id (the run page
                      zooms it and finds a layer by name)
    blocks.png        one box per stage, each block spelled as in the papers' tables:
                      "3 x [BN-ReLU-conv3x3 32-BN-ReLU-dropout 0.3-conv3x3 32] + identity"
    blocks.json       the same stages as data (the run page draws them)
    model_summary.txt model.summary() with every column (layer, shape, params, connections)

Diagrams never cost a run: without pydot or Graphviz's `dot` the DOT text is written instead
(`architecture.dot`, `blocks.dot`, renderable later with `dot -Tpng`), with one warning.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from itertools import groupby
from pathlib import Path

import keras

from ablation.core import io, layout, records
from ablation.run.config import RunConfig, build_model
from builders.cifar_resnet import ZeroPadShortcut

_warned = False
_BLOCK = re.compile(r"(group\d+)_(block\d+)_(.+)")
# What a run folder holds once its diagrams are drawn (with Graphviz).
DIAGRAM_FILES = (layout.MODEL_SUMMARY_FILE, layout.ARCHITECTURE_PNG, layout.ARCHITECTURE_SVG, layout.BLOCKS_PNG,
                 layout.BLOCKS_FILE)
# Wide enough for every column of model.summary(): Keras's rich table is otherwise cut at the
# console's width, 80 columns in a file or a pipe, losing the params and connections.
SUMMARY_WIDTH = 160


def inbound_layers(layer) -> list:
    """The layers whose outputs feed `layer` in its functional graph."""
    return [tensor._keras_history.operation for node in layer._inbound_nodes for tensor in node.input_tensors]


def write_run_diagrams(config: RunConfig, run_dir: Path, *, title: str, model: keras.Model | None = None) -> None:
    """The diagrams of a run's net (`model`, or built from `config`), unless all are there (a kill
    may have stopped them half-way); a failure is a warning, never an error."""
    if all((run_dir / name).exists() for name in DIAGRAM_FILES):
        return
    try:
        write_diagrams(model or build_model(config.resolve()), run_dir, title=title)
    except Exception as error:
        warnings.warn(f"{run_dir.name}: diagrams not written ({type(error).__name__}: {error})", stacklevel=2)


def write_diagrams(model: keras.Model, run_dir: Path, *, title: str | None = None) -> dict:
    """Write the summary and both diagrams; returns {file: "png" | "dot"} of what was written."""
    io.write_text(run_dir / layout.MODEL_SUMMARY_FILE, summary_text(model))
    stages = block_stages(model)
    records.write_blocks(run_dir, records.Blocks(title=title or model.name, stages=stages))
    written = {"architecture": _plot_model(model, run_dir),
               "blocks": _render(block_dot(stages, title=title or model.name), run_dir, layout.BLOCKS_PNG,
                                 layout.BLOCKS_SVG, layout.BLOCKS_DOT, dpi=110)}
    if "dot" in written.values():
        _warn_once("could not render the diagrams to PNG (pydot or Graphviz's `dot` missing or failing): "
                   "wrote DOT text instead; install them with `apt-get install graphviz` and `pip install pydot`.")
    return written


def summary_text(model: keras.Model) -> str:
    """model.summary() at full width. Keras draws it with rich, whose console takes its width from
    COLUMNS (else the terminal's, else 80), so COLUMNS is set for the call."""
    lines, before = [], os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(SUMMARY_WIDTH)
    try:
        model.summary(print_fn=lambda line, **_: lines.append(line), line_length=SUMMARY_WIDTH)
    finally:
        if before is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = before
    return "\n".join(lines) + "\n"


def _warn_once(message):
    global _warned
    if not _warned:
        warnings.warn(message, stacklevel=3)
        _warned = True


def _plot_model(model, run_dir: Path) -> str:
    """keras.utils.plot_model's diagram, drawn through model_to_dot to change one setting."""
    try:
        dot = keras.utils.model_to_dot(model, show_shapes=True, show_layer_names=True, dpi=60)
    except Exception:  # ImportError without pydot or Graphviz
        io.write_text(run_dir / layout.ARCHITECTURE_DOT, layer_dot(model))
        return "dot"
    # plot_model's orthogonal edges crash Graphviz now and then on nets of a few hundred layers
    # ("newtrap: Trapezoid-table overflow"); plain splines route the same graph reliably.
    dot.set("splines", "spline")
    dot.set("concentrate", False)
    # Node names are Python object ids: the SVG's node ids become the layer names instead.
    names = {str(id(layer)): layer.name for layer in model.layers}
    for node in dot.get_nodes():
        if node.get_name() in names:
            node.set("id", names[node.get_name()])
    return _render(dot.to_string(), run_dir, layout.ARCHITECTURE_PNG, layout.ARCHITECTURE_SVG, layout.ARCHITECTURE_DOT,
                   keep_dot=False)


def _render(dot_text: str, folder: Path, png_name: str, svg_name: str, dot_name: str, *, dpi: int | None = None,
            keep_dot: bool = True) -> str:
    """PNG (at `dpi`, else the graph's own) and SVG from one Graphviz layout: "png", or "dot" where
    Graphviz is missing or fails (the DOT text is then written, to render later)."""
    rendered = shutil.which("dot") is not None
    if rendered:
        try:
            with io.atomic_path(folder / png_name) as png, io.atomic_path(folder / svg_name) as svg:
                subprocess.run(["dot", *([f"-Gdpi={dpi}"] if dpi else []), "-Tpng", "-o", str(png), "-Tsvg", "-o",
                                str(svg)], input=dot_text, text=True, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError):
            rendered = False
    if keep_dot or not rendered:
        io.write_text(folder / dot_name, dot_text)
    return "png" if rendered else "dot"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def layer_dot(model: keras.Model) -> str:
    """Every layer with its output shape, as plot_model draws it (the fallback without pydot)."""
    lines = ["digraph model {", "  rankdir=TB; node [shape=box, fontname=Helvetica, fontsize=10];"]
    for layer in model.layers:
        label = f"{layer.name}\n{type(layer).__name__} {tuple(layer.output.shape[1:])}"
        lines.append(f"  {_quote(layer.name)} [label={_quote(label)}];")
        for source in inbound_layers(layer):
            lines.append(f"  {_quote(source.name)} -> {_quote(layer.name)};")
    return "\n".join(lines + ["}"]) + "\n"


# The papers' names of the activations (Hendrycks & Gimpel's GELU, Elfwing et al.'s SiLU).
_ACTIVATION_WORDS = {"silu": "SiLU", "gelu": "GELU", "relu": "ReLU", "sigmoid": "sigmoid"}


def describe(layer) -> str:
    """A layer in the papers' notation: conv3x3 64/2, BN, GN, ReLU, SiLU, dropout 0.3, drop-path 0.1,
    avg-pool2x2/2, SE fc[4,64] (Hu et al.'s Table 1: the excitation's two widths); "" for a layer
    drawn through its neighbours (`folded`), None for a kind this view does not know."""
    if folded(layer):
        return ""
    if layer.name.endswith("_se_reduce"):  # the squeeze-and-excitation, as one word
        return f"SE fc[{layer.filters},{layer.input.shape[-1]}]"
    if isinstance(layer, keras.layers.Conv2D):
        k = "x".join(map(str, layer.kernel_size))
        return f"conv{k} {layer.filters}{_stride(layer)}"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "BN"
    if isinstance(layer, keras.layers.GroupNormalization):
        return "GN"
    if isinstance(layer, keras.layers.ReLU):
        return "ReLU"
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", str(layer.activation))
        return _ACTIVATION_WORDS.get(name, name)
    if isinstance(layer, keras.layers.Dropout):
        # Stochastic depth is a dropout of whole samples (builders.layers.LayerFactory.drop_path).
        per_sample = layer.noise_shape is not None and all(s == 1 for s in layer.noise_shape[1:])
        return f"drop-path {layer.rate:.3g}" if per_sample else f"dropout {layer.rate:g}"
    if isinstance(layer, keras.layers.MaxPooling2D):
        if layer.pool_size == (1, 1):
            return f"subsample{_stride(layer)}"
        return f"max-pool{layer.pool_size[0]}x{layer.pool_size[1]}{_stride(layer)}"
    if isinstance(layer, keras.layers.AveragePooling2D):
        return f"avg-pool{layer.pool_size[0]}x{layer.pool_size[1]}{_stride(layer)}"
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        return "global avg-pool"
    if isinstance(layer, keras.layers.Dense):
        return f"dense {layer.units}"
    if isinstance(layer, ZeroPadShortcut):
        return "zero-pad"
    return None


def folded(layer) -> bool:
    """Whether the stage view draws `layer` through its neighbours: a conv's or a pool's padding (its
    "/2"), the sum ("+ shortcut"), the input, the parts of a squeeze-and-excitation after its first conv."""
    return (isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D, keras.layers.Add))
            or ("_se_" in layer.name and not layer.name.endswith("_se_reduce")))


def _stride(layer) -> str:
    return f"/{layer.strides[0]}" if layer.strides[0] > 1 else ""


def _sequence(layers) -> str:
    return "-".join(d for d in (describe(layer) for layer in layers) if d)


def block_stages(model: keras.Model) -> list[dict]:
    """The net as the papers' figures draw it: the input, the stem, each group with its output size,
    its width and its blocks (identical ones counted: "4 x [...]"), the head.

        {"stage": "group2", "size": "16x16", "channels": 64,
         "blocks": [{"count": 1, "block": "[BN-ReLU-conv3x3 64/2-BN-ReLU-conv3x3 64] + shortcut conv1x1 64/2"},
                    {"count": 3, "block": "[BN-ReLU-conv3x3 64-BN-ReLU-conv3x3 64] + identity"}]}
    """
    stages: dict[str, list] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        match = _BLOCK.fullmatch(layer.name)
        stages.setdefault(match.group(1) if match else layer.name.split("_")[0], []).append(layer)

    rows = [{"stage": "input", "size": "x".join(map(str, model.input.shape[1:3])), "channels": model.input.shape[3]}]
    for stage, layers in stages.items():
        if not stage.startswith("group"):
            rows.append({"stage": stage, "layers": _sequence(layers)})
            continue
        blocks = [list(ls) for _, ls in groupby(layers, key=lambda layer: _BLOCK.fullmatch(layer.name).group(2))]
        texts = []
        for block in blocks:
            branch = [layer for layer in block if "shortcut" not in layer.name and "_out_" not in layer.name]
            shortcut = [layer for layer in block if "shortcut" in layer.name]
            after = [layer for layer in block if "_out_" in layer.name]  # post-activation nets
            text = "[" + _sequence(branch) + "]"
            if shortcut:
                text += " + shortcut " + _sequence(shortcut)
            elif any(isinstance(layer, keras.layers.Add) for layer in block):
                text += " + identity"  # a plain block (no sum) reads without it
            if after:
                text += ", then " + _sequence(after)
            texts.append(text)
        h, w, c = blocks[-1][-1].output.shape[1:]
        rows.append({"stage": stage, "size": f"{h}x{w}", "channels": c, "blocks": _counted(texts)})
    return rows


_DROP_PATH = re.compile(r"drop-path ([0-9.e-]+)")


def _counted(texts: list[str]) -> list[dict]:
    """Identical consecutive blocks counted: "4 x [...]". Stochastic depth's rate grows block by block,
    so blocks alike but for it count as one row with its range: "drop-path 0.0037 to 0.0185"."""
    rows = []
    for _, group in groupby(texts, key=lambda text: _DROP_PATH.sub("drop-path", text)):
        group = list(group)
        text = group[0]
        if group[-1] != text:
            text = _DROP_PATH.sub(lambda match: f"{match.group(0)} to {_DROP_PATH.search(group[-1]).group(1)}", text)
        rows.append({"count": len(group), "block": text})
    return rows


def block_dot(stages: list[dict], *, title: str) -> str:
    """One node per stage of `block_stages`."""
    nodes = []
    for row in stages:
        if row["stage"] == "input":
            nodes.append(f"input {row['size']}x{row['channels']}")
        elif "blocks" in row:
            nodes.append(f"{row['stage']}: {row['size']}, {row['channels']} channels\n"
                         + "\n".join(f"{b['count']} x {b['block']}" for b in row["blocks"]))
        else:
            nodes.append(f"{row['stage']}: {row['layers']}")
    lines = ["digraph blocks {", "  rankdir=TB; node [shape=box, style=rounded, fontname=Helvetica, fontsize=11];",
             f"  label={_quote(title)}; labelloc=t;"]
    lines += [f"  n{i} [label={_quote(text)}];" for i, text in enumerate(nodes)]
    lines += [f"  n{i} -> n{i + 1};" for i in range(len(nodes) - 1)]
    return "\n".join(lines + ["}"]) + "\n"
