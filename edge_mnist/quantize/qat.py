"""Quantization-aware fine-tuning with tfmot's default 8-bit scheme, on a BatchNorm-folded copy.

tfmot starts every activation range at [-6, 6] and moves it by a moving average (decay 0.999
per step), so after an epoch or two a range after ReLU still reaches far below zero: half of
the int8 codes are wasted and the zero point is not the int8 minimum, which keeps onnxruntime
from fusing the ReLU into its integer kernels. The ranges are therefore set from calibration
images before fine-tuning, as post-training quantization does: [0, max] after a ReLU, where
the moving average of batch minima then stays at exactly 0.
"""
from __future__ import annotations

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.core.tfenv import import_tf
from edge_mnist.data import Dataset
from edge_mnist.quantize.batchnorm import fold_batchnorm
from edge_mnist.train import fit

LEARNING_RATE = 1e-4  # fine-tuning from a trained model: a tenth of training's default
RANGE_SUFFIXES = {"pre_activation": ("pre_activation_min", "pre_activation_max"),
                  "post_activation": ("post_activation_min", "post_activation_max")}


def activation_ranges(model, calib: np.ndarray) -> dict[str, dict[str, tuple[float, float]]]:
    """Per layer name, the (min, max) before and after its activation over the calibration images.

    Ranges always include 0, as TFLite's calibration does, so 0 is exactly representable. A
    layer whose pre-activation values cannot be recovered here (an activation other than identity,
    the ReLU family or a Dense softmax) gets no pre-activation range and keeps tfmot's.
    """
    _, keras = import_tf()
    layers = [layer for layer in model.layers if hasattr(layer, "activation")]
    probe = keras.Model(model.inputs, [t for layer in layers for t in (layer.input, layer.output)])
    outputs = probe.predict(calib, batch_size=256, verbose=0)
    ranges = {}
    for i, layer in enumerate(layers):
        inputs, post = outputs[2 * i], outputs[2 * i + 1]
        ranges[layer.name] = {"post_activation": (min(0.0, float(post.min())), max(0.0, float(post.max())))}
        pre = _pre_activation(keras, layer, inputs, post)
        if pre is not None:
            ranges[layer.name]["pre_activation"] = (min(0.0, float(pre.min())), max(0.0, float(pre.max())))
    return ranges


def _pre_activation(keras, layer, inputs: np.ndarray, post: np.ndarray) -> np.ndarray | None:
    """A Dense layer's logits before softmax (tfmot quantizes those); the output itself for an
    identity or ReLU-family activation; None for any other activation (not recoverable here)."""
    activation = layer.activation
    if isinstance(layer, keras.layers.Dense) and activation is keras.activations.softmax:
        kernel, bias = layer.get_weights()
        return inputs @ kernel + bias
    if getattr(activation, "__name__", "") in ("linear", "relu", "relu6"):
        return post
    return None


def calibrate_ranges(qat, ranges: dict[str, dict[str, tuple[float, float]]]) -> int:
    """Assign calibrated ranges to the QAT model's activation quantizer variables; returns how many."""
    assigned = 0
    for layer in qat.layers:
        inner = getattr(getattr(layer, "layer", None), "name", None)
        if inner not in ranges:
            continue
        for weight in layer.weights:
            for kind, (min_name, max_name) in RANGE_SUFFIXES.items():
                if kind not in ranges[inner]:
                    continue
                low, high = ranges[inner][kind]
                if weight.name.endswith(f"/{min_name}:0"):
                    weight.assign(low)
                    assigned += 1
                elif weight.name.endswith(f"/{max_name}:0"):
                    weight.assign(high)
                    assigned += 1
    return assigned


def qat_finetune(model, dataset: Dataset, epochs: int, batch_size: int, seed: int, calib: np.ndarray | None = None,
                 learning_rate: float = LEARNING_RATE):
    """Return (QAT model, per-epoch metrics) fine-tuned from a copy of `model`.

    tfmot's default scheme only knows BatchNormalization right after a linear Conv2D or Dense,
    so in a Sequential model BatchNorm is folded away first (batchnorm.fold_batchnorm, its scale
    through the ReLU into the layer before it where it can, so the next layer keeps its own
    per-tensor weight range): the float model itself is never changed. A functional model goes
    to tfmot as it is; a layer tfmot cannot quantize is a one-line error suggesting PTQ. With `calib`, activation ranges start
    from those images (module docstring); without it, from tfmot's [-6, 6].
    """
    _, keras = import_tf()

    tfmot = require("tensorflow_model_optimization", "train")
    keras.utils.set_random_seed(seed)
    folded = fold_batchnorm(model, through_relu=True) if isinstance(model, keras.Sequential) else model
    try:
        qat = tfmot.quantization.keras.quantize_model(folded)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EdgeMnistError(f"{model.name}: quantization-aware training is not possible for this model "
                             f"(tfmot: {reason}); use --method ptq") from exc
    if calib is not None and not calibrate_ranges(qat, activation_ranges(folded, calib)):
        raise EdgeMnistError(f"{model.name}: no tfmot activation range variable was found to calibrate "
                             "(tfmot's variable names changed?); QAT would start from [-6, 6]")
    metrics = fit(qat, dataset, epochs, batch_size, seed, learning_rate, label="QAT fine-tune")
    return qat, metrics
