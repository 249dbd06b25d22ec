"""What an ONNX file holds, read from its protobuf bytes without the `onnx` package (absent on devices).

The gate needs three facts it must not take from a JSON record: which operators the graph
uses, the element types of its weights (int8 or float), and whether any tensor lives in an
external data file (which the manifest's sha256 would not cover). Protobuf's wire format is
simple enough to walk for these fields: varints and length-delimited records.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import EdgeMnistError

# Field numbers from onnx.proto3 (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto).
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE_INITIALIZER = 1, 5, 15
SPARSE_VALUES, SPARSE_INDICES = 1, 2
NODE_OP_TYPE, NODE_ATTRIBUTE = 4, 5
ATTR_TENSOR, ATTR_GRAPH, ATTR_TENSORS, ATTR_GRAPHS = 5, 6, 10, 11
TENSOR_DATA_TYPE, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 2, 13, 14
EXTERNAL = 1
INTEGER_TYPES = {2: "uint8", 3: "int8"}
INTEGER_OPS = ("DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")
NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}
MAX_DEPTH = 16


@dataclass
class GraphSummary:
    """Operator counts, weight element types, and whether the file points at external data."""

    op_types: Counter = field(default_factory=Counter)
    weight_types: Counter = field(default_factory=Counter)
    external_data: bool = False

    @property
    def precision(self) -> str:
        """int8 when the graph holds integer weights and operators that consume them, else float32."""
        integer_weights = any(self.weight_types[name] for name in INTEGER_TYPES.values())
        return "int8" if integer_weights and any(self.op_types[op] for op in INTEGER_OPS) else "float32"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one message; value is bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _tensor(buf: bytes, summary: GraphSummary) -> None:
    """Record one TensorProto's element type and whether its data is external."""
    for number, wire, value in _fields(buf):
        if number == TENSOR_DATA_TYPE and wire == 0:
            summary.weight_types[NAMES.get(value, f"type{value}")] += 1
        elif number == TENSOR_DATA_LOCATION and wire == 0 and value == EXTERNAL:
            summary.external_data = True
        elif number == TENSOR_EXTERNAL_DATA:
            summary.external_data = True


def _node(buf: bytes, summary: GraphSummary, depth: int) -> None:
    """Record a node's operator and walk tensors and subgraphs held in its attributes."""
    for number, _, value in _fields(buf):
        if number == NODE_OP_TYPE:
            summary.op_types[value.decode("utf-8", "replace")] += 1
        elif number == NODE_ATTRIBUTE:
            for attr_number, _, attr_value in _fields(value):
                if attr_number in (ATTR_TENSOR, ATTR_TENSORS):
                    _tensor(attr_value, summary)
                elif attr_number in (ATTR_GRAPH, ATTR_GRAPHS):
                    _graph(attr_value, summary, depth + 1)


def _graph(buf: bytes, summary: GraphSummary, depth: int) -> None:
    """Walk one GraphProto: its nodes and its initializers."""
    if depth > MAX_DEPTH:
        raise ValueError("subgraphs nested too deeply")
    for number, _, value in _fields(buf):
        if number == GRAPH_NODE:
            _node(value, summary, depth)
        elif number == GRAPH_INITIALIZER:
            _tensor(value, summary)
        elif number == GRAPH_SPARSE_INITIALIZER:
            for part, _, tensor in _fields(value):
                if part in (SPARSE_VALUES, SPARSE_INDICES):
                    _tensor(tensor, summary)


def summarize(model: bytes, source: str) -> GraphSummary:
    """The GraphSummary of a serialized ModelProto, or a one-line error naming `source`."""
    summary = GraphSummary()
    try:
        graphs = [value for number, wire, value in _fields(model) if number == MODEL_GRAPH and wire == 2]
        if not graphs:
            raise ValueError("no graph")
        for graph in graphs:
            _graph(graph, summary, 0)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgeMnistError(f"{source}: not a valid ONNX model ({exc})") from exc
    return summary


def refuse_external_data(summary: GraphSummary, source: str) -> None:
    """A model with tensors in another file is refused: its sha256 would not cover them."""
    if summary.external_data:
        raise EdgeMnistError(f"{source}: tensors stored as external data in another file are not supported "
                             "(their contents are not covered by the manifest's sha256); save the model in one file")
