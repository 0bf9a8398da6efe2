"""The results browser: a web page for every study, sweep and search, and one for every run,
written from the files they leave (so `python -m ablation report` rebuilds them at any time).

    results/NAME/index.html            the verdicts, question and tables of summary.md (sortable),
                                       the study's plots, a row per run linking to its page, the files
    results/NAME/runs/ID/index.html    the run: metrics, configuration, learning curves, confusion
                                       matrix, per-class accuracy, the architecture as a stage view
                                       (the papers' figure: "4 x [...]") and as the full plot_model
                                       graph (zoom, pan, find a layer by its name), the model summary
    results/tune_dropout/index.html    the search: summary.md, the plot, the retrained winner's page

The pages are self-contained: they work from file:// and offline, with no CDN and no web fonts;
the stylesheet and the script (ablation/report/web/) are small and inlined, and so is the SVG graph
(a browser lets no script into an SVG loaded from file://). Whatever they show of a folder is
escaped or sanitised (ablation.report.escaping), and a Content-Security-Policy runs no script but
the pages' own. `python -m ablation serve` (ablation.report.server) serves a folder over HTTP.
A page that cannot be written is one warning: it never fails a run.
"""

from __future__ import annotations

import functools
import html
import json
import re
import urllib.parse
import warnings
from pathlib import Path

import pandas as pd

from ablation.core import io, layout, records, run_folder
from ablation.core.errors import TIED_INITIAL_WEIGHTS, DamagedFile
from ablation.core.records import Status
from ablation.report import escaping
from ablation.run.axes import AXES, DATA

WEB = Path(__file__).parent / "web"
# The plots of a study, as tables.write_study_report draws them, in the order a reader wants them.
STUDY_PLOTS = [(layout.ERROR_OVER_SEEDS_PLOT, "Test error per configuration: every seed a point, the 95% CI of the mean"),
               (layout.LEARNING_CURVES_PLOT, "Learning curves, mean over seeds"),
               (layout.ERROR_VS_PARAMS_PLOT, "Test error against trainable parameters"),
               (layout.ERROR_VS_TIME_PLOT, "Test error against seconds per epoch"),
               (layout.PER_CLASS_PLOT, "Test accuracy per class")]
STUDY_FILES = [layout.SUMMARY_FILE, layout.RESULTS_FILE, layout.COMPARISONS_FILE, layout.LATEX_FILE,
               layout.TEST_RESULTS_FILE, layout.STUDY_FILE]
SEARCH_FILES = [layout.SUMMARY_FILE, layout.TRIALS_FILE, layout.SEARCH_FILE]
RUN_COLUMNS = ["run_id", "configuration", "seed", "status", "test_error", "best_val_accuracy", "trainable_params",
               "macs", "epochs", "seconds_per_epoch", "downsized"]
METRICS = ["test_error", "test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", "epochs",
           "trainable_params", "total_params", "macs", "seconds_per_epoch", "images_per_second", "total_epoch_seconds"]


def safe_pages(write, *args, **kwargs) -> None:
    """Call a page writer; a failure is one warning (pages never cost a run, like the plots)."""
    try:
        write(*args, **kwargs)
    except Exception as error:
        warnings.warn(f"web pages not written ({type(error).__name__}: {error})", stacklevel=2)


# ----------------------------------------------------------------------------------------------
# Studies and sweeps


def write_study_pages(results_dir: Path, study: records.StudyRecord, frame: pd.DataFrame) -> None:
    """index.html of a study (from its summary.md, plots and results), and a page per run folder."""
    results_dir = Path(results_dir)
    runs = frame.copy()
    present = {run_id for run_id in runs["run_id"] if records.run_dir_of(results_dir, run_id).is_dir()}
    for row in runs.itertuples():
        if row.run_id in present:  # one run's damaged record costs its page, not the others'
            safe_pages(write_run_page, records.run_dir_of(results_dir, row.run_id), title=row.run_id,
                       configuration=row.configuration, up=(f"../../{layout.INDEX_PAGE}", study.name),
                       damaged=row.damaged if isinstance(row.damaged, str) else "")
    runs["run_id"] = [_link(f"{layout.RUNS_DIR}/{run_id}/{layout.INDEX_PAGE}", run_id) if run_id in present
                      else html.escape(run_id) for run_id in runs["run_id"]]
    body = [_markdown(results_dir / layout.SUMMARY_FILE),
            _figures(results_dir, STUDY_PLOTS + _heatmaps(results_dir)),
            "<h2>Runs</h2>", _table(runs[[c for c in _run_columns(study) if c in runs.columns]], markup=["run_id"]),
            _file_list(results_dir, STUDY_FILES),
            "<p class=muted>TensorBoard's HParams dashboard shows the same runs: "
            f"<code>tensorboard --logdir {html.escape(str(results_dir))}</code></p>"]
    io.write_text(results_dir / layout.INDEX_PAGE, _page(study.name, body))


