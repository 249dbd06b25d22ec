"""Exact folding of inference-mode BatchNormalization into neighbouring Dense layers.

Used for QAT (tfmot has no BatchNorm-after-Dense pattern).
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgeMnistError
from ..tfenv import import_tf


def fold_batchnorm(model, through_relu: bool = False):
    """Return a copy of a Sequential `model` with each BatchNorm folded away, exactly.

    By default BatchNorm folds into the following Dense (Dropout between them is the
    identity at inference): W' = diag(g/s) W, b' = b + (beta - mean*g/s) W.

    through_relu=True moves the scale g/s into the preceding Dense instead when that Dense
    ends in ReLU and every scale is positive, because ReLU(z)*c = ReLU(z*c) for c > 0; only
    the shift goes into the next Dense's bias, so the next Dense keeps its own weight range,
    which per-tensor int8 wants. Where a scale is not positive it folds forward as by default.
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
        raise EdgeMnistError(f"{model.name}: a BatchNormalization with no following Dense cannot be folded")
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
