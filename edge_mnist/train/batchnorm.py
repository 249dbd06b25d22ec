"""BatchNorm's moving statistics recomputed with the trained weights ("precise BN", Wu & Johnson 2021).

Keras keeps each BatchNormalization layer's inference statistics as an exponential moving average (momentum
0.99) of the batch statistics seen while the weights were still changing. On a long run they settle; on a short
run over a small dataset they lag far behind the final weights: compact trained 10 epochs on scikit-learn's 1,437
training digits (120 steps) scores 7.8% with its moving statistics and 98.6% once they are recomputed. Every
exported file inherits the statistics (they are folded into the convolutions), so training recomputes them before
the model is evaluated and saved. Training itself is unchanged: a training step normalizes with its batch's own
statistics.
"""
from __future__ import annotations

RECALIBRATION_BATCHES = 100  # up to 12,800 training images at batch 128: the estimate's error is then negligible


def batchnorm_layers(model, keras) -> list:
    """The model's BatchNormalization layers, those of nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batchnorm_layers(layer, keras))
    return found


def recalibrate(model, keras, batches) -> int:
    """Replace the moving mean and variance of every BatchNormalization layer by the average of their batch
    statistics over `batches` (an iterable of (images, labels)) under the current weights; return the number of
    images used (0 for a model without BatchNorm, which is left untouched).

    Batch k is folded in with momentum 1 - 1/k, so after K batches each statistic is the plain mean of the K
    batch statistics. The model runs in training mode, as during training, so Dropout before a BatchNorm acts as
    it did when Keras gathered the statistics. Runs eagerly, so each call reads the momentum just set."""
    layers = batchnorm_layers(model, keras)
    if not layers:
        return 0
    kept = [layer.momentum for layer in layers]
    seen = 0
    try:
        for k, (images, _) in enumerate(batches, start=1):
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / k
            model(images, training=True)
            seen += int(images.shape[0])
    finally:
        for layer, momentum in zip(layers, kept):
            layer.momentum = momentum
    return seen
