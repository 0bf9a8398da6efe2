"""The ablation framework: data, recipes, distribution, single runs, studies, exports, tuning.

Command line: `python -m ablation {train,report,models,bench} --help`; studies: `python -m
studies.NAME --help`. The modules form layers, each importing only from those below it
(checked by `lint-imports`, configured in pyproject.toml):

    6  cli, __main__                         command lines
    5  runner, tuning | study                running studies and searches | study declarations
    4  report, diagrams, bench               study tables, diagrams, the benchmark
    3  run                                   one training run and its exports
    2  config, callbacks                     RunConfig -> ResolvedRun, build_model, make_pipeline
    1  recipes, distribute, data, records, plots
    0  io, console, errors, choices          atomic files, the exit protocol, valid values
"""
