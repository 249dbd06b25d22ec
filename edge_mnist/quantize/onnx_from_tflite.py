"""int8 ONNX route "from-tflite": tf2onnx converts an int8 .tflite, keeping its integer parameters.

The ONNX model then computes what LiteRT computes; used for QAT, where the ranges learned in
fine-tuning are the point. The .tflite's input/output quantization is returned so that it
can be written into the ONNX file's metadata (its input is the same int8 tensor).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..tfenv import filtered_stderr


def convert(tflite_path: Path):
    """Return (ONNX ModelProto, io quantization as metadata strings) for an int8 .tflite."""
    import onnx
    import tf2onnx

    from ..export.onnx import OPSET
    from ..runtime.tflite import TFLiteRunner

    runner = TFLiteRunner(tflite_path)
    io_quant = {"input_scale": repr(float(runner.input_scale)),
                "input_zero_point": str(int(runner.input_zero_point)),
                "output_scale": repr(float(runner.output_scale)),
                "output_zero_point": str(int(runner.output_zero_point))}
    with tempfile.TemporaryDirectory() as tmp, filtered_stderr():
        tf2onnx.convert.from_tflite(str(tflite_path), opset=OPSET, output_path=str(Path(tmp) / "m.onnx"))
        proto = onnx.load(Path(tmp) / "m.onnx")
    return proto, io_quant
