import sys

from ablation import import_tensorflow_quietly
from ablation.cli import main

import_tensorflow_quietly()
sys.exit(main())
