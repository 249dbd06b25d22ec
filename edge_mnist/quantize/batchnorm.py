"""Exact folding of inference-mode BatchNormalization into neighbouring layers of a Sequential model.

Used for QAT: tfmot's default scheme only has patterns for BatchNorm directly after a linear
Conv2D or Dense, while the architectures put it after a ReLU, a MaxPool or a Dropout.
BatchNorm at inference is a per-channel affine map y = x*scale + shift, and it goes away
exactly by these rules, tried in order:

1. Directly after a Conv2D/Dense with no activation (Dropout between is the identity at
   inference): into that layer's kernel and bias.
2. through_relu=True and every scale positive, after a ReLU Conv2D/Dense (MaxPool and Dropout
   between commute with a positive per-channel scale): the scale into that layer, because
   ReLU(z)*c = ReLU(z*c) for c > 0. Only the shift is left to place, so the next layer keeps its
   own weight range, which per-tensor int8 wants.
3. What is left moves forward through Dropout, Flatten (tiled per pixel) and MaxPool (when every
   scale is positive) into the next Dense or valid-padded Conv2D. Before a 'same'-padded Conv2D
   (its zero padding would not be shifted) or any other layer, it becomes a 1x1 DepthwiseConv2D
   with the scale as kernel and the shift as bias, which tfmot and every int8 runtime support.
"""
from __future__ import annotations

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.tfenv import import_tf
from edge_mnist.registry.formats import INPUT_NAME


def fold_batchnorm(model, through_relu: bool = False):
    """Return a copy of a Sequential `model` with every BatchNormalization folded away exactly
    (module docstring); the original model is not modified."""
    _, keras = import_tf()
    kept: list[tuple[object, list[np.ndarray]]] = []
    pending = None  # (scale, shift, BatchNorm name) still to be placed
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            pending = _absorb_backward(keras, kept, *_bn_affine(layer), through_relu)
            pending = None if pending is None else (*pending, layer.name)
            continue
        clone, weights = _clone_with_bias(keras, layer)
        if pending is not None:
            pending, weights = _carry_forward(keras, layer, weights, pending, kept)
        kept.append((clone, weights))
    if pending is not None:
        raise EdgeMnistError(f"{model.name}: a BatchNormalization with no following Dense cannot be folded")
    folded = keras.Sequential([keras.layers.Input(model.input_shape[1:], name=INPUT_NAME)] + [c for c, _ in kept],
                              name=f"{model.name}_bnfolded")
    for clone, weights in kept:
        clone.set_weights(weights)
    return folded


def _clone_with_bias(keras, layer) -> tuple[object, list[np.ndarray]]:
    """A fresh copy of `layer` and its weights; a Conv2D or Dense without a bias gets a zero one (the same
    function), so a BatchNorm after it has a bias to fold its shift into."""
    config, weights = layer.get_config(), layer.get_weights()
    if (isinstance(layer, _linear_layers(keras)) and not isinstance(layer, keras.layers.DepthwiseConv2D)
            and not config.get("use_bias", True)):
        config["use_bias"] = True
        weights = [*weights, np.zeros(weights[0].shape[-1], weights[0].dtype)]
    return layer.__class__.from_config(config), weights


def _linear_layers(keras) -> tuple:
    """Layer classes whose kernel's last axis is the output channel."""
    return keras.layers.Conv2D, keras.layers.Dense


def _producer(keras, kept: list, skip: tuple) -> int | None:
    """Index in `kept` of the last Conv2D/Dense, stepping back over layers of the `skip` classes only."""
    for index in range(len(kept) - 1, -1, -1):
        layer = kept[index][0]
        if isinstance(layer, _linear_layers(keras)):
            return index
        if not isinstance(layer, skip):
            return None
    return None


def _absorb_backward(keras, kept: list, scale: np.ndarray, shift: np.ndarray, through_relu: bool):
    """Rules 1 and 2: fold what can go into the layer before; return the (scale, shift) still to place."""
    index = _producer(keras, kept, (keras.layers.Dropout,))
    if index is not None and kept[index][0].get_config().get("activation") == "linear":
        kernel, bias = kept[index][1]
        kept[index] = (kept[index][0], [kernel * scale, bias * scale + shift])
        return None
    index = _producer(keras, kept, (keras.layers.Dropout, keras.layers.MaxPooling2D))
    if (through_relu and index is not None and (scale > 0).all()
            and kept[index][0].get_config().get("activation") == "relu"):
        kernel, bias = kept[index][1]
        kept[index] = (kept[index][0], [kernel * scale, bias * scale])
        scale = np.ones_like(scale)
    return scale, shift


def _carry_forward(keras, layer, weights: list, pending: tuple, kept: list):
    """Rule 3 for one layer: returns (what is still pending, the layer's weights)."""
    scale, shift, name = pending
    layers = keras.layers
    if isinstance(layer, layers.Dropout) or (isinstance(layer, layers.MaxPooling2D) and (scale > 0).all()):
        return pending, weights
    if isinstance(layer, layers.Flatten):
        pixels = int(np.prod(layer.input_shape[1:-1]))
        return (np.tile(scale, pixels), np.tile(shift, pixels), name), weights
    if isinstance(layer, layers.Dense) or (isinstance(layer, layers.Conv2D) and layer.padding == "valid"
                                           and not isinstance(layer, layers.DepthwiseConv2D)):
        kernel, bias = weights
        per_input = (slice(None),) if kernel.ndim == 2 else (None, None, slice(None))
        shifted = np.tensordot(shift, kernel, axes=([0], [kernel.ndim - 2])).sum(axis=tuple(range(kernel.ndim - 2)))
        return None, [kernel * scale[per_input + (None,)], bias + shifted]
    if len(layer.input_shape) != 4:
        raise EdgeMnistError(f"BatchNormalization {name!r} before layer {layer.name!r} cannot be folded")
    kept.append((layers.DepthwiseConv2D(1, name=name), [scale.reshape(1, 1, -1, 1), shift]))
    return None, weights


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as y = x*scale + shift."""
    gamma, beta, mean, var = layer.get_weights()
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)
