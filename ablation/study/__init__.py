"""Studies and searches: what a study module declares, and how its runs are planned, costed and run.

    from ablation.study import Configuration, Study

Importing this package (and so a study module) imports no TensorFlow: only the declarations.
Where this package sits among the others: the map in `ablation/__init__.py`.
"""

from ablation.study.declaration import Configuration, Options, SearchDefaults, Smoke, Study

__all__ = ["Configuration", "Options", "SearchDefaults", "Smoke", "Study"]
