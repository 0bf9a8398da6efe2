"""A study's plan: every run, named and validated before any trains, and the study.json that records it.

    plan(STUDY, Options(protocol="smoke"))   # [PlannedRun(run_id, configuration, seed, config, resolved), ...]

A run id names what a run is (`configuration_id`: from its content, not its name) and its seed;
`describe_study` is the plan as `records.StudyRecord`, from which `ablation report` rebuilds the
tables without the study module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import re
from pathlib import Path

from ablation.core import io, layout, locks, records
from ablation.core.errors import ConfigError, DamagedFile
from ablation.design import auto_looks, seed_sequence
from ablation.run.axes import axis
from ablation.run.config import ResolvedRun, RunConfig, builder_arguments, preset_of, run_identity
from ablation.study.declaration import Configuration, Options, Smoke, Study
from builders import count_macs


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    run_id: str
    configuration: Configuration
    seed: int
    config: RunConfig
    resolved: ResolvedRun  # config.resolve(), computed once
    downsized: str = ""  # what the smoke protocol changed in the net, if anything


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# A run id is a folder name (at most 255 bytes on every common filesystem), with room for "-s" and a
# seed, ".stale-N" and a temporary's ".tmp-PID".
MAX_ID_BYTES = 200


def configuration_id(study: Study, configuration: Configuration) -> str:
    """What the configuration is, named from its content (`ResolvedRun.configuration_id`), not its name: a study
    module and a sweep that declare the same configuration name it alike. The protocol's changes
    (smoke epochs, narrowed nets, --epochs) are left out: they are the results folder's. A name
    longer than MAX_ID_BYTES keeps its head and ends in a hash of the whole: still one per content."""
    identity = RunConfig(model=configuration.model, recipe=configuration.recipe or study.recipe,
                         model_overrides=configuration.model_overrides,
                         recipe_overrides={**study.recipe_overrides,
                                           **configuration.recipe_overrides}).resolve().configuration_id()
    whole = identity.encode()
    if len(whole) <= MAX_ID_BYTES:
        return identity
    digest = hashlib.sha256(whole).hexdigest()[:12]
    return f"{whole[:MAX_ID_BYTES - len(digest) - 1].decode(errors='ignore')}-{digest}"


def run_id_of(identity: str, seed: int) -> str:
    """A study's run: its folder under runs/, its row in results.csv."""
    return f"{identity}-s{seed}"


def plan(study: Study, options: Options) -> list[PlannedRun]:
    """Every run of the study under these options, in a fixed order (configuration, then seed)."""
    smoke = options.protocol == "smoke"
    seeds = study_seeds(study, options)
    for name in study.varies:  # each a results column: an axis, named as `python -m ablation axes` names it
        axis(name)
    runs, names = [], {}  # configuration id -> the configuration's name
    for configuration in study.configurations:
        identity = configuration_id(study, configuration)
        if identity in names:
            raise ConfigError(f"configurations {names[identity]!r} and {configuration.name!r} are the same run "
                              f"({identity}); expected each configuration once.")
        names[identity] = configuration.name
        model_overrides, downsized = dict(configuration.model_overrides), ""
        recipe_overrides = {**study.recipe_overrides, **configuration.recipe_overrides}
        max_steps = None
        if smoke:
            model_overrides, downsized = smoke_downsize(configuration.model, model_overrides, study.smoke)
            recipe_overrides["epochs"] = study.smoke.epochs
            max_steps = study.smoke.max_steps_per_epoch
        if options.epochs is not None:
            recipe_overrides["epochs"] = options.epochs
        for seed in seeds:
            config = RunConfig(
                model=configuration.model, dataset=options.dataset or configuration.dataset or study.dataset,
                recipe=configuration.recipe or study.recipe, recipe_overrides=recipe_overrides,
                model_overrides=model_overrides, seed=seed, max_steps_per_epoch=max_steps,
                strategy=options.strategy, precision=options.precision, jit_compile=options.jit_compile,
                data_dir=options.data_dir, deterministic=options.deterministic)
            # Resolving validates: every run is checked before any trains.
            runs.append(PlannedRun(run_id_of(identity, seed), configuration, seed, config,
                                   config.resolve(), downsized))
    return runs


def study_seeds(study: Study, options: Options) -> list[int]:
    """The seeds of the study's runs; under --seeds auto, all its budget may use, in order."""
    if options.auto_seeds:
        return seed_sequence(study.seeds, options.max_seeds)
    smoke = options.protocol == "smoke"
    return list(options.seeds or (study.seeds[: study.smoke.num_seeds] if smoke else study.seeds))


def smoke_downsize(model: str, overrides: dict, smoke: Smoke):
    """Nets too big for a CPU smoke run, made small enough, and a note saying how."""
    preset = preset_of(model)
    kwargs = {**preset.kwargs, **overrides}
    if (kwargs.get("input_shape") or preset.input_shape)[0] > smoke.imagenet_input[0]:  # an ImageNet-sized input
        return {**overrides, "input_shape": smoke.imagenet_input}, f"input {'x'.join(map(str, smoke.imagenet_input))}"
    if "widen_factor" not in inspect.signature(preset.builder).parameters:
        return overrides, ""  # only nets with a width to narrow: no build (a second one per run) to count the others
    with builder_arguments():
        macs = count_macs(preset.build(**overrides))
    if macs > smoke.max_macs:
        widen_factor = kwargs["widen_factor"]
        # MACs grow as widen_factor^2: the widest net that fits the budget.
        narrow = max(1, math.floor(widen_factor * math.sqrt(smoke.max_macs / macs)))
        return {**overrides, "widen_factor": narrow}, f"widen_factor {widen_factor} -> {narrow}"
    return overrides, ""


