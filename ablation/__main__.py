import sys

from ablation import prepare_console
from ablation.cli import main

prepare_console()
sys.exit(main())
