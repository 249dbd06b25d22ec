"""What an ONNX or ORT-format file holds, read from its bytes without the `onnx` package (absent on devices).

The gate needs three facts it must not take from a JSON record: which operators the graph
uses, the element types of its weights (int8 or float), and whether any tensor lives in an
external data file (which the manifest's sha256 would not cover). Protobuf's wire format is
simple enough to walk for these fields: varints and length-delimited records. ORT-format files
(.ort, a flatbuffer) are read with the schema bindings onnxruntime ships in onnxruntime.tools.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime.base import live_constants, weight_precision

# Field numbers from onnx.proto3.
MODEL_GRAPH, MODEL_FUNCTIONS, FUNCTION_NODE = 7, 25, 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT, GRAPH_SPARSE_INITIALIZER = 1, 5, 12, 15
VALUE_INFO_NAME = 1
SPARSE_VALUES, SPARSE_INDICES = 1, 2
NODE_INPUT, NODE_OUTPUT, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 4, 5
ATTR_TENSOR, ATTR_GRAPH, ATTR_TENSORS, ATTR_GRAPHS, ATTR_SPARSE, ATTR_SPARSES = 5, 6, 10, 11, 22, 23
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 1, 2, 8, 13, 14
EXTERNAL = 1
NAMES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}
MAX_DEPTH = 16


@dataclass
class GraphSummary:
    """Operator counts, the element types of the weights the outputs depend on, and any external data."""

    op_types: Counter = field(default_factory=Counter)
    weight_types: Counter = field(default_factory=Counter)  # dtype -> elements of live initializers
    external_data: bool = False
    nodes: list = field(default_factory=list)  # (inputs, outputs) of the main graph's nodes
    initializers: dict = field(default_factory=dict)  # name -> (dtype, elements), main graph
    outputs: list = field(default_factory=list)

    @property
    def precision(self) -> str:
        """int8 when most weight elements the outputs depend on are integers (see base.weight_precision)."""
        return weight_precision(self.weight_types)


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


def _strings(fields: list, number: int) -> list[bytes]:
    """The length-delimited values of field `number`; any other wire type there is a malformed file."""
    found = []
    for num, wire, value in fields:
        if num == number:
            if wire != 2:
                raise ValueError(f"field {number} has wire type {wire}")
            found.append(value)
    return found


def _ints(fields: list, number: int) -> list[int]:
    """The integer values of field `number`, plain or packed."""
    found = []
    for num, wire, value in fields:
        if num != number:
            continue
        if wire == 0:
            found.append(value)
        elif wire == 2:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                found.append(item)
        else:
            raise ValueError(f"field {number} has wire type {wire}")
    return found


def _tensor(buf: bytes, summary: GraphSummary) -> tuple[str, str, int]:
    """(name, dtype, elements) of one TensorProto; notes external data in the summary."""
    fields = list(_fields(buf))
    if _strings(fields, TENSOR_EXTERNAL_DATA) or EXTERNAL in _ints(fields, TENSOR_DATA_LOCATION):
        summary.external_data = True
    types = _ints(fields, TENSOR_DATA_TYPE)
    dtype = NAMES.get(types[0], f"type{types[0]}") if types else "undefined"
    elements = 1
    for dim in _ints(fields, TENSOR_DIMS):
        elements *= dim
    names = _strings(fields, TENSOR_NAME)
    return (names[0].decode("utf-8", "replace") if names else ""), dtype, elements


def _sparse(buf: bytes, summary: GraphSummary) -> None:
    """Walk the value and index tensors of a SparseTensorProto (for external data)."""
    fields = list(_fields(buf))
    for part in (SPARSE_VALUES, SPARSE_INDICES):
        for tensor in _strings(fields, part):
            _tensor(tensor, summary)


def _node(buf: bytes, summary: GraphSummary, depth: int) -> tuple[list[str], list[str]]:
    """Count a node's operator, walk tensors and subgraphs in its attributes; return (inputs, outputs)."""
    fields = list(_fields(buf))
    for op in _strings(fields, NODE_OP_TYPE):
        summary.op_types[op.decode("utf-8", "replace")] += 1
    for attribute in _strings(fields, NODE_ATTRIBUTE):
        attr = list(_fields(attribute))
        for tensor in _strings(attr, ATTR_TENSOR) + _strings(attr, ATTR_TENSORS):
            _tensor(tensor, summary)
        for sparse in _strings(attr, ATTR_SPARSE) + _strings(attr, ATTR_SPARSES):
            _sparse(sparse, summary)
        for graph in _strings(attr, ATTR_GRAPH) + _strings(attr, ATTR_GRAPHS):
            _graph(graph, summary, depth + 1)
    names = [[v.decode("utf-8", "replace") for v in _strings(fields, n)] for n in (NODE_INPUT, NODE_OUTPUT)]
    return names[0], names[1]