def describe_study(study: Study, options: Options, runs: list[PlannedRun]) -> records.StudyRecord:
    """study.json: what `ablation report` needs to rebuild the tables without the study module."""
    seeding = (records.Seeding(auto=True, sequence=tuple(study_seeds(study, options)),
                               looks=tuple(auto_looks(options.max_seeds))) if options.auto_seeds else records.Seeding())
    return records.StudyRecord(
        name=study.name, question=study.question, varies=tuple(study.varies),
        heatmap=tuple(study.heatmap) if study.heatmap else None, protocol=options.protocol,
        protocol_description=describe_protocol(study, options), published_protocol=study.published_protocol,
        baseline=study.baseline_name, cumulative=study.cumulative, seeding=seeding,
        configurations=tuple(records.ConfigurationEntry(c.name, c.model, c.published_error, c.versus)
                             for c in study.configurations),
        runs=tuple(records.PlannedRunEntry(r.run_id, r.configuration.name, r.seed, r.downsized, r.resolved.to_json())
                   for r in runs))


def declare(results_dir: Path, study: records.StudyRecord, *, dry_run: bool = False, log=print) -> None:
    """Write study.json, the tables' declaration, unless the folder holds another study's: its runs
    would fall out of the tables, nothing saying so (a team's shared folder, two sweeps given one
    --name). A declaration of the same runs or more replaces the folder's (seeds or configurations
    added; a study module declaring a sweep's runs); one of fewer keeps it, which still counts them
    all; one that leaves out runs of the folder's and adds others, or declares another run under one
    run id, is refused, naming a --name or --results-dir of its own. Under the report lock: two
    workers that declare at once read and write one after the other. `dry_run`: the check alone."""
    if dry_run:
        _merged(_existing(results_dir), study, results_dir)
        return
    with locks.report_lock(results_dir):
        kept = _merged(_existing(results_dir), study, results_dir)
        if kept is study:
            records.write_study(results_dir, study)
    if kept is not study:
        log(f"{results_dir / layout.STUDY_FILE} declares {len(kept.runs)} runs, this call's {len(study.runs)} "
            f"among them: it is kept, so the tables count them all")


def _existing(results_dir: Path) -> records.StudyRecord | None:
    try:
        return records.read_study(results_dir)
    except (ConfigError, DamagedFile):  # none yet, or one that no longer reads: today's declaration replaces it
        return None


def _merged(existing: records.StudyRecord | None, study: records.StudyRecord, results_dir: Path) -> records.StudyRecord:
    """The declaration the folder keeps: `study`, or `existing` if it declares every run of `study` and
    more; ConfigError if neither declares the other's runs."""
    if existing is None:
        return study
    elsewhere = "expected the same study there, or its own --name or --results-dir"
    theirs = {run.run_id: run_identity(io.json_roundtrip(run.run)) for run in existing.runs}  # as JSON holds them
    ours = {run.run_id: run_identity(io.json_roundtrip(run.run)) for run in study.runs}
    if other := next((run_id for run_id in sorted(ours.keys() & theirs.keys()) if ours[run_id] != theirs[run_id]), None):
        said = "; ".join(f"{key} {there!r} there, {here!r} here" for key, there, here in _unlike(theirs[other], ours[other]))
        raise ConfigError(f"{results_dir} declares {other} with other settings than this call ({said}); {elsewhere}.")
    if theirs.keys() <= ours.keys():
        return study
    if ours.keys() <= theirs.keys():
        return existing
    only_theirs, only_ours = sorted(theirs.keys() - ours.keys()), sorted(ours.keys() - theirs.keys())
    raise ConfigError(f"{results_dir} holds another study ({existing.name!r}): its runs include {only_theirs[0]}"
                      f"{f' and {len(only_theirs) - 1} more' if len(only_theirs) > 1 else ''}, this call's "
                      f"{only_ours[0]}{f' and {len(only_ours) - 1} more' if len(only_ours) > 1 else ''}, which "
                      f"the other does not; {elsewhere}.")


def _unlike(there: dict, here: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(setting, value there, value here) of each setting two runs' identities give differently."""
    out = []
    for key in sorted(there.keys() | here.keys()):
        a, b = there.get(key), here.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _unlike(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((prefix + key, a, b))
    return out


def describe_protocol(study: Study, options: Options) -> str:
    if options.protocol == "smoke":
        seeds = f", seeds auto (at most {options.max_seeds})" if options.auto_seeds else ""
        return (f"SMOKE protocol: {options.epochs or study.smoke.epochs} epochs of at most "
                f"{study.smoke.max_steps_per_epoch} steps, nets above {study.smoke.max_macs / 1e6:.0f}M MACs "
                f"downsized{seeds}; a pipeline check, not comparable to published numbers")
    seeds = (f"seeds auto (at most {options.max_seeds}: {', '.join(map(str, study_seeds(study, options)))})"
             if options.auto_seeds else f"seeds {', '.join(map(str, options.seeds or study.seeds))}")
    epochs = f"{options.epochs} epochs (not the recipe's)" if options.epochs else "the recipe's epochs"
    return f"paper protocol: {epochs}, {seeds}, final-epoch test error"


def labelled_folder(results_dir: Path, run: PlannedRun) -> Path | None:
    """The folder this run had when run ids were named by the label (before 2026-12), if it holds
    this very run and has not been renamed yet (records.older_folder)."""
    return records.older_folder(records.run_dir_of(results_dir, run_id_of(slug(run.configuration.name), run.seed)),
                                records.run_dir_of(results_dir, run.run_id), run.resolved.to_json(), run_identity)
