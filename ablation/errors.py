"""The one exception for bad input.

Validators raise `ConfigError` naming the bad value and what would be valid; command lines show
it as one line and exit with status 2. The builders, which know nothing of this framework, raise
plain ValueError for bad arguments; `ablation.run` turns those into ConfigError where it builds a
net from a configuration. Any other exception inside a run (Keras, TensorFlow, a full disk) is a
run failure, recorded in the run's failure.json and retried by the next call, never bad input.
"""


class ConfigError(ValueError):
    """A value that is not valid, named together with what would be."""
