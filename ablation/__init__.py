"""The ablation framework: from a study's declaration to its runs, verdicts and pages.

Command line: `python -m ablation --help` (train, report, models, axes, bench, sweep, serve); studies:
`python -m studies.NAME --help`.

The map below is the one description of the framework's architecture (the README and the modules
point here). How to read it: each line is a layer that imports only from the lines below it; a name
ending in "/" is a package, and the indented lines under it are its modules, layered the same way
inside it; names on one line separated by "|" do not import each other, and the text beside them
says what each holds, in the same order, also separated by "|". `lint-imports` enforces the layers
(pyproject.toml) and tests/test_layout.py checks that this map names every package and module, in
the contract's order.

    __main__                            `python -m ablation ...`
    cli/                                the command lines: they parse, call the library, and turn errors into exits
        commands                        `python -m ablation {train,report,serve,sweep,models,axes,bench}`
        studies                         `python -m studies.NAME`, and the search modules
        options                         every option, spelled once (a run's, a study's, the device's)
    study/                              studies and searches, from declaration to finished runs
        sweep                           `ablation sweep`: a study declared on the command line
        runner | tuning | parallel      a study's runs, start to tables | the dropout search (keras-tuner) | --parallel N
        dry_run                         --dry-run: the plan, its status and cost
        seeding                         --seeds auto: which seeds the next look needs, and its rounds
        claiming                        workers: the runs they claim (locks) or the share they are dealt
        planning                        a study's runs and run ids, and the study.json recording them
        cost | declaration              the cost before launch | Study, Configuration, Options: what a study declares
    report/                             what a study's folder shows: tables, verdicts, pages, diagrams
        tables                          results.csv, comparisons.csv, summary.md, results.tex, rebuilt from the runs
        summary | server | diagrams | hparams | figures   summary.md and results.tex | `serve` | the net's diagrams |
                                        TensorBoard's HParams | the plots
        pages                           the HTML pages of a study, a search and a run
        escaping                        what a page or results.tex may show of a folder's text
    run/                                one training run, the way the papers did it
        training | bench                `train`: a resumable run and its exports | the speed benchmark
        setup                           the one set-up of a run: net, recipe, strategy, precision, pipeline
        config | callbacks              RunConfig -> ResolvedRun, build_model | the per-epoch records
        recipes | distribute | data     the papers' recipes | tf.distribute and precision | tfds and npz data
        recipe_model | augment          the net as its recipe trains it (EMA, targets) | augmentation of whole batches
        axes                            every knob of a run, declared once
        randaugment | npz               RandAugment's 14 ops, as torchvision computes them | npz archives, checked
    statistics                          verdicts over seeds: paired t, Holm, the sequential looks (no TensorFlow)
    design                              how many seeds: the looks of --seeds auto, their boundary, power
    core/                               the shared basics
        run_folder | plots              a run's status (done, stale, ...), states and damage | a run's figures
        records                         every record file as a type: read, upgraded from older formats, written
        record_types | locks | io | console   the records' types | the locks | atomic files | exit and progress lines
        choices                         the valid values of every setting, and their one check
        layout | errors                 every file name in a results folder | the errors

Below the framework, knowing nothing of it: `builders` (the nets); above it: `studies` (one module
per study), and above those `benchmarks` (scripts whose figures docs/benchmarks.md quotes).
"""
