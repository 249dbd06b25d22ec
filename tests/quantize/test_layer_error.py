"""quantize/layer_error.py: the error measures debug and --fallback rank layers by (SQNR, error in quantization
steps, the int8 grid), checked on the committed model's real weights and tensors, and the ranking."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_mnist.quantize.layer_error import (
    EXACT_DB,
    ArtifactDebug,
    LayerDebug,
    channel_sqnr_db,
    fake_quantize,
    rank,
    rmse_over_scale,
    sqnr_db,
    tflite_tensors,
)
from edge_mnist.runtime import open_model
from edge_mnist.runtime.tflite_graph import read_tflite

pytestmark = pytest.mark.device


def weights(path, kind: str) -> tuple[np.ndarray, object]:
    """The first `kind` operator's weight tensor of a .tflite and its quantization (None in a float file)."""
    graph = read_tflite(path.read_bytes(), path)
    index = next(inputs[1] for op, inputs, _, _ in graph.ops if op == kind)
    return graph.data[index], graph.quant[index]


def test_sqnr_is_signal_over_noise_in_db_capped_for_no_error():
    reference = np.ones(1000)
    assert sqnr_db(reference, reference + 0.1) == pytest.approx(20.0)
    assert sqnr_db(reference, reference) == EXACT_DB and math.isnan(sqnr_db(np.zeros(5), np.ones(5)))


def test_a_channel_without_signal_is_left_out_of_the_channel_mean():
    reference = np.stack([np.ones(100), np.zeros(100), 2 * np.ones(100)], axis=-1)
    approx = reference + np.stack([0.1 * np.ones(100), np.ones(100), 0.02 * np.ones(100)], axis=-1)
    assert channel_sqnr_db(reference, approx) == pytest.approx((20.0 + 40.0) / 2)


@pytest.mark.parametrize("kind, per_channel", [("FULLY_CONNECTED", False), ("CONV_2D", True)])
def test_the_int8_weights_are_the_float_ones_rounded_onto_their_grid(device_export, kind, per_channel):
    """fake_quantize of the float file's weights on the int8 file's scales gives the int8 file's values, and the
    error left is rounding alone: about 0.29 of a step (1 / sqrt(12), on 6,760 Dense and 36 convolution weights)."""
    float_w, _ = weights(device_export / "model_float32.tflite", kind)
    int8_w, q = weights(device_export / "model_int8.tflite", kind)
    assert q.per_tensor is not per_channel
    axis = q.axis if per_channel else None
    shape = [-1 if d == q.axis and per_channel else 1 for d in range(int8_w.ndim)]
    dequantized = (int8_w.astype(np.float32) - q.zero_point.reshape(shape)) * q.scale.reshape(shape)
    np.testing.assert_allclose(fake_quantize(float_w, q.scale, q.zero_point, axis), dequantized, atol=1e-6)
    assert 0.25 < rmse_over_scale(float_w, dequantized, q.scale, axis) < 0.33
    assert sqnr_db(float_w, dequantized) > 30


def test_the_tensors_litert_keeps_end_in_the_outputs_the_runner_gives(device_export, test_images):
    path = device_export / "model_int8.tflite"
    graph, runner = read_tflite(path.read_bytes(), path), open_model(path)
    x = test_images[0][:16]
    tensors = tflite_tensors(path.read_bytes(), x)
    np.testing.assert_allclose(tensors[graph.names[graph.outputs[0]]], runner.predict(x), rtol=1e-6)
    assert {graph.names[i] for i in range(len(graph.names)) if i not in graph.data} <= set(tensors) | {""}


def test_layers_rank_worst_first_with_those_that_cannot_stay_float_last():
    rows = [LayerDebug("pool", ["MAX_POOL_2D"], False, input_sqnr_db=5.0),
            LayerDebug("dense", ["FULLY_CONNECTED"], True, weight_sqnr_db=38.0, output_sqnr_db=30.0,
                       accuracy_gain_pp=0.1),
            LayerDebug("conv1", ["CONV_2D"], True, weight_sqnr_db=40.0, input_sqnr_db=18.0, accuracy_gain_pp=0.2),
            LayerDebug("conv2", ["CONV_2D"], True, input_sqnr_db=18.0, output_sqnr_db=math.nan,
                       accuracy_gain_pp=0.9)]
    ranked = rank(rows)
    assert [r.layer for r in ranked] == ["conv2", "conv1", "dense", "pool"]
    assert ranked[0].score == 18.0 and LayerDebug("x", [], True).score == EXACT_DB
    assert ArtifactDebug("m.tflite", "tflite", 0.8, ranked).ranking() == ["conv2", "conv1", "dense"]
