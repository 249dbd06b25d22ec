"""LiteRT (ai-edge-litert) runner for .tflite files; XNNPACK is used on CPU where available."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import EdgeMnistError, require
from ..tfenv import filtered_stderr
from .base import Runner, image_signature, read_model


METADATA_NAME = "edge_mnist"


def read_metadata(model: bytes, path: Path) -> dict[str, str]:
    """The JSON metadata entry edge-mnist writes into a .tflite flatbuffer ({} when there is none)."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        root = schema.Model.GetRootAs(model, 0)
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            if entry.Name() == METADATA_NAME.encode():
                data = root.Buffers(entry.Buffer()).DataAsNumpy()
                found = json.loads(bytes(data).decode())
                if not isinstance(found, dict):
                    raise ValueError("not a JSON object")
                return {str(k): str(v) for k, v in found.items()}
    except (ValueError, IndexError, AttributeError, UnicodeDecodeError, struct.error) as exc:
        raise EdgeMnistError(f"{path}: unreadable {METADATA_NAME} metadata ({exc})") from exc
    return {}


class TFLiteRunner(Runner):
    """One LiteRT interpreter; resizes its batch dimension on demand."""

    runtime = "tflite"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Open the model from `content` (bytes already read and verified) or from the file."""
        interpreter_mod = require("ai_edge_litert.interpreter", "runtime")
        self.path, self.threads = Path(path), threads
        model = read_model(self.path, content)
        try:
            with filtered_stderr():
                self.interpreter = interpreter_mod.Interpreter(model_content=model, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgeMnistError(f"{path}: not a valid TFLite model ({str(exc).splitlines()[0][:160]})") from exc
        self.metadata = read_metadata(model, self.path)
        self.precision = "int8" if {"int8", "uint8"} & self.tensor_dtypes() else "float32"
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
