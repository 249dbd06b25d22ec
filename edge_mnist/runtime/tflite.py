"""LiteRT (ai-edge-litert) runner for .tflite files; XNNPACK is used on CPU where available. Where PyPI has no
ai-edge-litert wheel (32-bit Pi OS, armv7l), tflite-runtime's interpreter, the same API, runs them."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.core.tfenv import filtered_stderr
from edge_mnist.runtime.base import Runner, image_signature, read_model, weight_precision
from edge_mnist.runtime.tflite_graph import live_weights, read_metadata


INTERPRETERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")  # in order of preference


def interpreter_module():
    """The first importable of INTERPRETERS; else the one-line error naming the extra to install."""
    for name in INTERPRETERS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return require(INTERPRETERS[0], "runtime")


class TFLiteRunner(Runner):
    """One LiteRT interpreter; resizes its batch dimension on demand."""

    runtime = "tflite"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Open the model from `content` (bytes already read and verified) or from the file."""
        interpreter_mod = interpreter_module()
        self.path, self.threads = Path(path), threads
        model = read_model(self.path, content)
        try:
            with filtered_stderr():
                self.interpreter = interpreter_mod.Interpreter(model_content=model, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgeMnistError(f"{path}: not a valid TFLite model ({str(exc).splitlines()[0][:160]})") from exc
        self.metadata = read_metadata(model, self.path)
        self.precision = weight_precision(live_weights(model, self.path))
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise EdgeMnistError(f"{path}: expected one input and one output, found {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        self.input_shape, self.num_classes = image_signature(self.path, self._in["shape"], self._out["shape"],
                                                             self._in["dtype"])
        self.input_dtype = np.dtype(self._in["dtype"])
        self.input_scale, self.input_zero_point = self._in["quantization"]
        self.output_scale, self.output_zero_point = self._out["quantization"]
        if self.input_dtype != np.float32 and self.input_scale == 0:
            raise EdgeMnistError(f"{path}: integer input without quantization parameters")
        self._batch = int(self._in["shape"][0])

    def _resize(self, batch: int) -> None:
        """Resize the input to `batch` rows and re-allocate (only when it changes)."""
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], [batch, *self.input_shape])
            self.interpreter.allocate_tensors()
            self._batch = batch

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """set_tensor, invoke, get_tensor."""
        self._resize(len(prepared))
        self.interpreter.set_tensor(self._in["index"], prepared)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def tensor_dtypes(self) -> set[str]:
        """dtype names of every tensor in the graph; a full-integer model has no float32 among them."""
        return {np.dtype(t["dtype"]).name for t in self.interpreter.get_tensor_details()}
