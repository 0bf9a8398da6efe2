"""What a study's folder shows: tables and verdicts rebuilt from its runs, pages, diagrams.

Where this package sits among the others: the map in `ablation/__init__.py`.
"""
