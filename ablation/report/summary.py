"""A study's findings in words: summary.md (the verdicts, the question and protocol, the table) and
results.tex (the table for a paper), from the tables' frames (`ablation.report.tables`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablation.core import layout, records
from ablation.core.errors import TIED_INITIAL_WEIGHTS
from ablation.core.records import Status
from ablation.design import MIN_SEEDS
from ablation.report.escaping import latex_comment, latex_text
from ablation.statistics import ALPHA

SUGGESTED_SEEDS = 5  # the papers' protocol: the median of 5 runs


def seeds_to_run(frame: pd.DataFrame) -> str:
    """The seeds to run for a verdict, from the study's first: the suggestion of an unresolved one."""
    first = int(frame["seed"].min()) if len(frame) else 42
    return ",".join(str(first + i) for i in range(SUGGESTED_SEEDS))


def seeding_line(study: records.StudyRecord, next_look: dict[str, list[int]], results: list) -> str:
    """Why `--seeds auto` stopped adding seeds (or what it waits for: `next_look`, the seeds each
    configuration's next look needs, as `ablation.study.seeding` decides)."""
    looks = ", ".join(map(str, study.seeding.looks))
    head = f"**Seeds.** `--seeds auto`: looks after {looks} seeds, at most {study.seeding.looks[-1]} per configuration; "
    if needed := {name: seeds for name, seeds in next_look.items() if seeds}:
        runs = sum(len(seeds) for seeds in needed.values())
        per = ", ".join(f"{label} {len(seeds)} seeds" for label, seeds in needed.items())
        return head + f"in progress: the next look needs {runs} runs ({per}), some not trained yet; run the study again."
    # A step of a cumulative study names its reference: the configuration alone is its comparison with the baseline.
    still_open = [r.configuration if r.reference == study.baseline else f"{r.configuration} against {r.reference}"
                  for r in results if not r.decided]
    if not still_open:
        return head + f"stopped: every comparison decided (the last after {max(r.seeds for r in results)} seeds)."
    return head + f"stopped: the budget is spent, still open: {', '.join(still_open)}."


def published_agreement(row, smoke: bool) -> str:
    """Whether a configuration's published error lies within the 95% t-interval of our mean."""
    if row.published_error is None or pd.isna(row.published_error):
        return ""
    if smoke:
        return "n/a (smoke)"
    if np.isnan(row.ci_low):
        return f"n/a: {row.runs} seed{'' if row.runs == 1 else 's'}"
    if row.ci_low <= row.published_error <= row.ci_high:
        return "agrees"
    return f"ours {'above' if row.published_error < row.ci_low else 'below'}"


def results_latex(study: records.StudyRecord, summary: pd.DataFrame, results: list) -> str:
    """results.tex: the summary as a booktabs table for a paper (needs \\usepackage{booktabs}); a
    cumulative study's has a column against the configuration before each, beside the baseline's."""
    marks = {(r.configuration, r.reference): r for r in results}
    cumulative = study.cumulative
    lines = [latex_comment(f"{study.name}: {study.question}"), latex_comment(study.protocol_description),
             r"\begin{tabular}{lrrrrrr" + ("r" if cumulative else "") + "}", r"\toprule",
             r"Configuration & Params & Error median & Error mean $\pm$ std & Published & Difference & "
             r"vs.\ " + latex_text(study.baseline) + (r" & vs.\ previous" if cumulative else "") + r" \\",
             r"\midrule"]

    def cell(value, spec="{:.2f}"):
        return _fmt(value, spec, missing="--")

    before, own = None, study.versus()
    for row in summary.itertuples():
        mean_std = f"{cell(row.mean_error)} $\\pm$ {cell(row.std_error)}" if row.runs > 1 else cell(row.mean_error)
        reference = own.get(row.configuration, study.baseline)  # a configuration with its own reference names it
        comparison = marks.get((row.configuration, reference))
        versus = "baseline" if comparison is None else _latex_difference(comparison) + (
            "" if reference == study.baseline else rf" (vs.\ {latex_text(reference)})")
        if cumulative:  # the first has none before it; the one after the baseline repeats its pair with it
            step = marks.get((row.configuration, before))
            versus += " & " + ("--" if step is None else _latex_difference(step))
        lines.append(f"{latex_text(row.configuration)} & {cell(row.trainable_params / 1e6, '{:.2f}M')} & "
                     f"{cell(row.median_error)} & {mean_std} & {cell(row.published_error)} & "
                     f"{cell(row.difference, '{:+.2f}')} & {versus} \\\\")
        before = row.configuration
    previous = (r" vs. previous: the same against the configuration before, which each changes in one thing, in "
                r"the same Holm family.") if cumulative else ""
    lines += [r"\bottomrule", r"\end{tabular}",
              r"% Test error in %. Difference: our median minus the published value. vs. baseline: mean paired "
              r"difference over matched seeds; $^{*}$: a verdict, the paired t-test rejecting at a Holm-adjusted "
              r"family-wise 5\% (its interval, at the level it was tested at, excludes zero)." + previous, ""]
    return "\n".join(lines)


def _latex_difference(comparison) -> str:
    """The mean paired difference, starred where a verdict stands; -- without a matched seed."""
    if comparison.seeds == 0:
        return "--"
    star = "^{*}" if comparison.verdict in ("lower", "higher") else ""
    return f"${comparison.mean_difference:+.2f}{star}$"


def _fmt(value, spec="{:.2f}", missing="–"):
    return missing if value is None or (isinstance(value, float) and np.isnan(value)) else spec.format(value)


