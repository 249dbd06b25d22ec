"""quantize/qat.py: calibrated activation ranges, seen in the committed QAT export's integer grids."""
from __future__ import annotations

import pytest

from edge_mnist.runtime.tflite_graph import read_tflite

pytestmark = pytest.mark.device


def test_qat_ranges_after_relu_start_at_zero(device_export):
    """With ranges calibrated before fine-tuning, every ReLU output's zero point is the int8 minimum
    (tfmot's default [-6, 6] start leaves it near the middle), so no code is wasted below zero and
    onnxruntime can fuse the ReLU into its integer kernels."""
    path = device_export / "model_qat_int8.tflite"
    graph = read_tflite(path.read_bytes(), path)
    relu_outputs = [outputs[0] for op, _, outputs, options in graph.ops
                    if getattr(options, "fusedActivationFunction", 0) == 1]
    assert relu_outputs
    assert all(int(graph.quant[i].zero_point[0]) == -128 for i in relu_outputs)
