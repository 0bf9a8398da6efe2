"""Every command line: `python -m ablation {train,report,serve,sweep,models,axes,bench}`, `python -m studies.NAME`
and the search modules. The top layer: it parses, calls the library, and turns errors into exits.

Bad input ends with one line on stderr naming the bad value and exit status 2, no traceback
(set ABLATION_DEBUG=1 to see it); a failed run with one line naming its failure.json and exit 1;
a run folder another process trains, exit 75. Ctrl-C keeps every finished epoch: run the command
again. (The statuses: ablation.core.errors.)

`main`, `study_main` and `search_main` change no process-wide state, so tests call them directly;
the entry points (`ablation/__main__.py`, the `__main__` blocks of the study modules) call
`console.prepare_console()` first.
"""

from ablation.cli.commands import build_parser, main
from ablation.cli.options import train_config
from ablation.cli.studies import search_main, study_main

__all__ = ["build_parser", "main", "search_main", "study_main", "train_config"]
