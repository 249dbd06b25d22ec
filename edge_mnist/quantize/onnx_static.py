"""int8 ONNX route "ort-static": onnxruntime's quantize_static on a float ONNX graph.

QDQ, per-tensor, uint8 activations, int8 weights, calibrated on training images, with the
first Conv+ReLU+MaxPool stage left in float32: with one input channel, onnxruntime's int8
kernel for that conv and the uint8 MaxPool after it cost more than the float ones, and the
stage holds a small share of the weights and MACs (docs/2026-11-21-benchmark-experiments.md
has the measurements behind each choice).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SHIPPED = ("onnxruntime quantize_static QDQ, per-tensor, uint8 activations, int8 weights; "
           "BatchNorm folded into the preceding Dense through ReLU")


class _CalibReader:
    """onnxruntime CalibrationDataReader over the calibration images, one image per call."""

    def __init__(self, images: np.ndarray, input_name: str):
        self._input = input_name
        self._it = iter(images[i:i + 1] for i in range(len(images)))

    def get_next(self):
        """The next single-image feed, or None when done."""
        batch = next(self._it, None)
        return None if batch is None else {self._input: batch}


def first_stage_nodes(graph) -> list[str]:
    """Names of the nodes from the input through the first MaxPool after the first Conv."""
    names, seen_conv = [], False
    for node in graph.node:
        names.append(node.name)
        seen_conv = seen_conv or node.op_type == "Conv"
        if seen_conv and node.op_type == "MaxPool":
            return names
    return []


def quantize_qdq(float_proto, calib: np.ndarray, *, quant_format: str = "QDQ", per_channel: bool = False,
                 activation_type: str = "QUInt8", reduce_range: bool = False, float_first: bool = True):
    """onnxruntime static quantization of a float ModelProto; returns (int8 ModelProto, float node names).

    The defaults are what ships; benchmarks/onnx_variants.py calls this with each alternative.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = float_proto.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        f32, pre, q8 = (Path(tmp) / n for n in ("f32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(float_proto, f32)
        quant_pre_process(str(f32), str(pre))
        keep_float = first_stage_nodes(onnx.load(pre).graph) if float_first else []
        quantize_static(str(pre), str(q8), _CalibReader(calib, input_name), quant_format=QuantFormat[quant_format],
                        per_channel=per_channel, activation_type=QuantType[activation_type],
                        weight_type=QuantType.QInt8, reduce_range=reduce_range, nodes_to_exclude=keep_float)
        return onnx.load(q8), keep_float
