"""The one reader and writer of .tflite flatbuffers (no TensorFlow): the first subgraph's tensors,
quantization, constants and operators (ai-edge-litert's schema), and, for the runners, edge-mnist's
metadata entry and the live weights read with the `flatbuffers` package alone, so a device whose
runtime is tflite-runtime (32-bit Pi OS: no ai-edge-litert wheel, no schema module) opens a file too."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.runtime.base import live_constants

METADATA_NAME = "edge_mnist"


# Field slots of the schema's tables (tensorflow/lite/schema/schema.fbs), for the runners' small reader.
MODEL_SUBGRAPHS, MODEL_BUFFERS, MODEL_METADATA = 2, 4, 6
SUBGRAPH_TENSORS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER = 0, 1, 2
OPERATOR_INPUTS, OPERATOR_OUTPUTS = 1, 2
BUFFER_DATA, METADATA_NAME_SLOT, METADATA_BUFFER = 0, 0, 1


class _Table:
    """One flatbuffer table of a .tflite read by field slot, with the `flatbuffers` package's Table."""

    def __init__(self, table):
        self.t = table

    def _offset(self, slot: int) -> int:
        """The field's offset in the table (0 when the field is absent)."""
        return self.t.Offset(4 + 2 * slot)

    def tables(self, slot: int) -> list["_Table"]:
        """A vector of tables."""
        from flatbuffers import table

        o = self._offset(slot)
        if not o:
            return []
        start = self.t.Vector(o)
        return [_Table(table.Table(self.t.Bytes, self.t.Indirect(start + 4 * i))) for i in range(self.t.VectorLen(o))]

    def numbers(self, slot: int, flags) -> np.ndarray:
        """A vector of scalars (empty when absent)."""
        from flatbuffers.number_types import to_numpy_type

        o = self._offset(slot)
        return self.t.GetVectorAsNumpy(flags, o) if o else np.zeros(0, to_numpy_type(flags))

    def scalar(self, slot: int, flags, default: int = 0) -> int:
        """A scalar field, or the schema's default."""
        o = self._offset(slot)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def string(self, slot: int) -> bytes:
        """A string field (b'' when absent)."""
        o = self._offset(slot)
        return bytes(self.t.String(o + self.t.Pos)) if o else b""


def _model_table(model: bytes, path: Path) -> _Table:
    """The root Model table of a .tflite flatbuffer."""
    from flatbuffers import encode, number_types, table

    if len(model) < 8:
        raise EdgeMnistError(f"{path}: unreadable TFLite model (only {len(model)} bytes)")
    return _Table(table.Table(bytearray(model), encode.Get(number_types.UOffsetTFlags.packer_type, model, 0)))


def _checked(read, model: bytes, path: Path, what: str):
    """read(root) with any failure the bytes provoke as one line naming the file."""
    try:
        return read(_model_table(model, path))
    except EdgeMnistError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises whatever its offsets lead to
        raise EdgeMnistError(f"{path}: unreadable {what} ({type(exc).__name__}: {str(exc)[:120]})") from exc


def read_metadata(model: bytes, path: Path) -> dict[str, str]:
    """The JSON metadata entry edge-mnist writes into a .tflite flatbuffer ({} when there is none)."""
    from flatbuffers import number_types as n

    def read(root: _Table) -> dict[str, str]:
        buffers = root.tables(MODEL_BUFFERS)
        for entry in root.tables(MODEL_METADATA):
            if entry.string(METADATA_NAME_SLOT) == METADATA_NAME.encode():
                data = buffers[entry.scalar(METADATA_BUFFER, n.Uint32Flags)].numbers(BUFFER_DATA, n.Uint8Flags)
                found = json.loads(bytes(data).decode())
                if not isinstance(found, dict):
                    raise ValueError("not a JSON object")
                return {str(k): str(v) for k, v in found.items()}
        return {}

    return _checked(read, model, path, f"{METADATA_NAME} metadata")


TFLITE_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8",
                10: "float64"}


TYPE_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "int16": 2, "int8": 1, "float64": 8}