def _graph(buf: bytes, summary: GraphSummary, depth: int) -> None:
    """Walk one GraphProto; the main graph's (depth 0) nodes, initializers and outputs are kept."""
    if depth > MAX_DEPTH:
        raise ValueError("subgraphs nested too deeply")
    fields = list(_fields(buf))
    nodes = [_node(node, summary, depth) for node in _strings(fields, GRAPH_NODE)]
    tensors = [_tensor(t, summary) for t in _strings(fields, GRAPH_INITIALIZER)]
    for sparse in _strings(fields, GRAPH_SPARSE_INITIALIZER):
        _sparse(sparse, summary)
    if depth == 0:
        summary.nodes = nodes
        summary.initializers = {name: (dtype, elements) for name, dtype, elements in tensors}
        summary.outputs = [_strings(list(_fields(v)), VALUE_INFO_NAME)[0].decode("utf-8", "replace")
                           for v in _strings(fields, GRAPH_OUTPUT) if _strings(list(_fields(v)), VALUE_INFO_NAME)]


def summarize(model: bytes, source: str) -> GraphSummary:
    """The GraphSummary of a serialized ModelProto, or a one-line error naming `source`."""
    summary = GraphSummary()
    try:
        fields = list(_fields(model))
        graphs = _strings(fields, MODEL_GRAPH)
        if len(graphs) != 1:
            raise ValueError(f"{len(graphs)} main graphs")
        _graph(graphs[0], summary, 0)
        for function in _strings(fields, MODEL_FUNCTIONS):
            for node in _strings(list(_fields(function)), FUNCTION_NODE):
                _node(node, summary, 1)
        summary.weight_types = live_constants(summary.nodes, summary.outputs, summary.initializers)
    except (ValueError, IndexError, RecursionError) as exc:
        raise EdgeMnistError(f"{source}: not a valid ONNX model ({exc})") from exc
    return summary


def refuse_external_data(summary: GraphSummary, source: str) -> None:
    """A model with tensors in another file is refused: its sha256 would not cover them."""
    if summary.external_data:
        raise EdgeMnistError(f"{source}: tensors stored as external data in another file are not supported "
                             "(their contents are not covered by the manifest's sha256); save the model in one file")


ORT_FILE_IDENTIFIER = b"ORTM"
ORT_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


def is_ort_format(model: bytes) -> bool:
    """True for an ORT-format flatbuffer (file identifier ORTM), the format of ORT Mobile's .ort files."""
    return model[4:8] == ORT_FILE_IDENTIFIER


def summarize_ort(model: bytes, source: str) -> GraphSummary:
    """The GraphSummary of an ORT-format model's main graph, or a one-line error naming `source`."""
    import onnxruntime.tools.ort_format_model  # noqa: F401  (puts the flatbuffer bindings on sys.path)
    from ort_flatbuffers_py.fbs.InferenceSession import InferenceSession

    summary = GraphSummary()
    try:
        graph = InferenceSession.GetRootAs(model, 0).Model().Graph()
        for i in range(graph.NodesLength()):
            node = graph.Nodes(i)
            summary.op_types[node.OpType().decode()] += 1
            summary.nodes.append(([node.Inputs(j).decode() for j in range(node.InputsLength())],
                                  [node.Outputs(j).decode() for j in range(node.OutputsLength())]))
        for i in range(graph.InitializersLength()):
            tensor = graph.Initializers(i)
            summary.external_data |= tensor.ExternalDataOffset() >= 0
            summary.initializers[tensor.Name().decode()] = (ORT_TYPES.get(tensor.DataType(), "other"),
                                                            int(np.prod(tensor.DimsAsNumpy())) if tensor.DimsLength() else 1)
        summary.outputs = [graph.Outputs(i).decode() for i in range(graph.OutputsLength())]
        summary.weight_types = live_constants(summary.nodes, summary.outputs, summary.initializers)
    except (ValueError, IndexError, AttributeError, TypeError, UnicodeDecodeError, RecursionError,
            struct.error) as exc:
        raise EdgeMnistError(f"{source}: not a valid ORT-format model ({str(exc)[:120]})") from exc
    return summary