def study_summary(study: records.StudyRecord, summary: pd.DataFrame, frame: pd.DataFrame, results: list,
                  next_look: dict[str, list[int]] | None, undeclared: list[str] = ()) -> str:
    """summary.md: the verdicts, the question and protocol, the table, the best on validation, the runs
    (and the finished runs under runs/ that the study does not declare, `undeclared`)."""
    lines = [f"# {study.name}", ""]
    if study.protocol != "paper":
        lines += [f"> **{study.protocol.upper()} PROTOCOL.** These numbers check the pipeline end to end; they are "
                  f"not results and are not comparable to the published ones.", ""]
    if results:
        remedy = f"run --seeds {seeds_to_run(frame)}, or --seeds auto"
        tested = sum(result.p_value is not None for result in results)
        # A cumulative study's steps share the family (and its level) with the comparisons with the baseline.
        against, holm = ((f", each configuration against {study.baseline} and against the one before it (a "
                          f"cumulative study: each adds one change to the one before),", "all in one Holm family of")
                         if study.cumulative else (f" against {study.baseline},", "Holm-adjusted over"))
        lines += [f"**Verdicts**{against} on matched seeds (test error in points; paired t-test "
                  f"of the differences, {holm} the {tested} comparison{'' if tested == 1 else 's'} "
                  f"with {MIN_SEEDS} seeds or more{' and their looks' if study.seeding.auto else ''} for a "
                  f"{100 * ALPHA:g}% chance of any false verdict; each interval at the level its comparison was "
                  f"tested at; `{layout.COMPARISONS_FILE}`):", ""]
        lines += [f"- {result.sentence(remedy)}" for result in results] + [""]
        if study.seeding.auto:
            lines += [seeding_line(study, next_look, results), ""]
    lines += [f"**Question.** {study.question}", "",
              f"**Protocol.** {study.protocol_description}. Test error in %, from the final epoch's weights; the test split "
              f"is read once per run. Model selection uses the validation split only.", ""]
    if study.published_protocol:
        lines += [f"**Published.** {study.published_protocol}", ""]
    lines += ["| configuration | runs | params | test error median | mean ± std | 95% CI of mean (t) | min | max | "
              "published | difference | published in our CI | acc. % per M params | s / epoch |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    smoke = study.protocol != "paper"
    for row in summary.itertuples():
        difference = "n/a (smoke)" if smoke and row.published_error is not None else _fmt(row.difference, "{:+.2f}")
        mean_std = (f"{_fmt(row.mean_error)} ± {_fmt(row.std_error)}" if row.runs > 1 else _fmt(row.mean_error))
        interval = (f"{_fmt(row.ci_low)} to {_fmt(row.ci_high)}" if row.runs >= MIN_SEEDS
                    else f"n/a: {row.runs} seed{'' if row.runs == 1 else 's'}")
        lines.append(f"| {row.configuration} | {row.runs} | {_fmt(row.trainable_params, '{:,.0f}')} | "
                     f"{_fmt(row.median_error)} | {mean_std} | {interval} | {_fmt(row.min_error)} | "
                     f"{_fmt(row.max_error)} | "
                     f"{_fmt(row.published_error)} | {difference} | {published_agreement(row, smoke)} | "
                     f"{_fmt(row.accuracy_per_million_params, '{:.1f}')} | {_fmt(row.seconds_per_epoch, '{:.1f}')} |")
    finished = summary.dropna(subset=["median_best_val_accuracy"])
    lines.append("")
    if len(finished):
        best = finished.loc[finished["median_best_val_accuracy"].idxmax()]
        lines.append(f"**Best on validation.** {best['configuration']} (median best validation accuracy "
                     f"{100 * best['median_best_val_accuracy']:.2f}%; its test error {_fmt(best['median_error'])}%).")
    counts = frame["status"].value_counts().to_dict()
    lines += ["", "**Runs.** " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".", ""]
    damaged = frame[frame["damaged"].fillna("") != ""]
    if len(damaged):
        lines += ["**Damaged files.** " + "; ".join(f"`{row.run_id}`: {row.damaged}" for row in damaged.itertuples())
                  + ". These runs' results stand (their test results were computed before); the damaged weights "
                    "come back only by training the run again (delete its folder and run the same command).", ""]
    if counts.get(Status.DIFFERS):
        differ = frame[frame["status"] == Status.DIFFERS]["run_id"]
        lines += [f"**Runs that differ from {layout.STUDY_FILE} are left out of every table and plot:** "
                  + ", ".join(f"`{run_id}`" for run_id in differ) + f". Their folders hold another run than the study "
                  f"declares (a copied folder, an edited {layout.STUDY_FILE}); the study's own command refuses "
                  f"them, naming what differs.", ""]
    if undeclared:
        lines += ["**Finished runs the study does not declare are left out:** "
                  + ", ".join(f"`{run_id}`" for run_id in undeclared) + f". `{layout.RUNS_DIR}/` holds them but "
                  f"`{layout.STUDY_FILE}` does not list them (another study's {layout.STUDY_FILE}, copied in?).", ""]
    if counts.get(Status.STALE):
        lines += [f"**Stale runs are left out of every table and plot.** They {TIED_INITIAL_WEIGHTS}, another "
                  f"experiment than today's net. `--retrain-stale` trains them anew and keeps the old folders as "
                  f"`{layout.RUNS_DIR}/RUN_ID{layout.STALE_SUFFIX}`.", ""]
    return "\n".join(lines)