def _run_columns(study: records.StudyRecord) -> list:
    """The runs table's columns: the run, then what the study varies, then the results."""
    varies = [name for name in study.varies if name not in RUN_COLUMNS]
    return RUN_COLUMNS[:2] + varies + RUN_COLUMNS[2:]


def _heatmaps(results_dir: Path) -> list:
    return [(path.name, "Test error over two hyperparameters") for path in sorted(results_dir.glob("*" + layout.HEATMAP_SUFFIX))]


# ----------------------------------------------------------------------------------------------
# A run


def write_run_page(run_dir: Path, *, title: str, configuration: str = "", up: tuple | None = None,
                   damaged: str | None = None) -> None:
    """runs/ID/index.html (or best/index.html): everything the run folder holds, on one page.
    `damaged`: what the study's report found wrong with its saved nets (None: checked here)."""
    run_dir = Path(run_dir)
    unreadable = []
    config = _record(records.read_config, run_dir, unreadable)
    metrics = _record(records.read_metrics, run_dir, unreadable)
    failure = _record(records.read_failure, run_dir, unreadable)
    state = run_folder.status(run_dir)
    body = [f"<nav><a href=\"{html.escape(up[0])}\">&larr; {html.escape(up[1])}</a></nav>" if up else "",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>{html.escape(configuration)} &middot; <span class=\"status-{state}\">{state}</span>"
            + (f" &middot; {html.escape(str(config.run.get('model')))}" if config else "") + "</p>"]
    if failure and state not in (Status.DONE, Status.STALE):
        body.append(f"<blockquote>Last attempt failed: {html.escape(failure.error)}</blockquote>")
    if state == Status.STALE:
        body.append(f"<blockquote>Stale: this run {html.escape(TIED_INITIAL_WEIGHTS)}. It is another experiment than "
                    f"today's net and is left out of the study's tables; <code>--retrain-stale</code> trains it "
                    f"anew.</blockquote>")
    if damaged is None and state == Status.DONE:
        damaged = run_folder.damaged_text(run_folder.damaged_files(run_dir))
    if damaged:
        unreadable.append(run_folder.damage_report(run_dir, damaged))
    body += [f"<blockquote>{html.escape(str(error))}</blockquote>" for error in unreadable]
    if metrics:
        body += ["<h2 id=metrics>Metrics</h2>", _pairs({k: getattr(metrics, k) for k in METRICS})]
    body.append(_figures(run_dir, [(layout.LEARNING_CURVES_PLOT, "Learning curves"),
                                   (layout.CONFUSION_PLOT, "Confusion matrix on the test split")]))
    per_class = records.read_per_class(run_dir)
    if per_class is not None:
        body += ["<h2 id=per-class>Per-class test accuracy</h2>", _per_class(per_class)]
    if config:
        body += ["<h2 id=configuration>Configuration</h2>", _configuration(config)]
    body.append(_architecture(run_dir))
    summary = run_dir / layout.MODEL_SUMMARY_FILE
    if summary.exists():
        body += ["<h2 id=summary>Model summary</h2>", f"<pre>{html.escape(summary.read_text())}</pre>"]
    body.append(_file_list(run_dir, sorted(p.name for p in run_dir.iterdir()
                                           if p.is_file() and not p.name.startswith(".") and p.name != layout.INDEX_PAGE)))
    io.write_text(run_dir / layout.INDEX_PAGE, _page(title, body))


def _record(read, run_dir: Path, unreadable: list):
    """A record of the run folder, None if absent; a damaged one is shown on the page, not fatal."""
    try:
        return read(run_dir)
    except DamagedFile as error:
        unreadable.append(error)
        return None


