"""The ablation framework: data, recipes, distribution, single runs, studies, exports, tuning.

Command line: `python -m ablation {train,report,models,bench} --help`.
"""
