"""A net in Keras's own layers: what a saved `.keras` file holds, so that it loads anywhere.

Our nets use two layers of their own: `FusedBatchNormalization` (Keras's layer on TensorFlow's
fused kernel) and `ZeroPadShortcut` (option A). A `.keras` file that names them loads only where
this package is importable; a colleague, a serving stack or a converter has Keras alone. Each of
our layers says what it is in Keras's own layers (`keras_equivalent`); `portable(model)` rebuilds
the graph with those and copies the weights, so that

    keras.saving.load_model("final.keras")

works with Keras and TensorFlow only, and gives the same logits.
"""

from __future__ import annotations

import keras


def portable(model: keras.Model, weights_of=None) -> keras.Model:
    """The same net and weights in Keras's own layers (see the module); `weights_of`: as copy_weights."""
    # Cloned from a plain view of the graph: clone_model compiles a clone as its model was, and
    # the file should hold no optimizer, loss or schedule of ours, nor a training model's class.
    graph = keras.Model(model.input, model.output, name=model.name)
    copy = keras.models.clone_model(graph, clone_function=_keras_layer)
    copy_weights(model, copy, weights_of)
    return copy


def copy_weights(source: keras.Model, target: keras.Model, weights_of=None) -> None:
    """`source`'s weights into its portable copy, layer by layer (the copy keeps every layer's name);
    `weights_of(layer)`, if given, says which values a layer's weights take (e.g. their averages)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(weights_of(layer) if weights_of else layer.get_weights())


def _keras_layer(layer):
    if hasattr(layer, "keras_equivalent"):
        return layer.keras_equivalent()
    return layer.__class__.from_config(layer.get_config())