def live_weights(model: bytes, path: Path) -> Counter:
    """Elements per dtype of the constant tensors the first subgraph's outputs depend on."""
    from flatbuffers import number_types as n

    def read(root: _Table) -> Counter:
        buffers = root.tables(MODEL_BUFFERS)
        graph = root.tables(MODEL_SUBGRAPHS)[0]
        constants = {}
        for i, tensor in enumerate(graph.tables(SUBGRAPH_TENSORS)):
            data = buffers[tensor.scalar(TENSOR_BUFFER, n.Uint32Flags)].numbers(BUFFER_DATA, n.Uint8Flags)
            if len(data):
                dtype = TFLITE_TYPES.get(tensor.scalar(TENSOR_TYPE, n.Int8Flags), "other")
                shape = tensor.numbers(TENSOR_SHAPE, n.Int32Flags)
                constants[i] = (dtype, int(np.prod(shape)) if dtype in TYPE_BYTES else len(data))
        nodes = [(op.numbers(OPERATOR_INPUTS, n.Int32Flags).tolist(),
                  op.numbers(OPERATOR_OUTPUTS, n.Int32Flags).tolist()) for op in graph.tables(SUBGRAPH_OPERATORS)]
        return live_constants(nodes, graph.numbers(SUBGRAPH_OUTPUTS, n.Int32Flags).tolist(), constants)

    return _checked(read, model, path, "TFLite model")


def graph_tensors(model: bytes, path: Path) -> tuple[dict[int, int], list, list[int], list[int]]:
    """({activation tensor: bytes}, nodes [(inputs, outputs)], graph inputs, graph outputs) of the first
    subgraph; activations are the tensors without constant data (index -1 marks an absent optional input)."""
    graph = read_tflite(model, path)
    sizes = {i: int(np.prod(shape)) * TYPE_BYTES.get(TFLITE_TYPES.get(graph.types[i], ""), 4)
             for i, shape in enumerate(graph.shapes) if i not in graph.data}
    return sizes, graph.nodes, graph.inputs, graph.outputs


@dataclass
class Quant:
    """One tensor's quantization: scale(s), zero point(s) and the per-channel axis of the .tflite."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_tensor(self) -> bool:
        """One scale for the whole tensor."""
        return self.scale.size == 1


@dataclass
class TfliteGraph:
    """The parts of a .tflite subgraph this converter reads: tensors, operators, I/O."""

    names: list[str]
    shapes: list[list[int]]
    types: list[int]
    quant: list[Quant | None]
    data: dict[int, np.ndarray]
    ops: list[tuple[str, list[int], list[int], object]]
    inputs: list[int]
    outputs: list[int]

    @property
    def nodes(self) -> list[tuple[list[int], list[int]]]:
        """(inputs, outputs) of every operator, in order."""
        return [(inputs, outputs) for _, inputs, outputs, _ in self.ops]


def read_tflite(model: bytes, path: Path) -> TfliteGraph:
    """The first subgraph of a .tflite flatbuffer, with constant data as numpy arrays (needs ai-edge-litert's
    schema: a one-line MissingDependency where only tflite-runtime is installed)."""
    schema = require("ai_edge_litert.schema_py_generated", "runtime")
    flatbuffer_utils = require("ai_edge_litert.tools.flatbuffer_utils", "runtime")

    try:
        return _parse(flatbuffer_utils.convert_bytearray_to_object(bytearray(model)), schema, path)
    except EdgeMnistError:
        raise
    except Exception as exc:  # the flatbuffer reader raises whatever the bytes provoke
        raise EdgeMnistError(f"{path}: unreadable TFLite model ({type(exc).__name__}: {str(exc)[:120]})") from exc


def _parse(obj, schema, path: Path) -> TfliteGraph:
    """The TfliteGraph of a parsed flatbuffer object (read_tflite turns any failure into one line)."""
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = obj.subgraphs[0]
    quant, data = [], {}
    for i, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        quant.append(None if q is None or q.scale is None or len(q.scale) == 0 else
                     Quant(np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64), q.quantizedDimension))
        buffer = obj.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            dtype = TFLITE_TYPES.get(tensor.type)
            raw = np.frombuffer(bytes(buffer.data), np.uint8)
            data[i] = raw if dtype is None else raw.view(dtype).reshape(tensor.shape)
    ops = []
    for op in graph.operators:
        code = obj.operatorCodes[op.opcodeIndex]
        ops.append((names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"), list(op.inputs),
                    list(op.outputs), op.builtinOptions))
    return TfliteGraph([t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors],
                       [[int(d) for d in t.shape] for t in graph.tensors], [t.type for t in graph.tensors], quant, data,
                       ops, list(graph.inputs), list(graph.outputs))


def with_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """The .tflite flatbuffer with `metadata` added (or replaced) as a JSON metadata entry."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
    kept = [m for m in (obj.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    obj.metadata = kept + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
