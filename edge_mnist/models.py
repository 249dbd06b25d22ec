"""Architecture registry (reference CNN first) and the BatchNorm fold used for QAT.

Models are built with tf_keras (Keras 2) because tensorflow-model-optimization rejects
Keras 3 models; TensorFlow is imported only when a model is built.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .tfenv import import_tf

REFERENCE_PARAMS = 845_706


def reference_cnn():
    """Conv32-3x3, MaxPool, Conv64-3x3, MaxPool, Flatten, Dense512-ReLU, BatchNorm, Dropout 0.5, Dense10-softmax."""
    _, keras = import_tf()
    layers = keras.layers
    return keras.Sequential(
        [
            layers.Input((28, 28, 1), name="image"),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(512, activation="relu", name="dense1"),
            layers.BatchNormalization(name="bn"),
            layers.Dropout(0.5, name="dropout"),
            layers.Dense(10, activation="softmax", name="probs", dtype="float32"),
        ],
        name="reference_cnn",
    )


ARCHITECTURES: dict[str, Callable] = {"reference_cnn": reference_cnn}


def build(name: str = "reference_cnn"):
    """Build an architecture from the registry by name."""
    from .errors import EdgeMnistError

    if name not in ARCHITECTURES:
        raise EdgeMnistError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]()


def fold_batchnorm(model):
    """Return a copy of `model` with each inference-mode BatchNorm folded into the next Dense.

    In the reference CNN BatchNorm follows Dense512-ReLU, so it cannot fold into the preceding
    Dense (the ReLU sits between); it folds exactly into the following Dense10 because Dropout
    is the identity at inference: W' = diag(g/s) W, b' = b + (beta - mean*g/s) W. tfmot's
    default QAT scheme has no BatchNorm-after-Dense pattern, and the folded model needs none.
    The original model is not modified.
    """
    _, keras = import_tf()
    kept, pending = [], None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            pending = _bn_affine(layer)
            continue
        clone = layer.__class__.from_config(layer.get_config())
        weights = layer.get_weights()
        if pending is not None and isinstance(layer, keras.layers.Dense):
            scale, shift = pending
            kernel, bias = weights
            weights = [kernel * scale[:, None], bias + shift @ kernel]
            pending = None
        kept.append((clone, weights))
    if pending is not None:
        raise ValueError("BatchNormalization with no following Dense cannot be folded")
    folded = keras.Sequential([keras.layers.Input(model.input_shape[1:], name="image")] + [c for c, _ in kept],
                              name=f"{model.name}_bnfolded")
    for clone, weights in kept:
        clone.set_weights(weights)
    return folded


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as y = x*scale + shift."""
    gamma, beta, mean, var = layer.get_weights()
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)
