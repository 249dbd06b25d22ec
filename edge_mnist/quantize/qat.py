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


def quantized_copy(folded, float_layers: tuple[str, ...] = ()):
    """tfmot's QAT model of `folded` with every layer annotated except `float_layers` (Keras names).

    An unannotated layer keeps float weights and activations; where an annotated layer reads its output,
    tfmot still quantizes that output (its OutputOnlyConfig), which is where int8 resumes, as in the
    post-training mixes of quantize.mixed. With no float layers this is tfmot's quantize_model.
    """
    _, keras = import_tf()
    tfmot = require("tensorflow_model_optimization", "train")
    quantization = tfmot.quantization.keras
    if not float_layers:
        return quantization.quantize_model(folded)
    annotated = keras.models.clone_model(
        folded, clone_function=lambda layer: layer if layer.name in float_layers else
        quantization.quantize_annotate_layer(layer))
    with quantization.quantize_scope():
        return quantization.quantize_apply(annotated)


def with_followers(model, float_layers: tuple[str, ...]) -> tuple[str, ...]:
    """`float_layers` and every pooling, reshape or dropout layer between two of them (all its inputs and all
    its consumers float, through chains of such layers). Those keep their input's grid (quantize.mixed.
    PASS_THROUGH): annotating one would quantize the float output onto a grid the next float layer never
    needed. One before an annotated layer stays annotated, so tfmot quantizes the float output there in
    training just as the converter does in the file."""
    _, keras = import_tf()
    pass_through = (keras.layers.MaxPooling2D, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout)
    links = {layer.name: (_neighbours(layer._inbound_nodes, "inbound_layers"),
                          _neighbours(layer._outbound_nodes, "outbound_layer")) for layer in model.layers}
    kept = set(float_layers) | {layer.name for layer in model.layers if isinstance(layer, pass_through)}
    changed = True
    while changed:  # the largest set in which every pass-through layer has only float neighbours
        between = {name for name in kept - set(float_layers)
                   if links[name][0] and set(links[name][0]) <= kept and set(links[name][1]) <= kept}
        changed, kept = between != kept - set(float_layers), set(float_layers) | between
    return tuple(layer.name for layer in model.layers if layer.name in kept)


def _neighbours(nodes, attribute: str) -> list[str]:
    """The names of the layers on one side of a layer's nodes (Keras gives one layer or a list per node)."""
    found = []
    for node in nodes:
        value = getattr(node, attribute)
        found += [layer.name for layer in (value if isinstance(value, (list, tuple)) else [value])]
    return found


def keras_names(qat) -> dict[str, str]:
    """Layer name in a QAT model's graph -> the Keras layer's own name (tfmot wraps `conv1` as `quant_conv1`)."""
    return {layer.name: getattr(getattr(layer, "layer", None), "name", layer.name) for layer in qat.layers}


def float_model(qat):
    """The QAT model with its fake quantization off: the same graph of the wrapped layers themselves, with the
    fine-tuned float weights and without tfmot's quantizers (its input QuantizeLayer becomes an identity). It
    is what the QAT int8 artifacts approximate, so `debug` measures their error against it."""
    _, keras = import_tf()

    def unwrapped(layer):
        """A fresh float copy of one layer of the QAT model."""
        if type(layer).__name__ == "QuantizeLayer":
            return keras.layers.Activation("linear", name=layer.name)
        inner = getattr(layer, "layer", layer)
        return inner.__class__.from_config(inner.get_config())

    tfmot = require("tensorflow_model_optimization", "train")
    with tfmot.quantization.keras.quantize_scope():
        clone = keras.models.clone_model(qat, clone_function=unwrapped)
    for source, copy in zip(qat.layers, clone.layers):
        copy.set_weights(_float_weights(source, copy))
    clone._name = qat.name
    return clone


def _float_weights(source, copy) -> list[np.ndarray]:
    """The values of `copy`'s weights in the QAT layer `source`, matched by their own names (`kernel:0`): a
    wrapper holds the layer's variables (under its own or the wrapper's name, as the file was loaded) beside the
    quantizers' ranges and step counter, whose names differ (`kernel_min:0`, `optimizer_step:0`)."""
    own = {w.name.split("/")[-1]: w for w in source.weights}
    return [own[w.name.split("/")[-1]].numpy() for w in copy.weights]


def qat_finetune(model, dataset: Dataset, epochs: int, batch_size: int, seed: int, calib: np.ndarray | None = None,
                 learning_rate: float = LEARNING_RATE, float_layers: tuple[str, ...] = ()):
    """Return (QAT model, per-epoch metrics) fine-tuned from a copy of `model`.

    tfmot's default scheme only knows BatchNormalization right after a linear Conv2D or Dense,
    so in a Sequential model BatchNorm is folded away first (batchnorm.fold_batchnorm, its scale
    through the ReLU into the layer before it where it can, so the next layer keeps its own
    per-tensor weight range): the float model itself is never changed. A functional model goes
    to tfmot as it is; a layer tfmot cannot quantize is a one-line error suggesting PTQ. With `calib`,
    activation ranges start from those images (module docstring); without it, from tfmot's [-6, 6].
    `float_layers` (and the pooling after them, with_followers) are left unannotated:
    `export --method qat --fallback` keeps them float.
    """
    _, keras = import_tf()

    keras.utils.set_random_seed(seed)
    folded = fold_batchnorm(model, through_relu=True) if isinstance(model, keras.Sequential) else model
    try:
        qat = quantized_copy(folded, with_followers(folded, float_layers) if float_layers else ())
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EdgeMnistError(f"{model.name}: quantization-aware training is not possible for this model "
                             f"(tfmot: {reason}); use --method ptq") from exc
    if calib is not None and not calibrate_ranges(qat, activation_ranges(folded, calib)):
        raise EdgeMnistError(f"{model.name}: no tfmot activation range variable was found to calibrate "
                             "(tfmot's variable names changed?); QAT would start from [-6, 6]")
    metrics = fit(qat, dataset, epochs, batch_size, seed, learning_rate, label="QAT fine-tune")
    return qat, metrics
