"""Architecture registry (reference CNN first) and the exact BatchNorm folds used for QAT and int8 ONNX.

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


def fold_batchnorm(model, through_relu: bool = False):
    """Return a copy of `model` with each inference-mode BatchNorm folded away (exactly).

    In the reference CNN BatchNorm follows Dense512-ReLU. By default it folds into the
    following Dense10, because Dropout is the identity at inference:
    W' = diag(g/s) W, b' = b + (beta - mean*g/s) W. tfmot's default QAT scheme has no
    BatchNorm-after-Dense pattern, and the folded model needs none.

    through_relu=True moves the scale g/s into the preceding Dense instead, which is exact when
    every scale is positive because ReLU(z)*c = ReLU(z*c) for c > 0; only the shift goes into
    the next Dense's bias. Dense10's weights then keep their own range, which per-tensor int8
    quantization wants (ONNX PTQ: 99.69% agreement with float against 99.25% for the default
    fold; benchmarks/README.md). Where a scale is not positive it falls back to the default.
    The original model is not modified.
    """
    _, keras = import_tf()
    kept, pending = [], None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            scale, shift = _bn_affine(layer)
            if through_relu and _is_relu_dense(keras, kept[-1][0] if kept else None) and (scale > 0).all():
                kernel, bias = kept[-1][1]
                kept[-1] = (kept[-1][0], [kernel * scale, bias * scale])
                scale = np.ones_like(scale)
            pending = (scale, shift)
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


def _is_relu_dense(keras, layer) -> bool:
    """A Dense layer whose own activation is ReLU (so a positive scale commutes with it)."""
    return isinstance(layer, keras.layers.Dense) and layer.get_config().get("activation") == "relu"


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as y = x*scale + shift."""
    gamma, beta, mean, var = layer.get_weights()
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)