def _configuration(config: records.RunRecord) -> str:
    run = dict(config.run)
    recipe = run.pop("recipe_fields", {})
    kwargs = run.pop("model_kwargs", {})
    # The recipe's fields as their axes group them: how the net is trained, and what it sees.
    data = {key: value for key, value in recipe.items() if key in AXES and AXES[key].acts_on == DATA}
    parts = ["<div class=figures>",
             f"<div><h3>Run</h3>{_pairs(run)}</div>", f"<div><h3>Builder arguments</h3>{_pairs(kwargs)}</div>",
             f"<div><h3>Recipe ({html.escape(str(run.get('recipe', '')))})</h3>"
             f"{_pairs({k: v for k, v in recipe.items() if k not in data})}</div>"]
    if data:
        parts.append(f"<div><h3>Data augmentation</h3>{_pairs(data)}</div>")
    if config.environment:
        parts.append(f"<div><h3>Environment</h3>{_pairs(config.environment)}</div>")
    return "\n".join(parts + ["</div>"])


def _per_class(table: pd.DataFrame) -> str:
    table = table.copy()
    table["accuracy"] = [f"<meter min=0 max=1 value={a:.4f}></meter> {100 * a:.1f}%" for a in table["accuracy"]]
    return _table(table, markup=["accuracy"])


def _architecture(run_dir: Path) -> str:
    parts = ["<h2 id=architecture>Architecture</h2>"]
    try:
        blocks = records.read_blocks(run_dir)
    except DamagedFile as error:
        blocks = None
        parts.append(f"<blockquote>{html.escape(str(error))}</blockquote>")
    if blocks is not None:
        parts.append(stage_view(blocks))
    elif (run_dir / layout.BLOCKS_PNG).exists():
        parts.append(_figures(run_dir, [(layout.BLOCKS_PNG, "Stages")]))
    svg = run_dir / layout.ARCHITECTURE_SVG
    graph, unsafe = _graph(svg) if svg.exists() else (None, None)
    if graph:
        parts += ["<h3>Every layer (keras.utils.plot_model)</h3>",
                  "<div class=viewer><div class=toolbar>"
                  "<input type=search placeholder=\"find a layer, e.g. group2_block1_conv1\" aria-label=\"find a layer\">"
                  "<output></output>"
                  "<button type=button data-zoom=out title=\"zoom out\">&minus;</button>"
                  "<button type=button data-zoom=in title=\"zoom in\">+</button>"
                  "<button type=button data-zoom=fit title=\"fit the width\">fit</button>"
                  "<span class=muted>wheel: zoom &middot; drag: pan &middot; Enter: next match</span></div>",
                  f"<div class=graph>{graph}</div></div>"]
    elif unsafe:
        parts.append(f"<blockquote>{html.escape(svg.name)} is not shown: {html.escape(unsafe)}.</blockquote>")
    if not graph and (run_dir / layout.ARCHITECTURE_PNG).exists():
        parts.append(_figures(run_dir, [(layout.ARCHITECTURE_PNG, "Every layer")]))
    return "\n".join(parts)


def stage_view(blocks: records.Blocks) -> str:
    """The stages of diagrams.block_stages as the papers draw them: one box per stage, identical
    blocks counted, widths and strides (conv3x3 64/2), dropout marked."""
    items = []
    for row in blocks.stages:  # blocks.json is read from the folder: every value is escaped
        name = f"<b>{_text(row['stage'])}</b>"
        shape = f"<span class=shape>{_text(row.get('size'))}, {_text(row.get('channels'))} channels</span>"
        if "blocks" in row:
            lines = "".join(f"<div class=block><span class=count>{_text(b['count'])} &times;</span> "
                            f"{_marked(b['block'])}</div>" for b in row["blocks"])
            items.append(f"<li>{name}{shape}{lines}</li>")
        elif "layers" in row:
            items.append(f"<li>{name} <span class=block>{_marked(row['layers'])}</span></li>")
        else:
            items.append(f"<li>{name}{shape}</li>")
    return (f"<p class=muted>{_text(blocks.title)}: conv3x3 64/2 is a 3x3 convolution with 64 "
            f"filters and stride 2; [ ] is a block's branch, + identity or + shortcut what the block adds to it "
            f"(a plain block adds nothing).</p>"
            f"<ol class=stages>{''.join(items)}</ol>")


def _marked(text) -> str:
    return re.sub(r"(dropout [\d.]+)", r"<mark>\1</mark>", _text(text))


