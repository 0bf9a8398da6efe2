import sys

from ablation.core.console import prepare_console

# Before the command line's import: it imports TensorFlow, which must come in quietly.
prepare_console()
from ablation.cli import main  # noqa: E402

sys.exit(main())
