"""Tune the dropout rate with keras-tuner, the way the WRN paper chose 0.3 on CIFAR: by validation.

A search over dropout 0.0 ... 0.5 (step 0.05) on WRN-28-2 with the WRN recipe, scored on the
validation split only; every execution of a trial has its own seed and its own score; the best
rate is retrained through the normal run path and tested once.

    python -m studies.tune_dropout                              # bayesian, 10 trials, 200 epochs each
    python -m studies.tune_dropout --protocol smoke               # 3 trials in minutes on a CPU
    python -m studies.tune_dropout --tuner hyperband --epochs 60

Calling it again continues the search. Distributed: start a chief and workers on a shared
results directory (see README, "Tuning the dropout rate").

Cost of the paper protocol: 11 x 200 epochs of WRN-28-2 (10 trials and the retrained winner).
"""

from ablation.study import SearchDefaults
from studies import main

SEARCH = SearchDefaults(model="wrn-28-2", dataset="cifar10", max_trials=10, executions_per_trial=1)

if __name__ == "__main__":
    main(SEARCH, name="tune_dropout")
