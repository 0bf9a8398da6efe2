import os
import sys

# TensorFlow's C++ start-up chatter (oneDNN, missing CUDA) buries our progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ablation.cli import main

sys.exit(main())