def _graph(svg: Path) -> tuple[str | None, str | None]:
    """Graphviz's SVG file as an element of the page, sanitised; or None and why it cannot be shown."""
    try:
        return escaping.sanitised_svg(svg.read_text()), None
    except (escaping.UnsafeSVG, UnicodeDecodeError) as error:
        return None, str(error)


# ----------------------------------------------------------------------------------------------
# A search


def write_search_page(results_dir: Path, title: str) -> None:
    """index.html of a keras-tuner search: summary.md, its plot, the trials, the retrained winner."""
    results_dir = Path(results_dir)
    body = [_markdown(results_dir / layout.SUMMARY_FILE),
            _figures(results_dir, [(layout.DROPOUT_PLOT, "Validation accuracy against the dropout rate")])]
    if (results_dir / layout.TRIALS_FILE).exists():
        body += ["<h2>Trials</h2>", _table(pd.read_csv(results_dir / layout.TRIALS_FILE))]
    best = results_dir / layout.WINNER_DIR
    if best.is_dir():
        write_run_page(best, title=f"{title}: the retrained winner", up=(f"../{layout.INDEX_PAGE}", title))
        winner = _link(f"{layout.WINNER_DIR}/{layout.INDEX_PAGE}", "The retrained winner")
        body.append(f"<p>{winner}: its curves, confusion matrix and "
                    f"architecture.</p>")
    body.append(_file_list(results_dir, SEARCH_FILES))
    io.write_text(results_dir / layout.INDEX_PAGE, _page(title, body))


# ----------------------------------------------------------------------------------------------
# HTML


@functools.cache
def _asset(name: str) -> str:
    return (WEB / name).read_text()


@functools.cache
def content_security_policy() -> str:
    """The policy of every page (and of `serve`'s responses): the pages' own script and stylesheet only."""
    return escaping.content_security_policy(_asset("browser.js"), _asset("browser.css"))


def _page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!doctype html>", "<html lang=en>", "<head>", "<meta charset=utf-8>",
        f"<meta http-equiv=Content-Security-Policy content=\"{content_security_policy()}\">",
        "<meta name=viewport content=\"width=device-width, initial-scale=1\">",
        "<link rel=icon href=\"data:,\">",  # no favicon request: a 404 under `serve`
        f"<title>{html.escape(title)}</title>", f"<style>{_asset('browser.css')}</style>", "</head>",
        "<body><main>", *[part for part in body if part], "</main>",
        f"<script>{_asset('browser.js')}</script>", "</body>", "</html>", ""])


def _markdown(path: Path) -> str:
    if not path.exists():
        return ""
    return f"<div class=scroll>{escaping.markdown_html(path.read_text())}</div>"


def _figures(folder: Path, plots: list) -> str:
    shown = [(name, caption) for name, caption in plots if (folder / name).exists()]
    if not shown:
        return ""
    return "<div class=figures>" + "".join(
        f"<figure><a href=\"{_href(name)}\"><img src=\"{_href(name)}\" alt=\"{html.escape(caption)}\">"
        f"</a><figcaption>{html.escape(caption)}</figcaption></figure>" for name, caption in shown) + "</div>"


def _file_list(folder: Path, names: list) -> str:
    present = [name for name in names if (folder / name).exists()]
    if not present:
        return ""
    return "<h2>Files</h2><p>" + " &middot; ".join(_link(name, name) for name in present) + "</p>"


def _table(frame: pd.DataFrame, markup: list = ()) -> str:
    """A table whose cells and headers are escaped, but for the `markup` columns: HTML we wrote."""
    frame = frame.copy()
    for column in frame.columns:
        if column not in markup:
            frame[column] = [html.escape(value) if isinstance(value, str) else value for value in frame[column]]
    frame.columns = [html.escape(str(column)) for column in frame.columns]
    table = frame.to_html(index=False, escape=False, na_rep="–", border=0, float_format=lambda x: f"{x:,.4g}")
    # pandas aligns the header with a style attribute, which the pages' policy refuses (the stylesheet aligns it)
    return "<div class=scroll>" + re.sub(r' style="text-align: \w+;"', "", table) + "</div>"


def _pairs(mapping: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_plain(value))}</td></tr>"
                   for key, value in mapping.items())
    return f"<table>{rows}</table>"


def _text(value) -> str:
    return html.escape(str(value))


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _href(path: str) -> str:
    return html.escape(urllib.parse.quote(path))


def _link(path: str, text: str) -> str:
    return f"<a href=\"{_href(path)}\">{html.escape(text)}</a>"
