"""The shared basics: results-folder layout and records, files, errors, valid values, the console, figures.

Where this package sits among the others: the map in `ablation/__init__.py`.
"""
