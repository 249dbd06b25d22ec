"""Cross-layer equalization (CLE) before post-training int8 (Nagel et al., "Data-Free Quantization", 2019).

A Conv2D/Dense whose output goes through only positively homogeneous layers (ReLU or no activation,
MaxPool, Dropout, Flatten) into another Conv2D/Dense computes the same function when its output
channel i is divided by s_i > 0 and the next layer's inputs of channel i are multiplied by s_i
(ReLU(z/s) = ReLU(z)/s). Choosing s_i = sqrt(r1_i * r2_i) / r2_i, with r1_i the range of channel i's
weights in the first layer and r2_i that of its inputs' weights in the second, gives both the range
sqrt(r1_i * r2_i): one channel scaled far above its neighbours (which ruins the per-tensor int8 grid of
the activation it writes) is brought back in line with no layer left float. After a Flatten the Dense
input index is position * C + c (NHWC), so one scale per channel is tiled over the positions.

BatchNormalization is folded first (quantize.batchnorm) so every pair is two plain kernels. The pairs are
swept a few times until the scales settle (a layer is the second of one pair and the first of the next).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_mnist.core.tfenv import import_tf
from edge_mnist.quantize.batchnorm import fold_batchnorm

BY_DEFAULT = False  # export --equalize's default: off (benchmarks/results/*-equalize.md, docs/quantization.md)
DETAILS_KEY = "equalization"  # the manifest detail (and file metadata entry) of an equalized int8 file
SWEEPS = 20  # at most this many passes over the pairs
SETTLED = 1e-4  # stop when no scale of a sweep moves further than this from 1


@dataclass(frozen=True)
class Rescaled:
    """One equalized pair: the layers, how many channels and the range of the total scales (first layer's
    channel divided by the scale, the second's inputs multiplied by it)."""

    first: str
    second: str
    channels: int
    min_scale: float
    max_scale: float

    def describe(self) -> str:
        """'conv1>conv2 32 ch x0.41..3.9'."""
        return f"{self.first}>{self.second} {self.channels} ch x{self.min_scale:.3g}..{self.max_scale:.3g}"


@dataclass(frozen=True)
class Equalization:
    """What `equalize` rescaled, for the manifest."""

    pairs: tuple[Rescaled, ...]
    sweeps: int

    def describe(self) -> str:
        """The manifest's one-line note (also written into the int8 files)."""
        if not self.pairs:
            return "no Conv2D/Dense pair to equalize"
        return f"cross-layer equalization, {self.sweeps} sweep(s): " + "; ".join(p.describe() for p in self.pairs)


def equalize(model) -> tuple[object, Equalization]:
    """A BatchNorm-folded, cross-layer-equalized copy of a Sequential tf_keras `model` (the same float function)
    and the record of what was rescaled; `model` itself is not modified. A model that is not a Sequential
    comes back as it is, with no pair."""
    _, keras = import_tf()
    if not isinstance(model, keras.Sequential):
        return model, Equalization((), 0)
    folded = fold_batchnorm(model, through_relu=True)
    pairs = find_pairs(keras, folded.layers)
    weights = {layer.name: [w.astype(np.float64) for w in layer.get_weights()] for layer in folded.layers
               if layer.name in {name for pair in pairs for name in pair[:2]}}
    totals = {pair[:2]: np.ones(_channels(weights[pair[0]][0])) for pair in pairs}
    sweeps = 0
    for sweeps in range(1, SWEEPS + 1):
        moved = 0.0
        for first, second, positions in pairs:
            scale = _equalize_pair(weights[first], weights[second], positions)
            totals[(first, second)] *= scale
            moved = max(moved, float(np.abs(np.log(scale)).max(initial=0.0)))
        if moved < SETTLED:
            break
    for layer in folded.layers:
        if layer.name in weights:
            layer.set_weights([w.astype(np.float32) for w in weights[layer.name]])
    record = tuple(Rescaled(first, second, len(totals[(first, second)]), float(totals[(first, second)].min()),
                            float(totals[(first, second)].max())) for first, second, _ in pairs)
    return folded, Equalization(record, sweeps if pairs else 0)


def find_pairs(keras, layers) -> list[tuple[str, str, int]]:
    """(first, second, positions) for each Conv2D/Dense whose output reaches the next Conv2D/Dense through
    positively homogeneous layers only; `positions` is how many pixels a Flatten between them tiles each
    channel over (1 without one)."""
    pairs = []
    for index, layer in enumerate(layers):
        if not _linear(keras, layer) or layer.get_config().get("activation") not in ("relu", "linear"):
            continue
        positions = 1
        for after in layers[index + 1:]:
            if _linear(keras, after):
                pairs.append((layer.name, after.name, positions))
                break
            if isinstance(after, keras.layers.Flatten):
                positions = int(np.prod(after.input_shape[1:-1]))
            elif not _homogeneous(keras, after):
                break
    return pairs


def _linear(keras, layer) -> bool:
    """A Conv2D (not depthwise, not grouped) or Dense: a kernel whose last axis is the output channel and whose
    second-to-last is the input channel."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return False
    if isinstance(layer, keras.layers.Conv2D):
        return layer.groups == 1
    return isinstance(layer, keras.layers.Dense)


def _homogeneous(keras, layer) -> bool:
    """A layer f with f(x * s) = f(x) * s per channel for s > 0, keeping the channel axis last."""
    layers = keras.layers
    if isinstance(layer, (layers.MaxPooling2D, layers.Dropout)):
        return True
    if isinstance(layer, layers.ReLU):
        return layer.max_value is None and float(layer.threshold) == 0.0
    if isinstance(layer, layers.Activation):
        return layer.get_config()["activation"] in ("relu", "linear")
    return False


def _channels(kernel: np.ndarray) -> int:
    """Output channels of a Conv2D/Dense kernel."""
    return kernel.shape[-1]


def _equalize_pair(first: list[np.ndarray], second: list[np.ndarray], positions: int) -> np.ndarray:
    """Rescale one pair in place (kernel and bias of `first`, kernel of `second`); returns the scales s_i.
    A channel with no weight on either side (a dead channel) keeps s_i = 1."""
    kernel1, bias1 = first
    kernel2 = second[0]
    channels = _channels(kernel1)
    inputs = kernel2.reshape(*kernel2.shape[:-2], positions, channels, kernel2.shape[-1])
    r1 = np.abs(kernel1).reshape(-1, channels).max(axis=0)
    r2 = np.abs(np.moveaxis(inputs, -2, 0)).reshape(channels, -1).max(axis=1)
    scale = np.ones(channels)
    alive = (r1 > 0) & (r2 > 0)
    scale[alive] = np.sqrt(r1[alive] * r2[alive]) / r2[alive]
    kernel1 /= scale
    bias1 /= scale
    inputs *= scale[:, None]
    return scale


__all__ = ["equalize", "Equalization", "Rescaled", "find_pairs", "BY_DEFAULT", "DETAILS_KEY"]
