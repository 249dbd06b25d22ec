"""ONNX Runtime runner for .onnx and ORT-format .ort files, with a fixed intra-op thread count."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.runtime.base import Runner, check_images, image_signature, metadata_quantization, read_model
from edge_mnist.runtime.onnx_graph import is_ort_format, refuse_external_data, summarize, summarize_ort

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


def session_options(ort, threads: int):
    """onnxruntime's default session settings with `threads` intra-op threads (fixed, so figures compare).

    Nothing else is changed: bench must time what an application's default session gets.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


class OnnxRunner(Runner):
    """One onnxruntime InferenceSession on the CPU execution provider."""

    runtime = "onnx"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Open the model from `content` (bytes already read and verified) or from the file.

        Sessions are built from bytes, so what runs is exactly what was hashed, and a model
        pointing at external data files is refused before onnxruntime would read them.
        """
        ort = require("onnxruntime", "runtime")
        self.path, self.threads = Path(path), threads
        model = read_model(self.path, content)
        ort_format = is_ort_format(model)
        if ort_format and self.path.suffix.lower() != ".ort":
            raise EdgeMnistError(f"{path}: the file holds an ORT-format model; name it .ort")
        if self.path.suffix.lower() == ".ort" and not ort_format:
            raise EdgeMnistError(f"{path}: not an ORT-format model (no ORTM file identifier)")
        self.graph = (summarize_ort if ort_format else summarize)(model, str(self.path))
        refuse_external_data(self.graph, str(self.path))
        self.precision = self.graph.precision
        try:
            self.session = ort.InferenceSession(model, session_options(ort, threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise EdgeMnistError(f"{path}: not a valid ONNX model ({str(exc).splitlines()[0][:160]})") from exc
        try:
            inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        except UnicodeDecodeError as exc:
            raise EdgeMnistError(f"{path}: unreadable input or output names (not UTF-8: {exc.reason})") from exc
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeMnistError(f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0].name
        if self._in.type not in _ORT_DTYPES:
            raise EdgeMnistError(f"{path}: model input type {self._in.type} is not supported")
        shape = [d if isinstance(d, int) else -1 for d in self._in.shape]
        out_shape = [d if isinstance(d, int) else -1 for d in outputs[0].shape]
        self.input_shape, self.num_classes = image_signature(self.path, shape, out_shape, _ORT_DTYPES[self._in.type])
        self.metadata = self._metadata()
        self.input_dtype = np.dtype(_ORT_DTYPES[self._in.type])
        if self.input_dtype != np.float32:
            (self.input_scale, self.input_zero_point,
             self.output_scale, self.output_zero_point) = metadata_quantization(self.metadata, path)

    def _metadata(self) -> dict[str, str]:
        """The file's metadata_props; bytes that are not UTF-8 are a one-line error, not a crash."""
        try:
            return dict(self.session.get_modelmeta().custom_metadata_map)
        except UnicodeDecodeError as exc:
            raise EdgeMnistError(f"{self.path}: unreadable metadata_props (not UTF-8: {exc.reason})") from exc

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """session.run on the single input."""
        return self.session.run([self._out], {self._in.name: prepared})[0]

    def bound_call(self, x: np.ndarray) -> Callable[[], object]:
        """One call as an application makes it: session.run on the prepared images, nothing bound
        ahead (the same work as LiteRT's set_tensor/invoke/get_tensor)."""
        prepared = self.prepare(check_images(x, str(self.path), self.input_shape))
        feed = {self._in.name: prepared}
        return lambda: self.session.run([self._out], feed)[0]
