"""A study small enough for the tests: WRN-10-1 with and without dropout, two seeds.

    python -m tests.tiny_study --protocol smoke --dataset npz:PATH --results-dir DIR
"""

from ablation.study import Configuration, Smoke, Study
from studies import main

STUDY = Study(
    name="tiny",
    question="Does dropout change a tiny net?",
    varies=("dropout_rate",),
    recipe="wrn",
    recipe_overrides={"batch_size": 32},
    seeds=(1, 2),
    configurations=[
        Configuration("WRN-10-1", "wrn-10-1", published_error=10.0),
        Configuration("WRN-10-1-dropout", "wrn-10-1", {"dropout_rate": 0.3}),
    ],
    smoke=Smoke(epochs=2, max_steps_per_epoch=3, num_seeds=2),
)

if __name__ == "__main__":
    main(STUDY)
