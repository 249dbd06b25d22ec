"""The one table of artifact formats that drives export, bench and check.

Adding a format is one entry here: its file name, the runtime that runs it, its precision,
the quantization method and the exporter (a dotted name, imported only when exporting so
this table stays importable without TensorFlow).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """One artifact kind: where it is written and how it is made and run."""

    key: str
    file: str
    runtime: str  # "keras" | "tflite" | "onnx"
    precision: str  # "float32" | "int8"
    method: str  # "float" | "ptq" | "qat"
    exporter: str  # "module:function", or "" for the trained model itself

    @property
    def is_int8(self) -> bool:
        """True for quantized artifacts, the ones the gate checks."""
        return self.precision == "int8"


FORMATS: tuple[Format, ...] = (
    Format("keras_float32", "model_float32.keras", "keras", "float32", "float", ""),
    Format("tflite_float32", "model_float32.tflite", "tflite", "float32", "float", "edge_mnist.convert.tflite:export_float"),
    Format("onnx_float32", "model_float32.onnx", "onnx", "float32", "float", "edge_mnist.convert.onnx:export_float"),
    Format("tflite_int8", "model_int8.tflite", "tflite", "int8", "ptq", "edge_mnist.convert.tflite:export_int8"),
    Format("onnx_int8", "model_int8.onnx", "onnx", "int8", "ptq", "edge_mnist.convert.onnx:export_int8"),
    Format("tflite_qat_int8", "model_qat_int8.tflite", "tflite", "int8", "qat", "edge_mnist.convert.tflite:export_int8"),
    Format("onnx_qat_int8", "model_qat_int8.onnx", "onnx", "int8", "qat", "edge_mnist.convert.onnx:export_int8"),
)
BY_KEY = {f.key: f for f in FORMATS}
REFERENCE = BY_KEY["keras_float32"]


def for_method(method: str) -> list[Format]:
    """Exported formats made by one quantization method (plus the float exports for ptq)."""
    wanted = {"ptq": {"float", "ptq"}, "qat": {"qat"}, "float": {"float"}}[method]
    return [f for f in FORMATS if f.exporter and f.method in wanted]
