"""OpenVINO runner for the int8 .onnx and .tflite files, on OpenVINO's CPU plugin.

A further runtime for the same bytes (registry: `also_runs`), optional: where `openvino` is not
installed bench and check skip it with a note. It reads an .onnx with OpenVINO's ONNX frontend and
a .tflite with its TFLite frontend; the input quantization and labels come from the file's own
metadata, read as the other runners read it. One inference thread and float32 wherever the graph
is not integer (the plugin's default on CPUs with bfloat16 is bfloat16, which moves float layers'
outputs, and so top-1, away from LiteRT's).
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.core.tfenv import filtered_stderr
from edge_mnist.runtime.base import Runner, image_signature, metadata_quantization, read_model, weight_precision
from edge_mnist.runtime.onnx_graph import refuse_external_data, summarize
from edge_mnist.runtime.tflite_graph import live_weights, read_metadata, read_tflite

DEVICE = "CPU"


def cpu_properties(threads: int) -> dict[str, object]:
    """The CPU plugin's settings: `threads` inference threads in one stream, float32 for float layers
    (ACCURACY mode), so figures compare with the other runtimes' and outputs are the same run to run."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32",
            "EXECUTION_MODE_HINT": "ACCURACY", "PERFORMANCE_HINT": "LATENCY"}


def _tflite_model(core, model: bytes):
    """An ov.Model from .tflite bytes: the TFLite frontend reads files only, so through a private temporary
    file holding exactly the verified bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        return core.read_model(str(path))


def _onnx_metadata(graph) -> dict[str, str]:
    """The .onnx's metadata_props (labels, input/output quantization), which OpenVINO's ONNX frontend keeps
    in the model's rt_info under "framework"."""
    info = graph.get_rt_info()
    if "framework" not in info:
        return {}
    return {str(key): value.astype(str) for key, value in info["framework"].items()}


class OpenVinoRunner(Runner):
    """One OpenVINO compiled model on the CPU plugin and one infer request."""

    runtime = "openvino"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Open the model from `content` (bytes already read and verified) or from the file."""
        ov = require("openvino", "openvino")
        self.path, self.threads = Path(path), threads
        model = read_model(self.path, content)
        core = ov.Core()
        tflite = self.path.suffix.lower() == ".tflite"
        if not tflite:
            summary = summarize(model, str(self.path))
            refuse_external_data(summary, str(self.path))  # before OpenVINO would follow it
        try:
            with filtered_stderr():  # the frontends' C++ logging would put lines of their own beside ours
                graph = _tflite_model(core, model) if tflite else core.read_model(model)
                self.compiled = core.compile_model(graph, DEVICE, cpu_properties(threads))
        except RuntimeError as exc:
            reason = re.sub(r"/\S*/model\.tflite", self.path.name, _first_line(exc))  # not our temporary file's
            raise EdgeMnistError(f"{path}: OpenVINO cannot compile this model ({reason})") from exc
        if len(self.compiled.inputs) != 1 or len(self.compiled.outputs) != 1:
            raise EdgeMnistError(f"{path}: expected one input and one output, found {len(self.compiled.inputs)} and "
                                 f"{len(self.compiled.outputs)}")
        self.request = self.compiled.create_infer_request()
        inp, out = self.compiled.inputs[0], self.compiled.outputs[0]
        dtype = inp.get_element_type().to_dtype()
        self.input_shape, self.num_classes = image_signature(self.path, _dims(inp), _dims(out), dtype)
        self.input_dtype = np.dtype(dtype)
        if tflite:
            self.metadata = read_metadata(model, self.path)
            self.precision = weight_precision(live_weights(model, self.path))
            self._tflite_quantization(model)
        else:
            self.metadata = _onnx_metadata(graph)
            self.precision = summary.precision
            self._onnx_quantization()

    def _tflite_quantization(self, model: bytes) -> None:
        """Input and output scale and zero point from the .tflite's graph tensors (as LiteRT reports them)."""
        graph = read_tflite(model, self.path)
        for side, (index,) in (("input", graph.inputs), ("output", graph.outputs)):
            q = graph.quant[index]
            scale, zero = (0.0, 0) if q is None else (float(q.scale.reshape(-1)[0]), int(q.zero_point.reshape(-1)[0]))
            setattr(self, f"{side}_scale", scale)
            setattr(self, f"{side}_zero_point", zero)
        if self.input_dtype != np.float32 and self.input_scale == 0:
            raise EdgeMnistError(f"{self.path}: integer input without quantization parameters")

    def _onnx_quantization(self) -> None:
        """Input and output scale and zero point from the .onnx's metadata (as OnnxRunner reads them)."""
        if self.input_dtype != np.float32:
            (self.input_scale, self.input_zero_point,
             self.output_scale, self.output_zero_point) = metadata_quantization(self.metadata, self.path)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """One synchronous inference; the output copied out of the request's buffer."""
        return np.array(self.request.infer({0: prepared})[0])


def _dims(port) -> list[int]:
    """A port's shape with dynamic dimensions as -1."""
    return [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]


def _first_line(exc: Exception) -> str:
    """The informative line of an OpenVINO exception (its first lines name C++ source files)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or ["unknown error"])[-1][:200]
