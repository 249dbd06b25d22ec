"""LiteRT (ai-edge-litert) runner for .tflite files; XNNPACK is used on CPU where available."""
from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np

from edge_mnist.errors import EdgeMnistError, require
from edge_mnist.tfenv import filtered_stderr
from edge_mnist.runtime.base import Runner, image_signature, live_constants, read_model, weight_precision


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
    except (ValueError, IndexError, AttributeError, TypeError, UnicodeDecodeError, RecursionError,
            struct.error) as exc:
        raise EdgeMnistError(f"{path}: unreadable {METADATA_NAME} metadata ({str(exc)[:120]})") from exc
    return {}


TFLITE_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8",
                10: "float64"}


TYPE_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "int16": 2, "int8": 1, "float64": 8}


def _graph(model: bytes, path: Path):
    """(root, first subgraph, constants {tensor: (dtype, elements)}, nodes [(inputs, outputs)]) of a .tflite."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        root = schema.Model.GetRootAs(model, 0)
        graph = root.Subgraphs(0)
        constants = {}
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            buffer = root.Buffers(tensor.Buffer()) if tensor.Buffer() < root.BuffersLength() else None
            if buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 0):
                constants[i] = (TFLITE_TYPES.get(tensor.Type(), "other"), _elements(tensor))
        nodes = [([int(t) for t in op.InputsAsNumpy()], [int(t) for t in op.OutputsAsNumpy()])
                 for op in (graph.Operators(j) for j in range(graph.OperatorsLength()))]
        return root, graph, constants, nodes
    except (ValueError, IndexError, AttributeError, TypeError, struct.error) as exc:
        raise EdgeMnistError(f"{path}: unreadable TFLite graph ({exc})") from exc


def _elements(tensor) -> int:
    """Number of elements of a flatbuffer tensor (a scalar has one)."""
    shape = tensor.ShapeAsNumpy()
    return int(np.prod(shape)) if isinstance(shape, np.ndarray) and len(shape) else 1


def live_weights(model: bytes, path: Path) -> Counter:
    """Elements per dtype of the constant tensors the first subgraph's outputs depend on."""
    _, graph, constants, nodes = _graph(model, path)
    return live_constants(nodes, [int(t) for t in graph.OutputsAsNumpy()], constants)


def graph_tensors(model: bytes, path: Path) -> tuple[dict[int, int], list, list[int], list[int]]:
    """({activation tensor: bytes}, nodes [(inputs, outputs)], graph inputs, graph outputs) of the first
    subgraph; activations are the tensors without constant data (index -1 marks an absent optional input)."""
    _, graph, constants, nodes = _graph(model, path)
    sizes = {}
    for i in range(graph.TensorsLength()):
        if i not in constants:
            tensor = graph.Tensors(i)
            sizes[i] = _elements(tensor) * TYPE_BYTES.get(TFLITE_TYPES.get(tensor.Type(), ""), 4)
    return sizes, nodes, [int(t) for t in graph.InputsAsNumpy()], [int(t) for t in graph.OutputsAsNumpy()]


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
